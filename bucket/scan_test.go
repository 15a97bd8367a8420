package bucket

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/scanorder"
)

// scanStep runs one Scan in a View.
func scanStep(t testing.TB, b *Bucket, cursor uint64, count int) ([]string, uint64) {
	t.Helper()
	var keys []string
	var next uint64
	require.NoError(t, b.View(func(tx *Tx) error {
		var err error
		keys, next, err = tx.Scan(cursor, count)
		return err
	}))
	return keys, next
}

// scanAll walks a whole iteration; between steps it calls between (nil:
// nothing) and returns every page.
func scanAll(t testing.TB, b *Bucket, count int, between func(step int)) [][]string {
	t.Helper()
	var pages [][]string
	cursor := uint64(0)
	for step := 0; ; step++ {
		require.Less(t, step, 1_000_000, "the iteration does not end")
		keys, next := scanStep(t, b, cursor, count)
		pages = append(pages, keys)
		if next == 0 {
			return pages
		}
		require.Greater(t, next, cursor, "the cursor goes forward")
		cursor = next
		if between != nil {
			between(step)
		}
	}
}

// wantPage is the reference for one step over entries, sorted in scan
// order: the first count from cursor on, then those that share the last
// one's hash.
func wantPage(entries []scanorder.Item, cursor uint64, count int) ([]string, uint64) {
	var page []string
	start, _ := slices.BinarySearchFunc(entries, cursor, func(e scanorder.Item, c uint64) int { return cmp.Compare(e.Hash, c) })
	for i := start; i < len(entries); i++ {
		if len(page) >= count && entries[i].Hash != entries[i-1].Hash {
			return page, entries[i-1].Hash + 1
		}
		page = append(page, entries[i].Name)
	}
	return page, 0
}

// sortedCopy compares as a set (testify's ElementsMatch is quadratic).
func sortedCopy(keys []string) []string {
	keys = append([]string{}, keys...)
	slices.Sort(keys)
	return keys
}

func bucketWith(t testing.TB, n int) (*Bucket, []string) {
	t.Helper()
	b := New("b", 1)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(i)
		require.NoError(t, b.Put(keys[i], []byte("v")))
	}
	return b, keys
}

// Each step returns the reference's page, below and above the size from
// which the bucket keeps its keys sorted, and the iteration returns every
// key once.
func TestScanPagesMatchTheReference(t *testing.T) {
	for _, n := range []int{0, 1, 10, scanIndexMin - 1, scanIndexMin, 300, 5000} {
		for _, count := range []int{0, 1, 7, 100, 10000} {
			t.Run(fmt.Sprintf("keys=%d/count=%d", n, count), func(t *testing.T) {
				b, keys := bucketWith(t, n)
				sorted := make([]scanorder.Item, 0, n)
				for _, k := range keys {
					sorted = append(sorted, scanorder.Of(k))
				}
				slices.SortFunc(sorted, scanorder.Compare)
				cursor := uint64(0)
				var seen []string
				for {
					page, next := scanStep(t, b, cursor, count)
					wp, wn := wantPage(sorted, cursor, max(count, 1))
					require.Equal(t, wp, page, "page at cursor %d", cursor)
					require.Equal(t, wn, next)
					seen = append(seen, page...)
					if next == 0 {
						break
					}
					cursor = next
				}
				assert.Equal(t, sortedCopy(keys), sortedCopy(seen))
			})
		}
	}
}

// The radix sort gives the comparison sort's order, also when many keys
// share a hash (runs sorted by key) or every hash shares some bytes (passes
// skipped).
func TestSortEntriesMatchesComparisonSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		hash func() uint64
	}{
		{"random", rng.Uint64},
		{"few hashes", func() uint64 { return rng.Uint64N(50) << 40 }},
		{"low byte only", func() uint64 { return 0xabcd_0000_0000_0000 | rng.Uint64N(256) }},
		{"one hash", func() uint64 { return 42 }},
	} {
		for _, n := range []int{0, 1, 255, 256, 3000} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, n), func(t *testing.T) {
				entries := make([]scanorder.Item, n)
				for i := range entries {
					entries[i] = scanorder.Item{Hash: tc.hash(), Name: strconv.Itoa(rng.IntN(1 << 30))}
				}
				want := slices.Clone(entries)
				slices.SortFunc(want, scanorder.Compare)
				assert.Equal(t, want, sortEntries(entries))
			})
		}
	}
}

