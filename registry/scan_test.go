package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
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

// RENAME in memory swaps the names in one step: while buckets are renamed
// onto an existing name, a reader of that name never finds it missing or
// empty, and Scan and Names follow.
func TestRenameInMemoryIsOneStep(t *testing.T) {
	r := newTree(t).reg
	put := func(name string, n int) {
		b, err := r.Create(ctx, name)
		require.NoError(t, err)
		for i := range n {
			require.NoError(t, b.Put(fmt.Sprintf("k%d", i), []byte(name)))
		}
	}
	put("y", 5)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads int
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, ok := r.Lookup("y")
			if !assert.True(t, ok, "y went missing during a rename") {
				return
			}
			if n, err := b.Len(); err == nil && !assert.Positive(t, n, "y was seen empty") {
				return
			}
			reads++
		}
	})
	for i := range 200 {
		put("x", 1+i%4)
		require.NoError(t, r.Rename(ctx, "x", "y"))
	}
	close(stop)
	wg.Wait()
	t.Logf("%d reads of y", reads)
	assert.Equal(t, []string{"y"}, r.Names())
	assert.Len(t, scanAll(t, r, 1), 1)
	y, _ := r.Lookup("y")
	n, err := y.Len()
	require.NoError(t, err)
	assert.Equal(t, 4, n, "y holds what the last x held")
}

// A bucket created under the target name while a rename is under way does
// not break it: the renamed pairs arrive whole.
func TestRenameReplacesATargetCreatedMeanwhile(t *testing.T) {
	r := newTree(t).reg
	for range 100 {
		src, err := r.Create(ctx, "src")
		require.NoError(t, err)
		require.NoError(t, src.Put("from", []byte("src")))
		done := make(chan struct{})
		go func() {
			defer close(done)
			if b, err := r.Create(ctx, "dst"); err == nil {
				_ = b.Put("stray", []byte("x")) // may land before or after the rename
			}
		}()
		require.NoError(t, r.Rename(ctx, "src", "dst"))
		<-done
		dst, ok := r.Lookup("dst")
		require.True(t, ok)
		v, err := dst.Get("from")
		require.NoError(t, err, "the renamed pairs are whole")
		assert.Equal(t, "src", string(v))
		require.NoError(t, r.Delete(ctx, "dst"))
	}
}

// LookupCurrent follows a bucket it finds ended to what its name means once
// the registry has forgotten it: nothing after a crash in memory, the same
// data loaded back with a store. Here the registry's loop starts late, so
// the ended bucket stays unforgotten until then.
func TestLookupCurrentFollowsAnEndedBucket(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			ev := events.New(events.Options{})
			sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
			cfg := Config{Buckets: sup, Events: ev}
			if durable {
				cfg.Store = openStoreT(t, t.TempDir())
			}
			reg := New(cfg)
			root := suture.New("test", suture.Spec{EventHook: func(suture.Event) {}})
			root.Add(ev)
			root.Add(sup)
			rootCtx, cancel := context.WithCancel(context.Background())
			errc := root.ServeBackground(rootCtx)
			defer func() { cancel(); <-errc }()

			b, err := reg.Create(ctx, "k")
			require.NoError(t, err)
			require.NoError(t, b.Put("f", []byte("v")))
			b.Stop(errors.New("crash"))
			got, ok := reg.Lookup("k")
			require.True(t, ok)
			require.Same(t, b, got, "ended, and not forgotten: the registry's loop is not running")

			short, stop := context.WithTimeout(ctx, 10*time.Millisecond)
			defer stop()
			_, _, err = reg.LookupCurrent(short, "k")
			require.ErrorIs(t, err, context.DeadlineExceeded, "it waits for the registry, within ctx")

			type result struct {
				b   *bucket.Bucket
				ok  bool
				err error
			}
			res := make(chan result, 1)
			go func() {
				b, ok, err := reg.LookupCurrent(ctx, "k")
				res <- result{b, ok, err}
			}()
			root.Add(reg) // the loop starts and forgets the ended bucket
			r := <-res
			require.NoError(t, r.err)
			if !durable {
				assert.False(t, r.ok, "in memory, a crash loses the bucket")
				return
			}
			require.True(t, r.ok)
			assert.NotSame(t, b, r.b)
			v, err := r.b.Get("f")
			require.NoError(t, err)
			assert.Equal(t, "v", string(v), "loaded back from the store")
		})
	}
}

