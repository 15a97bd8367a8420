package store

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A dropped bucket of few pairs is deleted from the bucket keys pair by
// pair, not with a range deletion: each range deletion in the memtable
// makes every later read build the memtable's index of range deletions
// anew (3,000 drops each followed by the load of another bucket took 0.27
// ms a load, and growing, where the load alone took 4.7 µs). A bucket of
// more pairs still costs one range deletion.
func TestSmallDropsAddNoRangeDeletion(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncNo})
	for i := range 100 {
		require.NoError(t, s.Apply(fmt.Sprint("b", i), Put("k1", []byte("v")), Put("k2", []byte("v"))))
	}
	big := make([]Op, maxPointDeletes+1)
	for i := range big {
		big[i] = Put(strconv.Itoa(i), []byte("v"))
	}
	require.NoError(t, s.Apply("big", big...))
	require.NoError(t, s.Close())

	s = openT(t, dir, Options{Fsync: FsyncNo})
	defer func() { require.NoError(t, s.Close()) }()
	buckets := []byte{tagBucket}
	before := rangeDeletions(t, s, buckets, []byte{tagEnd})
	for i := range 50 {
		// Stored before the restart, and written since: both kinds of pair.
		require.NoError(t, s.Apply(fmt.Sprint("b", i), Put("k3", []byte("v"))))
		require.NoError(t, s.DropBucket(fmt.Sprint("b", i)))
		_, found, err := s.Load(fmt.Sprint("b", 50+i)) // folds the drop first
		require.NoError(t, err)
		require.True(t, found)
	}
	w, err := s.Move("b50", "b51", map[string][]byte{"k": []byte("moved")})
	require.NoError(t, err)
	require.NoError(t, w.Wait())
	assert.Equal(t, before, rangeDeletions(t, s, buckets, []byte{tagEnd}), "range deletions over the bucket keys added by 50 drops and a move")

	require.NoError(t, s.DropBucket("big"))
	assert.Equal(t, before+1, rangeDeletions(t, s, buckets, []byte{tagEnd}), "the drop of a bucket of %d pairs", len(big))

	all := loadAll(t, s)
	for i := range 51 {
		assert.NotContains(t, all, fmt.Sprint("b", i))
	}
	assert.NotContains(t, all, "big")
	assert.Equal(t, map[string][]byte{"k": []byte("moved")}, all["b51"])
	assert.Len(t, all, 49, "b51 to b99")
}

// Within one fold, a drop turned into point deletions deletes every pair
// the bucket has at that point of the log, wherever it is (folded before,
// or changed earlier in the same fold), and nothing else: table cases, each
// a run of writes folded at once, then checked against what it leaves,
// before and after a restart.
func TestFoldedDropDeletesWhatItShould(t *testing.T) {
	many := func(bucket, prefix string, n int) func(*testing.T, *Store) {
		return func(t *testing.T, s *Store) {
			ops := make([]Op, n)
			for i := range ops {
				ops[i] = Put(prefix+strconv.Itoa(i), []byte("v"))
			}
			require.NoError(t, s.Apply(bucket, ops...))
		}
	}
	put := func(bucket, key, value string) func(*testing.T, *Store) {
		return func(t *testing.T, s *Store) { require.NoError(t, s.Apply(bucket, Put(key, []byte(value)))) }
	}
	del := func(bucket, key string) func(*testing.T, *Store) {
		return func(t *testing.T, s *Store) { require.NoError(t, s.Apply(bucket, Delete(key))) }
	}
	drop := func(bucket string) func(*testing.T, *Store) {
		return func(t *testing.T, s *Store) { require.NoError(t, s.DropBucket(bucket)) }
	}
	move := func(from, to string, pairs map[string][]byte) func(*testing.T, *Store) {
		return func(t *testing.T, s *Store) {
			w, err := s.Move(from, to, pairs)
			require.NoError(t, err)
			require.NoError(t, w.Wait())
		}
	}
	dropAll := func(t *testing.T, s *Store) { require.NoError(t, s.DropAll()) }
	type step = func(*testing.T, *Store)
	for _, tc := range []struct {
		name          string
		stored, folds []step // stored: folded before the run
		want          map[string]map[string][]byte
	}{{
		name:   "stored and new pairs",
		stored: []step{put("a", "old", "1")},
		folds:  []step{put("a", "new", "2"), drop("a")},
		want:   map[string]map[string][]byte{},
	}, {
		name:   "written again after the drop",
		stored: []step{put("a", "old", "1")},
		folds:  []step{put("a", "x", "2"), drop("a"), put("a", "y", "3")},
		want:   map[string]map[string][]byte{"a": {"y": []byte("3")}},
	}, {
		name:  "dropped, written, dropped",
		folds: []step{put("a", "x", "1"), drop("a"), put("a", "x", "2"), put("a", "z", "2"), drop("a"), put("a", "w", "3")},
		want:  map[string]map[string][]byte{"a": {"w": []byte("3")}},
	}, {
		name:   "a stored pair deleted, then the bucket dropped",
		stored: []step{put("a", "k", "1"), put("a", "j", "1")},
		folds:  []step{del("a", "k"), drop("a"), put("a", "j2", "2")},
		want:   map[string]map[string][]byte{"a": {"j2": []byte("2")}},
	}, {
		name:   "names that share bytes",
		stored: []step{put("a", "k", "1"), put("ab", "k", "2"), put("", "k", "3"), put("a\x00", "k", "4")},
		folds:  []step{drop("a"), put("ab", "j", "5")},
		want: map[string]map[string][]byte{
			"ab": {"k": []byte("2"), "j": []byte("5")}, "": {"k": []byte("3")}, "a\x00": {"k": []byte("4")},
		},
	}, {
		name:   "exactly the most pairs deleted one by one",
		stored: []step{many("a", "s", maxPointDeletes/2)},
		folds:  []step{many("a", "f", maxPointDeletes/2), drop("a"), put("b", "k", "1")},
		want:   map[string]map[string][]byte{"b": {"k": []byte("1")}},
	}, {
		name:   "one pair more than that",
		stored: []step{many("a", "s", maxPointDeletes+1)},
		folds:  []step{drop("a"), put("a", "k", "1")},
		want:   map[string]map[string][]byte{"a": {"k": []byte("1")}},
	}, {
		name:   "after a range deletion in the same fold",
		stored: []step{many("big", "s", maxPointDeletes+1), put("a", "old", "1")},
		folds:  []step{put("a", "k", "1"), drop("big"), put("a", "j", "2"), drop("a"), put("c", "k", "3")},
		want:   map[string]map[string][]byte{"c": {"k": []byte("3")}},
	}, {
		name:   "after a drop of everything in the same fold",
		stored: []step{put("a", "old", "1")},
		folds:  []step{put("a", "k", "1"), dropAll, put("a", "j", "2"), drop("a"), put("a", "m", "3")},
		want:   map[string]map[string][]byte{"a": {"m": []byte("3")}},
	}, {
		name:   "a move onto a stored bucket",
		stored: []step{put("to", "stale", "1"), put("from", "k", "1")},
		folds:  []step{put("to", "stale2", "2"), move("from", "to", map[string][]byte{"k": []byte("1")})},
		want:   map[string]map[string][]byte{"to": {"k": []byte("1")}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: FsyncNo})
			for _, st := range tc.stored {
				st(t, s)
			}
			require.NoError(t, s.fold())
			for _, st := range tc.folds {
				st(t, s)
			}
			checkAcrossRestart(t, s, dir, FsyncNo, func(s *Store) {
				assert.Equal(t, tc.want, pairsOf(t, s))
			})
		})
	}
}