// While keys are added, deleted and added again between steps, a key that
// is there for the whole iteration is returned exactly once, a key is
// returned only if it is there at that step, and the next iteration sees
// every key once, the added ones included.
func TestScanWhileKeysComeAndGo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		store   bool
		perStep int // changes between two steps
	}{{"memory", false, 5}, {"durable", true, 5}, {"merging the added keys", false, 40}} {
		t.Run(tc.name, func(t *testing.T) {
			b, stable := bucketWith(t, 2000)
			if tc.store {
				st := openStore(t, nil)
				data := make(map[string][]byte)
				for _, k := range stable {
					data[k] = []byte("v")
				}
				b = Restore("b", 1, data, st)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			churn := map[string]bool{} // churn key: present now
			var returned []string
			cursor := uint64(0)
			for step := 0; ; step++ {
				page, next := scanStep(t, b, cursor, 10)
				for _, k := range page {
					if present, ok := churn[k]; ok {
						require.True(t, present, "%s returned after its delete", k)
					}
				}
				returned = append(returned, page...)
				if next == 0 {
					break
				}
				cursor = next
				for range tc.perStep { // add, delete, add again
					k := "churn:" + strconv.Itoa(rng.IntN(600))
					if churn[k] {
						_, err := b.Delete(k)
						require.NoError(t, err)
						churn[k] = false
					} else {
						_, err := b.Set(k, []byte("c"))
						require.NoError(t, err)
						churn[k] = true
					}
				}
			}
			counts := map[string]int{}
			for _, k := range returned {
				counts[k]++
			}
			for _, k := range stable {
				require.Equal(t, 1, counts[k], "stable key %s", k)
			}

			want := slices.Clone(stable)
			for k, present := range churn {
				if present {
					want = append(want, k)
				}
			}
			assert.Equal(t, sortedCopy(want), sortedCopy(slices.Concat(scanAll(t, b, 10, nil)...)))
			if tc.perStep > 5 {
				idx := b.scan.Load()
				require.NotNil(t, idx)
				assert.Greater(t, len(idx.built), len(stable), "added keys were merged into the built ones")
			}
		})
	}
}

