package store

import (
	"encoding/binary"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A disk that fails once the engine has opened a directory from before the
// format record: the record's write is fenced into memory, Open returns
// the store failed (as for any write that fails), and the directory keeps
// its data; the next Open, on a working disk, records the version.
func TestFormatRecordOnADiskThatFailsAtOpen(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
			require.NoError(t, s.Close())
			setFormat(t, dir, nil)

			s, err := open(dir, Options{Fsync: policy, Logger: slog.New(slog.DiscardHandler)}, failWALWrites{vfs.Default})
			require.NoError(t, err, "a failed write fences the store; it is not an open error")
			require.ErrorIs(t, s.Err(), ErrWriteFailed)
			require.ErrorIs(t, s.Close(), ErrWriteFailed)

			s = openT(t, dir, Options{})
			assert.Equal(t, binary.BigEndian.AppendUint64(nil, formatVersion), formatOf(t, s))
			assert.Equal(t, map[string]map[string][]byte{"b": {"k": []byte("v")}}, loadAll(t, s))
			require.NoError(t, s.Close())
		})
	}
}

// failWALWrites fails every write and sync of a WAL file, as a disk that
// fills right after the engine has opened.
type failWALWrites struct{ vfs.FS }

func (d failWALWrites) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := d.FS.Create(name, c)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return failingFile{f}, nil
}

func (d failWALWrites) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := d.FS.ReuseForWrite(oldname, newname, c)
	if err != nil {
		return f, err
	}
	return failingFile{f}, nil
}

type failingFile struct{ vfs.File }

var errFull = &os.PathError{Op: "write", Path: "wal", Err: syscall.ENOSPC}

func (failingFile) Write([]byte) (int, error)          { return 0, errFull }
func (failingFile) WriteAt([]byte, int64) (int, error) { return 0, errFull }
func (failingFile) Sync() error                        { return errFull }
func (failingFile) SyncData() error                    { return errFull }
func (failingFile) SyncTo(int64) (bool, error)         { return false, errFull }
