package store

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/testlog"
)

// copyDir copies the files of src (not LOCK) into a new directory: the state
// a crash would leave on disk, taken while the store in src still runs.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range ents {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if os.IsNotExist(err) {
			continue // deleted meanwhile: obsolete, as pebble deletes only those
		}
		require.NoError(t, err)
		out, err := os.Create(filepath.Join(dst, e.Name()))
		require.NoError(t, err)
		_, err = io.Copy(out, in)
		require.NoError(t, err)
		require.NoError(t, in.Close())
		require.NoError(t, out.Close())
	}
	return dst
}

// quietCopy is copyDir taken while s runs no flush or compaction, so that
// no table is copied half written (a crash image has none: pebble syncs a
// table before its MANIFEST names it).
func quietCopy(t *testing.T, s *Store, dir string) string {
	t.Helper()
	var crashed string
	require.Eventually(t, func() bool {
		m := s.db.Metrics()
		if m.Compact.NumInProgress > 0 || m.Flush.NumInProgress > 0 {
			return false
		}
		compactions, flushes := m.Compact.Count, m.Flush.Count
		crashed = copyDir(t, dir)
		m = s.db.Metrics()
		return m.Compact.Count == compactions && m.Flush.Count == flushes &&
			m.Compact.NumInProgress == 0 && m.Flush.NumInProgress == 0
	}, 30*time.Second, 10*time.Millisecond)
	return crashed
}

func filesLike(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	require.NoError(t, err)
	return m
}

// A crash in the middle of a write leaves a torn WAL tail: Open recovers
// every whole write before it and says so in the log.
func TestTornWALTail(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	defer s.Close()
	for i := range 20 {
		require.NoError(t, s.Apply("b", Put(fmt.Sprint("k", i), []byte(strings.Repeat("v", 100)))))
	}
	crashed := copyDir(t, dir)
	wals := filesLike(t, crashed, "*.log")
	require.NotEmpty(t, wals)
	last := wals[len(wals)-1]
	fi, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, fi.Size()-10)) // cut into the last write

	logs := &logBuffer{}
	s2 := openT(t, crashed, Options{Logger: logs.logger()})
	pairs, found, err := s2.Load("b")
	require.NoError(t, err)
	require.True(t, found)
	assert.Len(t, pairs, 19, "every whole write is recovered, the torn one is not")
	assert.NotContains(t, pairs, "k19")
	assert.Contains(t, logs.String(), "torn write")
	assert.Contains(t, logs.String(), filepath.Base(last), "the log line names the WAL")
	require.NoError(t, s2.Close())

	// A clean close leaves a clean WAL: no such line.
	logs = &logBuffer{}
	s2 = openT(t, crashed, Options{Logger: logs.logger()})
	require.NoError(t, s2.Close())
	assert.NotContains(t, logs.String(), "torn write")
}

// flushedStore writes a few buckets, flushes them to a table and closes.
func flushedStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncNo})
	for i := range 200 {
		require.NoError(t, s.Apply(fmt.Sprint("b", i%5), Put(fmt.Sprint("k", i), []byte(strings.Repeat("x", 200)))))
	}
	require.NoError(t, s.fold()) // the pairs, not only the log, in the table
	require.NoError(t, s.db.Flush())
	require.NoError(t, s.Close())
	return dir
}

// flipBytes overwrites n bytes in the middle of file.
func flipBytes(t *testing.T, file string, n int) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	mid := len(b) / 3
	for i := mid; i < mid+n && i < len(b); i++ {
		b[i] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(file, b, 0o644))
}

func TestCorruptManifestFailsOpenNamingIt(t *testing.T) {
	dir := flushedStore(t)
	manifests := filesLike(t, dir, "MANIFEST-*")
	require.NotEmpty(t, manifests)
	m := manifests[len(manifests)-1]
	flipBytes(t, m, 16)
	_, err := Open(dir, Options{})
	require.Error(t, err)
	t.Logf("open: %v", err)
	assert.Contains(t, err.Error(), filepath.Base(m), "the error names the file")
	_, err = Check(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Base(m))
}

func TestCorruptTableIsReportedNamingIt(t *testing.T) {
	dir := flushedStore(t)
	tables := filesLike(t, dir, "*.sst")
	require.NotEmpty(t, tables)
	flipBytes(t, tables[0], 16)
	name := strings.TrimSuffix(filepath.Base(tables[0]), ".sst")

	var logs testlog.Buffer
	s, err := Open(dir, Options{Logger: logs.Logger(slog.LevelInfo)})
	if err != nil {
		t.Logf("open: %v", err)
		assert.Contains(t, err.Error(), name)
		return
	}
	defer s.Close()
	err = s.LoadAll(func(string, map[string][]byte) error { return nil })
	require.Error(t, err, "recovery must not skip damaged data")
	t.Logf("load: %v", err)
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), name, "the error names the table")
	require.NoError(t, s.Close())
	// An operator reads the engine's message alone: not the text of the
	// carrier pebble joins to it, nor its stack traces in the log.
	assert.NotContains(t, err.Error(), "carrier")
	assert.Contains(t, logs.String(), "damaged file")
	assert.NotContains(t, logs.String(), "stack trace")
	assert.NotContains(t, logs.String(), "carrier")

	_, err = Check(dir)
	require.Error(t, err)
	t.Logf("check: %v", err)
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), name)
	assert.NotContains(t, err.Error(), "carrier")
}