// The index is kept between steps; an overwrite leaves it alone, a new key
// joins it (and the next Scan sorts it into a new index, leaving the one
// readers may hold untouched), many new keys drop it, many deleted keys
// make the next Scan rebuild it, and a small or ended bucket keeps none.
func TestScanIndexLifecycle(t *testing.T) {
	const n = 2000 // mergeAt(n) < n: the added keys merge before they could drop the index
	b, keys := bucketWith(t, n)
	assert.Nil(t, b.scan.Load(), "no index before the first Scan")
	scanStep(t, b, 0, 10)
	idx := b.scan.Load()
	require.NotNil(t, idx)
	assert.Len(t, idx.built, n)
	scanStep(t, b, 0, 10)
	assert.Same(t, idx, b.scan.Load(), "kept between steps")

	require.NoError(t, b.Put(keys[0], []byte("overwritten")))
	_, err := b.Set(keys[1], []byte("overwritten"))
	require.NoError(t, err)
	assert.Same(t, idx, b.scan.Load())
	assert.Empty(t, idx.added, "an overwrite adds no key")

	require.NoError(t, b.Put("new", []byte("v")))
	assert.Same(t, idx, b.scan.Load())
	assert.Equal(t, []scanorder.Item{scanorder.Of("new")}, idx.added)
	scanStep(t, b, 0, 10)
	sorted := b.scan.Load()
	assert.NotSame(t, idx, sorted, "the added keys are sorted into a new index")
	assert.Same(t, &idx.built[0], &sorted.built[0], "which shares the built part")
	scanStep(t, b, 0, 10)
	assert.Same(t, sorted, b.scan.Load())

	for i := range n / 8 {
		require.NoError(t, b.Put("more:"+strconv.Itoa(i), []byte("v")))
	}
	assert.Same(t, sorted, b.scan.Load(), "kept while fewer keys are added than were built")
	scanStep(t, b, 0, 10)
	apart := b.scan.Load()
	assert.Same(t, &idx.built[0], &apart.built[0], "the added keys are sorted apart")
	assert.Len(t, apart.added, 1+n/8)
	assert.True(t, slices.IsSortedFunc(apart.added, scanorder.Compare))

	for i := n / 8; i < mergeAt(n); i++ {
		require.NoError(t, b.Put("more:"+strconv.Itoa(i), []byte("v")))
	}
	scanStep(t, b, 0, 10)
	merged := b.scan.Load()
	assert.Len(t, merged.built, n+1+mergeAt(n), "merged into the built keys once mergeAt are apart")
	assert.NotSame(t, &apart.built[0], &merged.built[0], "into new built keys")
	assert.Equal(t, len(merged.built), cap(merged.built), "of the exact size: nothing is appended to them")
	assert.Empty(t, merged.added)
	assert.True(t, slices.IsSortedFunc(merged.built, scanorder.Compare))

	for i := range len(merged.built) {
		require.NoError(t, b.Put("again:"+strconv.Itoa(i), []byte("v")))
	}
	assert.True(t, merged == b.scan.Load(), "kept with as many added as built")
	require.NoError(t, b.Put("again:last", []byte("v")))
	assert.True(t, b.scan.Load() == nil, "dropped once more keys were added than built")

	b, keys = bucketWith(t, 1000)
	scanStep(t, b, 0, 10)
	idx = b.scan.Load()
	require.NotNil(t, idx)
	for _, k := range keys[:900] {
		_, err := b.Delete(k)
		require.NoError(t, err)
	}
	scanStep(t, b, 0, 10)
	require.NotNil(t, b.scan.Load())
	assert.NotSame(t, idx, b.scan.Load(), "rebuilt once it holds more than twice the bucket's keys")
	assert.Len(t, b.scan.Load().built, 100)

	small, _ := bucketWith(t, scanIndexMin-1)
	scanStep(t, small, 0, 10)
	assert.Nil(t, small.scan.Load(), "a small bucket sorts at each step")

	b.Stop(nil)
	assert.Nil(t, b.scan.Load(), "an ended bucket lets its index go")
}

// A rolled-back Update brings back the keys it deleted, in the index too,
// even when it built the index itself after the delete.
func TestScanAfterRollbackSeesRestoredKeys(t *testing.T) {
	b, keys := bucketWith(t, 500)
	abort := errors.New("abort")
	err := b.Update(func(tx *Tx) error {
		for _, k := range keys[:10] {
			_, err := tx.Delete(k)
			require.NoError(t, err)
		}
		require.NoError(t, tx.Put("rolled-back", []byte("v")))
		all := []string{}
		for cursor := uint64(0); ; {
			page, next, err := tx.Scan(cursor, 50)
			require.NoError(t, err)
			all = append(all, page...)
			if next == 0 {
				break
			}
			cursor = next
		}
		assert.Len(t, all, 491, "the transaction sees its own writes")
		return abort
	})
	require.ErrorIs(t, err, abort)
	assert.Equal(t, sortedCopy(keys), sortedCopy(slices.Concat(scanAll(t, b, 50, nil)...)))
}

func TestScanOnAClosedTx(t *testing.T) {
	b, _ := bucketWith(t, 3)
	var kept *Tx
	require.NoError(t, b.View(func(tx *Tx) error { kept = tx; return nil }))
	_, _, err := kept.Scan(0, 10)
	assert.ErrorIs(t, err, ErrTxClosed)
}

// Readers scanning at once (one of them builds the index) while writers add
// and delete other keys: every stable key once per iteration, under -race.
func TestScanConcurrentReadersAndWriters(t *testing.T) {
	b, stable := bucketWith(t, 3000)
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w%d:%d", w, i%300)
				if i%600 < 300 {
					assert.NoError(t, b.Put(k, []byte("v")))
				} else {
					_, err := b.Delete(k)
					assert.NoError(t, err)
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for range 3 {
				counts := map[string]int{}
				for _, k := range slices.Concat(scanAll(t, b, 25, nil)...) {
					counts[k]++
				}
				for _, k := range stable {
					if counts[k] != 1 {
						assert.Failf(t, "stable key not returned once", "%s: %d times", k, counts[k])
						return
					}
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writers.Wait()
}
