package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// A checkpoint's WAL is a copy of the store's, fsynced whole before the
// checkpoint is complete: the synced offsets its chunks hold (kv's true
// ones) are as true of the copy. Damage to a write in it that a later
// chunk says was synced is refused at a start from the checkpoint, and
// reported by Check, as it is in the store itself. Before the fix, the
// copy was written through the store's file system as if it were one of
// its own WALs, which set every synced offset in it to 0 (what the copy
// had fsynced so far): the damage passed for a hole in an unsynced tail,
// and every later write was dropped with an error line.
func TestDamageInACheckpointsWALIsRefused(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: policy})
			defer s.Close()
			for i := range 60 {
				require.NoError(t, s.Apply("b", Put(fmt.Sprint("k", i), []byte(strings.Repeat("v", 2000)))))
				if i%10 == 9 && policy != FsyncAlways {
					require.NoError(t, s.syncNow())
				}
			}
			cp := filepath.Join(t.TempDir(), "cp")
			require.NoError(t, s.Checkpoint(cp))

			wal, data, chunks := crashedWAL(t, cp)
			require.Greater(t, len(chunks), 40)
			bad := chunks[10]
			data[bad+walSyncHeader+3] ^= 0x5a // in the payload
			require.NoError(t, os.WriteFile(wal, data, 0o644))

			_, err := Check(cp)
			require.ErrorIs(t, err, ErrCorrupt, "check")
			logs := &logBuffer{}
			s2, err := Open(cp, Options{Logger: logs.logger()})
			if err == nil {
				require.NoError(t, s2.Close())
			}
			require.ErrorIs(t, err, ErrCorrupt, "the checkpoint's log says it was synced past the damage: %s", logs)
		})
	}
}

// What the store takes for durable (faultFS.goodKey: the last WAL record
// fsynced, under FsyncAlways) follows its own WALs only. A checkpoint's
// copy of the WAL may hold records that the store's WAL has not fsynced
// yet (commits written meanwhile): before the fix, the copy's fsync made
// the store count them as durable, so that a commit whose own fsync then
// failed was reported as written.
func TestACheckpointsWALSaysNothingOfWhatIsDurable(t *testing.T) {
	src := t.TempDir()
	s := openT(t, src, Options{Fsync: FsyncAlways})
	for i := range 20 {
		require.NoError(t, s.Apply("b", Put(fmt.Sprint("k", i), []byte(strings.Repeat("v", 100)))))
	}
	crashed := copyDir(t, src)
	require.NoError(t, s.Close())
	_, data, _ := crashedWAL(t, crashed)

	dir, elsewhere := t.TempDir(), t.TempDir()
	fs := newFaultFS(vfs.Default, dir, nil, func(string, error) {}, false)
	live, err := fs.Create(filepath.Join(dir, "000100.log"), vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	defer live.Close()
	_, err = live.Write(data) // written, not yet fsynced
	require.NoError(t, err)
	require.Zero(t, fs.goodKey())

	cp, err := fs.Create(filepath.Join(elsewhere, "000100.log"), vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	_, err = cp.Write(data)
	require.NoError(t, err)
	require.NoError(t, cp.Sync())
	require.NoError(t, cp.Close())
	require.Zero(t, fs.goodKey(), "the checkpoint's fsync made the store's unsynced records durable")
}