// Damage in the middle of the newest WAL, with whole writes after it in a
// later block, is not a torn tail. In a store's first WAL (no sync chunks)
// pebble reads it as one and drops every write after it; kv cannot prove
// which it is (a power cut can leave such a hole in an unsynced tail), so
// the start goes on, with an error line, not a warning, and a copy of the
// whole file under damaged/ to recover the dropped writes from. With
// sync chunks in the log, which every log of a store Open makes has (it
// reopens a new store once, past pebble's plain first log), they prove it
// under FsyncAlways and pebble refuses: the error names the file and the
// truncate that keeps the writes before the damage. Check reports both.
func TestDamageInTheMiddleOfTheWAL(t *testing.T) {
	for _, reopened := range []bool{false, true} {
		t.Run(fmt.Sprint("sync chunks ", reopened), func(t *testing.T) {
			dir := t.TempDir()
			s := openWAL(t, dir, Options{Fsync: FsyncAlways}, reopened)
			defer s.Close()
			const writes = 300
			for i := range writes {
				require.NoError(t, s.Apply("b", Put(fmt.Sprint("k", i), []byte(strings.Repeat("v", 100)))))
			}
			crashed := copyDir(t, dir)
			wals := filesLike(t, crashed, "*.log")
			last := wals[len(wals)-1]
			b, err := os.ReadFile(last)
			require.NoError(t, err)
			require.Greater(t, len(b), 32<<10, "writes in a later block than the damage")
			mid := len(b) / 2
			for i := mid; i < mid+4; i++ {
				b[i] ^= 0x5a
			}
			require.NoError(t, os.WriteFile(last, b, 0o644))

			_, err = Check(crashed)
			require.ErrorIs(t, err, ErrCorrupt, "check reports it")
			assert.ErrorContains(t, err, last, "naming the file")
			logs := &logBuffer{}
			if reopened {
				// Under FsyncAlways a later sync chunk proves the log was
				// synced past the damage: pebble refuses, and the error
				// names the file and the way out, which works.
				// Refused starts, as a restart loop makes them, keep one
				// copy of the log and log no drop that did not happen.
				for range 3 {
					_, err = Open(crashed, Options{Logger: logs.logger()})
					require.ErrorIs(t, err, ErrCorrupt)
				}
				assert.Len(t, filesLike(t, filepath.Join(crashed, "damaged"), "*.log.*"), 1)
				assert.NotContains(t, logs.String(), "dropped")
				assert.ErrorContains(t, err, last)
				assert.ErrorContains(t, err, "truncate -s")
				assert.ErrorContains(t, err, filepath.Join(crashed, "damaged"), "the error names the copy")
				var cut int64
				_, err = fmt.Sscanf(err.Error()[strings.Index(err.Error(), "truncate -s ")+len("truncate -s "):], "%d", &cut)
				require.NoError(t, err)
				require.NoError(t, os.Truncate(last, cut))
			}
			s2 := openT(t, crashed, Options{Logger: logs.logger()})
			defer s2.Close()
			pairs, _, err := s2.Load("b")
			require.NoError(t, err)
			assert.Less(t, len(pairs), writes)
			for i := range len(pairs) {
				assert.Contains(t, pairs, fmt.Sprint("k", i), "the writes before the damage, in order")
			}
			if !reopened {
				assert.Contains(t, logs.String(), "level=ERROR")
				assert.Contains(t, logs.String(), "unreadable before its end")
				assert.Contains(t, logs.String(), filepath.Base(last))
			}
			requireKeptCopy(t, crashed, b)
		})
	}
}

// A write that spans several blocks and is cut in its last chunk is a torn
// tail, though whole chunks of it follow the point where reading stops.
func TestTornWriteOverSeveralBlocks(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	defer s.Close()
	require.NoError(t, s.Apply("b", Put("small", []byte("v"))))
	require.NoError(t, s.Apply("b", Put("big", []byte(strings.Repeat("x", 100<<10)))))
	crashed := copyDir(t, dir)
	wals := filesLike(t, crashed, "*.log")
	last := wals[len(wals)-1]
	fi, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, fi.Size()-100))

	logs := &logBuffer{}
	s2 := openT(t, crashed, Options{Logger: logs.logger()})
	defer s2.Close()
	pairs, _, err := s2.Load("b")
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"small": []byte("v")}, pairs)
	assert.Contains(t, logs.String(), "torn write")
}

