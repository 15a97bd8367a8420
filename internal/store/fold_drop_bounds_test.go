package store

import (
	"fmt"
	"log/slog"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A dropped bucket of exactly maxPointDeletes stored pairs is still
// deleted pair by pair; one of a pair more costs one range deletion.
func TestFoldedDropAtMaxPointDeletes(t *testing.T) {
	for _, tc := range []struct {
		pairs, ranges int
	}{
		{maxPointDeletes, 0},
		{maxPointDeletes + 1, 1},
	} {
		t.Run(strconv.Itoa(tc.pairs), func(t *testing.T) {
			s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
			defer func() { require.NoError(t, s.Close()) }()
			ops := make([]Op, tc.pairs)
			for i := range ops {
				ops[i] = Put(strconv.Itoa(i), []byte("v"))
			}
			require.NoError(t, s.Apply("a", ops...))
			before := rangeDeletions(t, s, []byte{tagBucket}, []byte{tagEnd})
			require.NoError(t, s.DropBucket("a"))
			assert.Equal(t, tc.ranges, rangeDeletions(t, s, []byte{tagBucket}, []byte{tagEnd})-before)
			assert.Empty(t, rawPairs(t, s))
		})
	}
}

// dropPairs takes only a range deletion of one whole bucket's pairs, the
// kind dropInto writes: any other range stays a range deletion.
func TestDropPairsTakesOnlyOneBucketsPairs(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
	require.NoError(t, s.fold())
	a := pairPrefix("a")
	for _, tc := range []struct {
		name       string
		start, end []byte
		want       bool
	}{
		{"one bucket's pairs", a, prefixEnd(a), true},
		{"a bucket's pairs and every later bucket's", a, []byte{tagEnd}, false},
		{"every bucket's pairs", []byte{tagPair}, prefixEnd([]byte{tagPair}), false},
		{"the pairs of one key", appendPairKey(nil, "a", "k"), prefixEnd(appendPairKey(nil, "a", "k")), false},
		{"one bucket's marker", markerKey("a"), prefixEnd(markerKey("a")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.mu.RLock()
			defer s.mu.RUnlock()
			f := folding{db: s.db}
			assert.Equal(t, tc.want, f.dropPairs(tc.start, tc.end))
		})
	}
}

// The folds count the range deletions they write into the memtable (the
// deletion of more than maxPointDeletes folded records, a big bucket's
// drop), have it flushed at the maxMemtableRanges-th and count from 0
// again, and count from 0 on the engine that a recovery opens.
func TestFoldsCountTheirRangeDeletions(t *testing.T) {
	faults := &Faults{}
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo, Faults: faults, RetryInterval: time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	defer func() { require.NoError(t, s.Close()) }()
	counted := func() int {
		t.Helper()
		require.NoError(t, s.fold())
		s.foldMu.Lock()
		defer s.foldMu.Unlock()
		return s.foldedRanges
	}
	big := make([]Op, maxPointDeletes+1) // dropped with a range deletion
	for i := range big {
		big[i] = Put(strconv.Itoa(i), []byte("v"))
	}
	for i := range maxMemtableRanges {
		require.NoError(t, s.Apply(fmt.Sprint("b", i), big...))
	}
	require.Equal(t, 1, counted(), "a fold of %d records deletes them with a range deletion", maxMemtableRanges)
	for i := range maxMemtableRanges {
		require.NoError(t, s.DropBucket(fmt.Sprint("b", i)))
		require.Equal(t, (2+i)%maxMemtableRanges, counted(), "after drop %d", i+1)
	}

	// A failed write, then a recovery: the store's engine is another. The
	// folds are flushed first, so that the recovery has none to redo.
	s.mu.RLock()
	require.NoError(t, s.db.Flush())
	s.mu.RUnlock()
	faults.FailWrites(syscall.ENOSPC)
	require.ErrorIs(t, s.Apply("c", Put("k", []byte("v"))), ErrWriteFailed)
	faults.Clear()
	require.Eventually(t, func() bool { return s.Apply("c", big...) == nil }, 10*time.Second, time.Millisecond)
	require.Equal(t, 0, counted())
	require.NoError(t, s.DropBucket("c"))
	require.Equal(t, 1, counted(), "the drop of a big bucket, on the new engine")
}