// ScanPage, which keeps only the page, cuts the same pages as sorting every
// key would, and a whole iteration returns each key once.
func TestScanPageMatchesSorting(t *testing.T) {
	sortedPage := func(keys []string, cursor uint64, count int) ([]string, uint64) {
		type item struct { // the reference keeps its own order
			h    uint64
			name string
		}
		var rest []item
		for _, k := range keys {
			if h := ScanHash(k); h >= cursor {
				rest = append(rest, item{h, k})
			}
		}
		slices.SortFunc(rest, func(a, b item) int {
			if a.h != b.h {
				return cmp.Compare(a.h, b.h)
			}
			return cmp.Compare(a.name, b.name)
		})
		n := min(count, len(rest))
		for n < len(rest) && n > 0 && rest[n].h == rest[n-1].h {
			n++
		}
		page := []string{}
		for _, it := range rest[:n] {
			page = append(page, it.name)
		}
		if n == len(rest) {
			return page, 0
		}
		return page, rest[n-1].h + 1
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{0, 1, 5, 100, 1000} {
		keys := make([]string, size)
		for i := range keys {
			keys[i] = fmt.Sprintf("field:%d", rnd.IntN(1<<30))
		}
		for _, count := range []int{1, 3, 10, 2000} {
			seen := map[string]int{}
			cursor := uint64(0)
			for {
				page, next := ScanPage(keys, cursor, count)
				wantPage, wantNext := sortedPage(keys, cursor, count)
				require.Equal(t, wantPage, append([]string{}, page...), "size %d count %d cursor %d", size, count, cursor)
				require.Equal(t, wantNext, next)
				for _, k := range page {
					seen[k]++
				}
				if next == 0 {
					break
				}
				cursor = next
			}
			for _, k := range keys {
				require.Equal(t, 1, seen[k], k)
			}
		}
	}
}

// The events of a rename's destination stay in order: the replaced
// bucket's Exited comes before the new bucket's Created.
func TestRenameEventsInOrder(t *testing.T) {
	tr := newTree(t)
	r := tr.reg
	old, err := r.Create(ctx, "dst")
	require.NoError(t, err)
	src, err := r.Create(ctx, "src")
	require.NoError(t, err)
	require.NoError(t, src.Put("k", []byte("v")))
	require.NoError(t, r.Rename(ctx, "src", "dst"))
	now, ok := r.Lookup("dst")
	require.True(t, ok)
	require.Eventually(t, func() bool {
		tr.rec.mu.Lock()
		defer tr.rec.mu.Unlock()
		return len(tr.rec.exited[old.ID()]) == 1 && tr.rec.created[now.ID()] == 1
	}, waitFor, tick)
	tr.rec.mu.Lock()
	defer tr.rec.mu.Unlock()
	var dst []string
	for _, ev := range tr.rec.all {
		switch e := ev.(type) {
		case events.Created:
			if e.Bucket == "dst" {
				dst = append(dst, fmt.Sprintf("created %d", e.ID))
			}
		case events.Exited:
			if e.Bucket == "dst" {
				dst = append(dst, fmt.Sprintf("exited %d", e.ID))
			}
		}
	}
	assert.Equal(t, []string{
		fmt.Sprintf("created %d", old.ID()),
		fmt.Sprintf("exited %d", old.ID()),
		fmt.Sprintf("created %d", now.ID()),
	}, dst)
}
