package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckpointIsAStartableCopy(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: policy})
			defer func() { assert.NoError(t, s.Close()) }()
			assert.True(t, s.LastSave().IsZero())
			require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
			require.NoError(t, s.CreateBucket("empty"))
			want := loadAll(t, s)

			before := time.Now()
			cp := filepath.Join(t.TempDir(), "cp")
			require.NoError(t, s.Checkpoint(cp))
			saved := s.LastSave()
			assert.False(t, saved.Before(before.Truncate(time.Nanosecond)), "LASTSAVE is the checkpoint's time")
			require.Error(t, s.Checkpoint(cp), "the target must not exist")

			// Writes after the checkpoint are not in it.
			require.NoError(t, s.Apply("a", Put("later", []byte("x"))))

			c := openT(t, cp, Options{})
			assert.Equal(t, want, loadAll(t, c))
			assert.Equal(t, saved.UnixNano(), c.LastSave().UnixNano(), "a store started from the checkpoint reports it as its last save")
			require.NoError(t, c.Close())
			rep, err := Check(cp)
			require.NoError(t, err)
			assert.Equal(t, 2, rep.Buckets)
			assert.Equal(t, 1, rep.Keys)
			assert.Equal(t, saved.UnixNano(), rep.LastSave.UnixNano())
			assert.Empty(t, rep.Problems)

			// LASTSAVE survives a restart.
			require.NoError(t, s.Close())
			s = openT(t, dir, Options{Fsync: policy})
			assert.Equal(t, saved.UnixNano(), s.LastSave().UnixNano())
			st, err := s.Stats()
			require.NoError(t, err)
			assert.Equal(t, saved.UnixNano(), st.LastSave.UnixNano())
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	require.NoError(t, s.Apply("a", Put("k1", []byte("v1")), Put("k2", []byte("v22"))))
	require.NoError(t, s.Apply("\x00odd\xff", Put("", nil)))
	require.NoError(t, s.CreateBucket("empty"))
	require.NoError(t, s.Checkpoint(filepath.Join(t.TempDir(), "cp")))
	require.NoError(t, s.Close())

	rep, err := Check(dir)
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Buckets)
	assert.Equal(t, 3, rep.Keys)
	assert.Equal(t, int64(2+2+2+3+0), rep.Bytes)
	assert.False(t, rep.LastSave.IsZero())
	assert.Empty(t, rep.Problems)

	// Keys that do not follow the layout are reported.
	s = openT(t, dir, Options{})
	require.NoError(t, s.db.Set([]byte{0x07, 1, 2}, nil, nil))
	require.NoError(t, s.db.Set(appendPairKey(nil, "orphan", "k"), nil, nil))
	require.NoError(t, s.db.Set([]byte{tagBucket, 0x05, 'a'}, nil, nil)) // length says 5, 1 byte follows
	require.NoError(t, s.Close())
	rep, err = Check(dir)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Equal(t, 3, rep.ProblemCount, "%q", rep.Problems)

	_, err = Check(filepath.Join(dir, "missing"))
	require.Error(t, err)
}

// Check writes nothing to a directory that holds no store, not even the
// lock file, and says what it is not.
func TestCheckLeavesANonStoreAlone(t *testing.T) {
	dir := t.TempDir()
	_, err := Check(dir)
	require.ErrorContains(t, err, "not a kv data directory")
	assert.NotErrorIs(t, err, ErrLocked)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// A lock file that cannot be opened (here a directory stands in its way;
// a read-only directory does the same for a user without root) is not
// another holder: the error says what failed, without ErrLocked. Check,
// which writes nothing, needs no lock file it can write, and reads on.
func TestLockFileThatCannotBeOpened(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	require.NoError(t, s.Close())
	require.NoError(t, os.Remove(filepath.Join(dir, "LOCK")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "LOCK"), 0o755))

	_, err := Open(dir, Options{})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrLocked)
	assert.ErrorContains(t, err, "LOCK")
	_, err = Check(dir)
	require.NoError(t, err)
}

// Check writes nothing: a checkpoint, which has no lock file, is left as
// it was, byte for byte.
func TestCheckWritesNothing(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
	cp := filepath.Join(t.TempDir(), "cp")
	require.NoError(t, s.Checkpoint(cp))
	require.NoError(t, s.Close())
	before := snapshot(t, cp)
	_, err := Check(cp)
	require.NoError(t, err)
	assert.Equal(t, before, snapshot(t, cp))
}

