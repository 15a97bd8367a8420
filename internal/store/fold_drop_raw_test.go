package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/rangekey"
	"github.com/cockroachdb/pebble/v2/sstable/block"
	"github.com/stretchr/testify/require"
)

// rawPairs returns every pair key in s's engine, folded, as bucket ->
// pairs, markers or not: a dropped bucket's pair that survives shows here
// even while its bucket has no marker.
func rawPairs(t *testing.T, s *Store) map[string]map[string]string {
	t.Helper()
	require.NoError(t, s.fold())
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagPair}, UpperBound: []byte{tagEnd}})
	require.NoError(t, err)
	out := map[string]map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		name, key, err := decodePair(it.Key())
		require.NoError(t, err)
		if out[string(name)] == nil {
			out[string(name)] = map[string]string{}
		}
		out[string(name)][string(key)] = string(it.Value())
	}
	require.NoError(t, it.Close())
	return out
}

// Random runs over names that share bytes (prefixes, 0x00, 0xff, the
// empty name, a name whose length takes two bytes), buckets on both sides
// of maxPointDeletes, moves onto themselves, pair-only writes, and
// crash-style stops (no fold at Close) at random points: what the engine
// holds, read raw (pairs without a marker included), is the model. Each
// seed takes about 5 s under -race.
func TestFoldedDropsMatchARawModel(t *testing.T) {
	names := []string{"", "a", "a\x00", "a\xff", "ab", "\xff", "\x00", "\xff\xff", "b", strings.Repeat("\xff", 130), strings.Repeat("\xff", 127)}
	fields := func(rng *rand.Rand) string {
		switch rng.IntN(10) {
		case 0:
			return ""
		case 1:
			return "\xff"
		case 2:
			return "\x00"
		}
		return strconv.Itoa(rng.IntN(90))
	}
	seeds := 2 // one of each kind; KV_FOLD_SEEDS=12 for a longer run
	if n, err := strconv.Atoi(os.Getenv("KV_FOLD_SEEDS")); err == nil {
		seeds = n
	}
	for seed := range uint64(seeds) {
		long := seed%2 == 1 // rare folds: long runs of drops within one fold
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			dir := t.TempDir()
			policy := []Fsync{FsyncNo, FsyncEverySec, FsyncAlways}[seed%3]
			s := openT(t, dir, Options{Fsync: policy})
			defer func() {
				if s != nil {
					_ = s.Close()
				}
			}()
			model := map[string]map[string]string{}
			marked := map[string]bool{}
			name := func() string { return names[rng.IntN(len(names))] }
			check := func(what string, i int) {
				t.Helper()
				raw := rawPairs(t, s)
				want := map[string]map[string]string{}
				for b, p := range model {
					if len(p) > 0 {
						want[b] = p
					}
				}
				require.Equal(t, want, raw, "%s, after op %d", what, i)
			}
			for i := range 3000 {
				r := rng.IntN(100)
				if long && r >= 81 && rng.IntN(15) != 0 {
					r = rng.IntN(81)
				}
				switch {
				case r < 50:
					b := name()
					n := 1 + rng.IntN(12)
					if rng.IntN(8) == 0 {
						n = 1 + rng.IntN(80)
					}
					ops := make([]Op, n)
					if model[b] == nil {
						model[b] = map[string]string{}
					}
					for j := range ops {
						k := fields(rng)
						if n > 12 {
							k = strconv.Itoa(j)
						}
						if rng.IntN(5) == 0 {
							ops[j] = Delete(k)
							delete(model[b], k)
						} else {
							v := strconv.Itoa(i)
							ops[j] = Put(k, []byte(v))
							model[b][k] = v
						}
					}
					if marked[b] && rng.IntN(2) == 0 {
						w, err := s.ApplyPairsNoWait(b, ops...)
						require.NoError(t, err)
						require.NoError(t, w.Wait())
					} else {
						require.NoError(t, s.Apply(b, ops...))
					}
					marked[b] = true
				case r < 68:
					b := name()
					require.NoError(t, s.DropBucket(b))
					delete(model, b)
					delete(marked, b)
				case r < 80:
					from, to := name(), name()
					if !marked[from] {
						continue
					}
					pairs := map[string][]byte{}
					np := map[string]string{}
					for k, v := range model[from] {
						pairs[k] = []byte(v)
						np[k] = v
					}
					w, err := s.Move(from, to, pairs)
					require.NoError(t, err)
					require.NoError(t, w.Wait())
					delete(model, from)
					delete(marked, from)
					model[to] = np
					marked[to] = true
				case r < 81:
					require.NoError(t, s.DropAll())
					clear(model)
					clear(marked)
				case r < 90:
					check("fold", i)
				case r < 95:
					crashClose(t, s)
					rep, err := Check(dir)
					require.NoError(t, err)
					require.Empty(t, rep.Problems, "check after a crash at op %d", i)
					s = openT(t, dir, Options{Fsync: policy})
					check("crash and reopen", i)
				default:
					// A crash with records left, then reads right after Open.
					crashClose(t, s)
					s = openT(t, dir, Options{Fsync: policy})
				}
			}
			check("end", -1)
			require.NoError(t, s.Close())
			s = nil
			rep, err := Check(dir)
			require.NoError(t, err)
			require.Empty(t, rep.Problems)
		})
	}
}

// A bucket written with new fields and dropped, again and again within one
// fold (a hash of job ids, refilled and deleted), leaves no deletion of its
// pairs behind: before, each such pair became a point deletion, and each
// later drop of the bucket stepped over all of them in the memtable (100,000
// cycles, folded every 2,000: 65 s of folds, against 0.5 s with a range
// deletion a drop; BenchmarkFoldRecycledBucket).
func TestRecycledBucketLeavesNoDeletions(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.Apply("q", Put("stored", []byte("v"))))
	require.NoError(t, s.fold())
	before := pointDeletions(t, s, []byte{tagPair}, []byte{tagEnd})
	const cycles = 500
	for i := range cycles {
		require.NoError(t, s.Apply("q", Put(fmt.Sprint("f", i, ".0"), []byte("v")), Put(fmt.Sprint("f", i, ".1"), []byte("v"))))
		require.NoError(t, s.DropBucket("q"))
	}
	require.NoError(t, s.Apply("q", Put("last", []byte("v"))))
	require.Equal(t, map[string]map[string]string{"q": {"last": "v"}}, rawPairs(t, s))
	require.Equal(t, 1, pointDeletions(t, s, []byte{tagPair}, []byte{tagEnd})-before,
		"deletions of pairs left by %d cycles of writes and drops of one bucket in one fold: the one stored pair's", cycles)
}

// pointDeletions counts the point deletions over [lo, hi) that the engine
// holds, once s is folded.
func pointDeletions(t *testing.T, s *Store, lo, hi []byte) (n int) {
	t.Helper()
	require.NoError(t, s.fold())
	s.mu.RLock()
	defer s.mu.RUnlock()
	err := s.db.ScanInternal(context.Background(), block.CategoryUnknown, lo, hi,
		func(k *pebble.InternalKey, _ pebble.LazyValue, _ pebble.IteratorLevel) error {
			if k.Kind() == pebble.InternalKeyKindDelete {
				n++
			}
			return nil
		},
		func([]byte, []byte, pebble.SeqNum) error { return nil },
		func([]byte, []byte, []rangekey.Key) error { return nil },
		nil, nil)
	require.NoError(t, err)
	return n
}