// Random runs of writes, drops, moves and folds against a model: what the
// store holds after each fold, and after a restart, is what the model
// holds. Bucket sizes go past maxPointDeletes, so that drops of both kinds
// meet in one fold.
func TestFoldedDropsMatchAModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: FsyncNo})
			model := map[string]map[string][]byte{}
			name := func() string { return fmt.Sprint("b", rng.IntN(6)) }
			for i := range 2500 {
				switch r := rng.IntN(100); {
				case r < 60:
					b := name()
					ops := make([]Op, 1+rng.IntN(8))
					if model[b] == nil {
						model[b] = map[string][]byte{}
					}
					for j := range ops {
						k := strconv.Itoa(rng.IntN(3 * maxPointDeletes))
						if rng.IntN(4) == 0 {
							ops[j] = Delete(k)
							delete(model[b], k)
						} else {
							v := []byte(strconv.Itoa(i))
							ops[j] = Put(k, v)
							model[b][k] = v
						}
					}
					require.NoError(t, s.Apply(b, ops...))
				case r < 80:
					b := name()
					require.NoError(t, s.DropBucket(b))
					delete(model, b)
				case r < 90:
					from, to := name(), name()
					pairs := model[from]
					if pairs == nil || from == to {
						continue
					}
					w, err := s.Move(from, to, pairs)
					require.NoError(t, err)
					require.NoError(t, w.Wait())
					delete(model, from)
					model[to] = pairs
				case r < 91:
					require.NoError(t, s.DropAll())
					clear(model)
				default:
					require.NoError(t, s.fold())
					require.Equal(t, model, pairsOf(t, s), "after op %d", i)
				}
			}
			checkAcrossRestart(t, s, dir, FsyncNo, func(s *Store) {
				require.Equal(t, model, pairsOf(t, s))
			})
		})
	}
}

// pairsOf returns what s holds as bucket -> pairs, every bucket's pairs
// as a map even when it has none.
func pairsOf(t *testing.T, s *Store) map[string]map[string][]byte {
	t.Helper()
	all := loadAll(t, s)
	for name, pairs := range all {
		if pairs == nil {
			all[name] = map[string][]byte{}
		}
	}
	return all
}

// After maxMemtableRanges range deletions, the folds have the memtable
// flushed, which takes them out of every read's way; before, only a full
// memtable did (some 20,000 drops), and each read after a drop cost more
// than the one before.
func TestManyRangeDeletionsFlushTheMemtable(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer func() { require.NoError(t, s.Close()) }()
	big := make([]Op, maxPointDeletes+1) // dropped with a range deletion
	for i := range big {
		big[i] = Put(strconv.Itoa(i), []byte("v"))
	}
	for i := range maxMemtableRanges {
		require.NoError(t, s.Apply(fmt.Sprint("b", i), big...))
	}
	require.NoError(t, s.fold())
	s.mu.RLock()
	db := s.db
	s.mu.RUnlock()
	require.NoError(t, db.Flush())
	flushes := func() int64 { return db.Metrics().Flush.Count }
	before := flushes()
	s.foldMu.Lock()
	counted := s.foldedRanges // the setup's fold deleted its records with one
	s.foldMu.Unlock()
	last := maxMemtableRanges - counted - 1
	for i := range last {
		require.NoError(t, s.DropBucket(fmt.Sprint("b", i)))
		require.NoError(t, s.fold())
	}
	require.Equal(t, before, flushes(), "the drops alone do not fill the memtable")
	require.NoError(t, s.DropBucket(fmt.Sprint("b", last)))
	require.NoError(t, s.fold())
	require.Eventually(t, func() bool { return flushes() > before }, time.Minute, time.Millisecond,
		"the %dth range deletion has the memtable flushed", maxMemtableRanges)
	assert.Len(t, pairsOf(t, s), maxMemtableRanges-last-1)
}
