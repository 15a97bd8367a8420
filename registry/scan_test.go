package registry

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scanAll runs a whole Scan iteration with pages of count names and
// returns how often each name came back.
func scanAll(t *testing.T, r *Registry, count int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	cursor := uint64(0)
	for steps := 0; ; steps++ {
		require.Less(t, steps, 100000, "the iteration does not end")
		page, next, err := r.Scan(cursor, count)
		require.NoError(t, err)
		for _, n := range page {
			seen[n]++
		}
		if next == 0 {
			return seen
		}
		require.Greater(t, next, cursor, "the cursor moves forward")
		cursor = next
	}
}

// Scan walks the same names as Names, each exactly once, in the pages that
// ScanPage cuts from Names, with or without a store.
func TestScanMatchesScanPage(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			var r *Registry
			if durable {
				r, _, _ = newDurableTree(t, openStoreT(t, t.TempDir()))
			} else {
				r = newTree(t).reg
			}
			for i := range 300 {
				_, err := r.Create(ctx, fmt.Sprintf("bucket-%d", i))
				require.NoError(t, err)
			}
			for i := range 300 {
				if i%3 == 0 {
					require.NoError(t, r.Delete(ctx, fmt.Sprintf("bucket-%d", i)))
				}
			}
			names := r.Names()
			require.Len(t, names, 200)
			for _, count := range []int{1, 7, 10, 1000} {
				seen := scanAll(t, r, count)
				require.Len(t, seen, len(names))
				for _, n := range names {
					require.Equal(t, 1, seen[n], "%s with count %d", n, count)
				}
				cursor := uint64(0)
				for {
					page, next, err := r.Scan(cursor, count)
					require.NoError(t, err)
					wantPage, wantNext := ScanPage(names, cursor, count)
					require.Equal(t, wantPage, page)
					require.Equal(t, wantNext, next)
					if next == 0 {
						break
					}
					cursor = next
				}
			}
			page, next, err := r.Scan(0, 0)
			require.NoError(t, err)
			assert.Len(t, page, 1, "a count below 1 means 1")
			assert.NotZero(t, next)
		})
	}
}

// While other buckets come and go, a whole iteration returns every bucket
// that was there throughout exactly once.
func TestScanIsStableWhileBucketsComeAndGo(t *testing.T) {
	r := newTree(t).reg
	stable := map[string]bool{}
	for i := range 200 {
		n := fmt.Sprintf("stable-%d", i)
		stable[n] = true
		_, err := r.Create(ctx, n)
		require.NoError(t, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		rnd := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := fmt.Sprintf("churn-%d", rnd.IntN(100))
			if rnd.IntN(2) == 0 {
				_, _ = r.Create(ctx, n)
			} else {
				_ = r.Delete(ctx, n)
			}
		}
	})
	deadline := time.Now().Add(300 * time.Millisecond)
	for rounds := 0; rounds < 3 || time.Now().Before(deadline); rounds++ {
		seen := scanAll(t, r, 5)
		for n := range stable {
			require.Equal(t, 1, seen[n], "%s", n)
		}
		for n, k := range seen {
			require.Equal(t, 1, k, "%s returned twice", n)
		}
	}
	close(stop)
	wg.Wait()
}

// Without an index of stored names (the store could not be listed at
// New), Scan reads the names from the store and still walks them all.
func TestScanWithoutIndex(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	for i := range 50 {
		require.NoError(t, st.CreateBucket(fmt.Sprintf("b%d", i)))
	}
	st.failList.Store(true)
	r, _, _ := newDurableTree(t, st)
	require.Nil(t, r.order)
	seen := scanAll(t, r, 4)
	assert.Len(t, seen, 50)
}
