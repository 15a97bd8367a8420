package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logRecords counts the records in s's log, not yet folded.
func logRecords(t *testing.T, s *Store) int {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagLog}, UpperBound: []byte{tagLog + 1}})
	require.NoError(t, err)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	return n
}

// crashClose stops s as a crash would: the engine closes (its WAL holds
// every commit) without the fold that Close makes.
func crashClose(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	close(s.stop)
	<-s.stopped
	<-s.foldStopped
	require.NoError(t, s.db.Close())
	s.releaseLock()
}

// Writes, drops and re-creations are committed as log records and folded
// in their order: a read folds first and sees them all, the fold empties
// the log, and what a crash leaves in it is folded by the next Open.
func TestLogFoldsInOrder(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncEverySec})
	require.NoError(t, s.Apply("a", Put("k1", []byte("1")), Put("k2", []byte("2"))))
	require.NoError(t, s.Apply("a", Put("k1", []byte("1b")), Delete("k2")))
	require.NoError(t, s.DropBucket("a"))
	require.NoError(t, s.Apply("a", Put("k3", []byte("3"))))
	require.NoError(t, s.Apply("gone", Put("x", []byte("x"))))
	require.NoError(t, s.DropAll())
	require.NoError(t, s.Apply("a", Put("k3", []byte("3b")), Put("k4", []byte("4"))))
	require.NoError(t, s.CreateBucket("empty"))
	w, err := s.Move("a", "moved", map[string][]byte{"k3": []byte("3b"), "k4": []byte("4")})
	require.NoError(t, err)
	require.NoError(t, w.Wait())
	require.NoError(t, s.Apply("moved", Put("k5", []byte("5"))))
	assert.Equal(t, 10, logRecords(t, s), "one record a write, none folded yet")

	want := map[string]map[string][]byte{
		"empty": {},
		"moved": {"k3": []byte("3b"), "k4": []byte("4"), "k5": []byte("5")},
	}
	loadAll := func(s *Store) map[string]map[string][]byte {
		got := make(map[string]map[string][]byte)
		require.NoError(t, s.LoadAll(func(name string, pairs map[string][]byte) error {
			got[name] = pairs
			return nil
		}))
		return got
	}
	assert.Equal(t, want, loadAll(s))
	assert.Zero(t, logRecords(t, s), "the read folded the log")

	// A crash leaves records in the log; Open folds them.
	require.NoError(t, s.Apply("moved", Delete("k3")))
	require.NoError(t, s.DropBucket("empty"))
	assert.Equal(t, 2, logRecords(t, s))
	crashClose(t, s)
	rep, err := Check(dir)
	require.NoError(t, err)
	assert.Equal(t, 2, rep.LogRecords, "kv check counts the records a crash left")
	assert.Equal(t, 2, rep.Buckets, "and the buckets as folded so far")

	s = openT(t, dir, Options{Fsync: FsyncEverySec})
	assert.Zero(t, logRecords(t, s), "Open folded the log")
	assert.Equal(t, map[string]map[string][]byte{"moved": {"k4": []byte("4"), "k5": []byte("5")}}, loadAll(s))
	require.NoError(t, s.Close())
	rep, err = Check(dir)
	require.NoError(t, err)
	assert.Zero(t, rep.LogRecords)
	assert.Equal(t, 1, rep.Buckets)
	assert.Equal(t, 2, rep.Keys)
}

// The folder folds in the background once foldEvery bytes are logged, and
// Close folds the rest.
func TestFolderFoldsTheLog(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncNo})
	value := bytes.Repeat([]byte("v"), 512<<10)
	for i := range foldEvery/len(value) + 1 {
		require.NoError(t, s.Apply("b", Put(fmt.Sprint(i%4), value)))
	}
	require.Eventually(t, func() bool { return logRecords(t, s) == 0 }, 10*time.Second, time.Millisecond,
		"the folder folds once %d bytes are logged", foldEvery)
	require.NoError(t, s.Apply("b", Put("last", []byte("1"))))
	assert.Equal(t, 1, logRecords(t, s), "below foldEvery, the record waits")
	require.NoError(t, s.Close())

	rep, err := Check(dir)
	require.NoError(t, err)
	assert.Zero(t, rep.LogRecords, "Close folded it")
	assert.Equal(t, 5, rep.Keys)
}