// After a process kill, the newest WAL may be a recycled file: past the
// last write lies an older log's content. That is a clean end, not a torn
// write.
func TestRecycledWALEndIsClean(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncNo})
	defer s.Close()
	value := []byte(strings.Repeat("r", 1000))
	for i := range 20000 { // several memtables: WALs are recycled
		require.NoError(t, s.Apply("b", Put(fmt.Sprint("k", i%5000), value)))
	}
	require.NoError(t, s.db.Flush())
	for i := range 10 {
		require.NoError(t, s.Apply("b", Put(fmt.Sprint("last", i), value)))
	}
	crashed := quietCopy(t, s, dir)
	wals := filesLike(t, crashed, "*.log")
	last := wals[len(wals)-1]
	data, err := os.ReadFile(last)
	require.NoError(t, err)
	require.Greater(t, len(data), 100<<10, "the newest WAL is a recycled, longer file")

	logs := &logBuffer{}
	s2 := openT(t, crashed, Options{Logger: logs.logger()})
	defer s2.Close()
	pairs, _, err := s2.Load("b")
	require.NoError(t, err)
	assert.Contains(t, pairs, "last9")
	assert.NotContains(t, logs.String(), "torn write")
}

// A directory that holds a store's files but has lost the marker naming
// its current MANIFEST (a backup tool that skips empty files, a partial
// copy) is refused, naming what it found: pebble would otherwise create a
// new, empty store over it and delete the old tables as obsolete.
func TestOpenRefusesAStoreWithoutItsManifestMarker(t *testing.T) {
	dir := flushedStore(t)
	tables := filesLike(t, dir, "*.sst")
	require.NotEmpty(t, tables)
	markers := filesLike(t, dir, "marker.manifest.*")
	require.Len(t, markers, 1)
	require.NoError(t, os.Remove(markers[0]))
	before := listDir(t, dir)

	_, err := Open(dir, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "no marker.manifest file")
	assert.Contains(t, err.Error(), ".sst")
	assert.Equal(t, before, listDir(t, dir), "nothing was created or deleted")

	_, err = Check(dir)
	require.Error(t, err, "check refuses it too")
}

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Files that are not the engine's data do not make a new directory a
// damaged store: an operator's log file (kv --data-dir d 2>>d/kv.log), or
// the MANIFEST of a first start that a full disk cut short before its
// marker, which held no data. The next start creates the store.
func TestNewDirectoryWithOtherFilesOpens(t *testing.T) {
	t.Run("operator's log", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "kv.log"), []byte("kv: starting\n"), 0o644))
		var logs testlog.Buffer
		s, err := Open(dir, Options{Logger: logs.Logger(slog.LevelWarn)})
		require.NoError(t, err)
		require.NoError(t, s.Close())
		// Said, in case the directory was mistyped (/etc, a home)...
		assert.Contains(t, logs.String(), "created a new store in a directory that holds other files")
		assert.Contains(t, logs.String(), "kv.log")
		// ...once: the store exists now.
		logs = testlog.Buffer{}
		s, err = Open(dir, Options{Logger: logs.Logger(slog.LevelWarn)})
		require.NoError(t, err)
		require.NoError(t, s.Close())
		assert.Empty(t, logs.String())
	})
	t.Run("empty file system", func(t *testing.T) {
		// A volume of its own for the store: its root holds lost+found.
		dir := t.TempDir()
		require.NoError(t, os.Mkdir(filepath.Join(dir, "lost+found"), 0o700))
		var logs testlog.Buffer
		s, err := Open(dir, Options{Logger: logs.Logger(slog.LevelWarn)})
		require.NoError(t, err)
		require.NoError(t, s.Close())
		assert.Empty(t, logs.String())
	})
	t.Run("empty directory", func(t *testing.T) {
		var logs testlog.Buffer
		s, err := Open(t.TempDir(), Options{Logger: logs.Logger(slog.LevelWarn)})
		require.NoError(t, err)
		require.NoError(t, s.Close())
		assert.Empty(t, logs.String())
	})
	t.Run("creation cut short", func(t *testing.T) {
		dir := t.TempDir()
		_, err := open(dir, Options{}, failMarkers{vfs.Default})
		require.Error(t, err, "the first start fails")
		s, err := Open(dir, Options{})
		require.NoError(t, err, "the disk has room again")
		require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
		require.NoError(t, s.Close())
	})
}

// failMarkers fails the creation of pebble's manifest marker, as a full
// disk would.
type failMarkers struct{ vfs.FS }

func (d failMarkers) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.Contains(filepath.Base(name), "marker.manifest") {
		return nil, &os.PathError{Op: "create", Path: name, Err: syscall.ENOSPC}
	}
	return d.FS.Create(name, c)
}
