package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/rangekey"
	"github.com/cockroachdb/pebble/v2/sstable/block"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A fold of a few log records deletes them one by one, not with a range
// deletion: each range deletion in the memtable makes every later read
// (a fold runs before each load) build the memtable's index of range
// deletions anew, one more each fold. 3,000 writes each followed by the
// load of another bucket took 136 s (45 ms a load) after a restart; 0.24 s
// with point deletions.
func TestSmallFoldsAddNoRangeDeletion(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncNo})
	for i := range 100 {
		require.NoError(t, s.Apply(fmt.Sprint("b", i), Put("k", []byte("v"))))
	}
	require.NoError(t, s.Close())
	s = openT(t, dir, Options{Fsync: FsyncNo})
	defer func() { require.NoError(t, s.Close()) }()
	before := logRangeDeletions(t, s)
	for i := range 100 {
		require.NoError(t, s.Apply("hot", Put(fmt.Sprint("k", i), []byte("v"))))
		pairs, found, err := s.Load(fmt.Sprint("b", i)) // folds the write first
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, "v", string(pairs["k"]))
	}
	assert.Equal(t, before, logRangeDeletions(t, s), "range deletions over the log added by 100 small folds")
	pairs, found, err := s.Load("hot")
	require.NoError(t, err)
	require.True(t, found)
	assert.Len(t, pairs, 100, "every folded write is in the bucket keys")
}

// logRangeDeletions counts the range deletions (fragments) over the log's
// keys that the engine holds.
func logRangeDeletions(t *testing.T, s *Store) int {
	t.Helper()
	return rangeDeletions(t, s, []byte{tagLog}, []byte{tagLog + 1})
}

// rangeDeletions counts the range deletions (fragments) over [lo, hi) that
// the engine holds, once the log is folded.
func rangeDeletions(t *testing.T, s *Store, lo, hi []byte) (n int) {
	t.Helper()
	require.NoError(t, s.fold())
	s.mu.RLock()
	defer s.mu.RUnlock()
	err := s.db.ScanInternal(context.Background(), block.CategoryUnknown, lo, hi,
		func(*pebble.InternalKey, pebble.LazyValue, pebble.IteratorLevel) error { return nil },
		func([]byte, []byte, pebble.SeqNum) error { n++; return nil },
		func([]byte, []byte, []rangekey.Key) error { return nil },
		nil, nil)
	require.NoError(t, err)
	return n
}