// snapshot returns the names and contents of the files under dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	}))
	return files
}

// A data directory whose path holds glob characters is checked as any
// other.
func TestCheckPathWithGlobCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kv[1]*?")
	s := openT(t, dir, Options{})
	require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
	require.NoError(t, s.Close())
	rep, err := Check(dir)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Keys)
}

// A checkpoint takes its name only once it is complete: until then, and
// for good if it fails (or the process dies), the name does not exist, so
// nothing can take a partial checkpoint for a whole one. A partial one a
// killed attempt left behind is replaced.
func TestCheckpointTakesItsNameWhenComplete(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	defer func() { assert.NoError(t, s.Close()) }()
	require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
	base := t.TempDir()
	cp := filepath.Join(base, "cp")
	partial := filepath.Join(base, ".cp"+PartialSuffix)

	// A killed attempt's leftovers.
	require.NoError(t, os.MkdirAll(partial, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(partial, "MANIFEST-000001"), []byte("junk"), 0o644))

	failed := errors.New("stopped before the rename")
	var sawPartial bool
	s.testSaveHook = func(p string) error {
		_, err := os.Stat(cp)
		require.ErrorIs(t, err, fs.ErrNotExist, "no checkpoint under its name before it is complete")
		_, err = Check(p)
		sawPartial = err == nil
		return failed
	}
	require.ErrorIs(t, s.Checkpoint(cp), failed)
	require.True(t, sawPartial, "the checkpoint was written, next to its name")
	_, err := os.Stat(cp)
	require.ErrorIs(t, err, fs.ErrNotExist)
	_, err = os.Stat(partial)
	require.ErrorIs(t, err, fs.ErrNotExist, "a failed checkpoint leaves nothing")
	assert.True(t, s.LastSave().IsZero(), "a failed checkpoint is not a save")

	s.testSaveHook = nil
	require.NoError(t, s.Checkpoint(cp))
	ents, err := os.ReadDir(base)
	require.NoError(t, err)
	require.Len(t, ents, 1, "the checkpoint, and nothing beside it")
	_, err = Check(cp)
	require.NoError(t, err)
}

// Checkpoints started together run one after another, each whole, each in
// its own directory; one whose name is taken fails alone.
func TestConcurrentCheckpoints(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	defer func() { assert.NoError(t, s.Close()) }()
	require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
	base := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Checkpoint(filepath.Join(base, fmt.Sprint(i%4))) })
	}
	wg.Wait()
	var ok int
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			require.ErrorIs(t, err, fs.ErrExist)
		}
	}
	require.Equal(t, 4, ok, "one per name")
	for i := range 4 {
		rep, err := Check(filepath.Join(base, fmt.Sprint(i)))
		require.NoError(t, err)
		require.Equal(t, 1, rep.Keys)
	}
}

// A store started from a checkpoint reports the checkpoint's time until it
// saves again; a checkpoint time that cannot be read is reported by Check
// and ignored by Open.
func TestCheckpointTimeGivesWayToALaterSave(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	cp := filepath.Join(t.TempDir(), "cp")
	require.NoError(t, s.Checkpoint(cp))
	first := s.LastSave()
	require.NoError(t, s.Close())

	c := openT(t, cp, Options{})
	assert.Equal(t, first.UnixNano(), c.LastSave().UnixNano())
	require.NoError(t, c.Checkpoint(filepath.Join(t.TempDir(), "cp2")))
	second := c.LastSave()
	require.True(t, second.After(first))
	require.NoError(t, c.Close())
	c = openT(t, cp, Options{})
	assert.Equal(t, second.UnixNano(), c.LastSave().UnixNano(), "the later save wins over the checkpoint's own time")
	require.NoError(t, c.Close())

	require.NoError(t, os.WriteFile(filepath.Join(cp, checkpointFile), []byte("soon\n"), 0o644))
	rep, err := Check(cp)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Equal(t, second.UnixNano(), rep.LastSave.UnixNano())
	require.Len(t, rep.Problems, 1)
	assert.Contains(t, rep.Problems[0], checkpointFile)
	logs := &logBuffer{}
	c, err = Open(cp, Options{Logger: logs.logger()})
	require.NoError(t, err)
	assert.Equal(t, second.UnixNano(), c.LastSave().UnixNano())
	assert.Contains(t, logs.String(), "LASTSAVE ignores it")
	require.NoError(t, c.Close())
}
