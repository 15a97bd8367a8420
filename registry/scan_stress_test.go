package registry

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/scanorder"
)

// stressName returns the i-th name of a family: text or binary (bytes 0x00
// and 0xff).
func stressName(family string, i int) string {
	switch i % 4 {
	case 0:
		return family + ":" + strconv.Itoa(i)
	case 1:
		return family + "\x00" + strconv.Itoa(i) + "\xff"
	case 2:
		return "\xff" + family + strconv.Itoa(i) + "\x00"
	default:
		return string([]byte{0, byte(i), byte(i >> 8), 0xff}) + family
	}
}

// Writers create, delete, rename (onto new names and onto stable ones,
// which stay present) and create-with-a-write buckets while readers run
// whole SCAN iterations: every name present throughout comes back exactly
// once, no name never there (nor one deleted before the iteration) comes
// back, pages are in scan order within [cursor, next), and the iteration
// ends.
func TestScanStressConcurrentModel(t *testing.T) {
	for _, durable := range []bool{false, true} {
		for _, n := range []int{1, 2, 50, 400} {
			t.Run(fmt.Sprintf("durable=%v/n=%d", durable, n), func(t *testing.T) {
				var r *Registry
				if durable {
					r, _, _ = newDurableTree(t, openStoreT(t, t.TempDir()))
				} else {
					r = newTree(t).reg
				}
				stressRegistryScan(t, r, n)
			})
		}
	}
}

func stressRegistryScan(t *testing.T, r *Registry, n int) {
	stressOps := int64(1500) // KV_STRESS=1: 4,000
	if os.Getenv("KV_STRESS") != "" {
		stressOps = 4000
	}
	stable := []string{"\x00", "\xff"}[:min(n, 2)]
	for i := len(stable); i < n; i++ {
		stable = append(stable, stressName("s", i))
	}
	isStable := map[string]bool{}
	for _, s := range stable {
		isStable[s] = true
		_, err := r.Create(ctx, s)
		require.NoError(t, err)
	}
	dead := make([]string, 10)
	for i := range dead {
		dead[i] = stressName("dead", i)
		_, err := r.Create(ctx, dead[i])
		require.NoError(t, err)
		require.NoError(t, r.Delete(ctx, dead[i]))
	}
	const writers = 2
	churnN := 20 + n/4
	universe := map[string]int{}
	for _, s := range stable {
		universe[s] = 0
	}
	for w := range writers {
		for i := range churnN {
			universe[stressName("w"+strconv.Itoa(w), i)] = 1
		}
	}
	for _, d := range dead {
		universe[d] = 2
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ops atomic.Int64
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(n)))
			own := func() string { return stressName("w"+strconv.Itoa(w), rng.IntN(churnN)) }
			for {
				select {
				case <-stop:
					return
				default:
				}
				ops.Add(1)
				var err error
				switch x := rng.IntN(10); {
				case x < 3:
					_, err = r.Create(ctx, own())
				case x < 5:
					var p bucket.Pending
					_, p, err = r.CreateWith(ctx, own(), func(tx *bucket.Tx) error { return tx.Put("f", []byte("v")) })
					if err == nil {
						err = p.Wait()
					}
					if bucket.EndedBefore(err) {
						err = nil
					}
				case x < 8:
					err = r.Delete(ctx, own())
				case x < 9:
					err = r.Rename(ctx, own(), own())
				default:
					// Onto a stable name: it stays present throughout.
					if len(stable) > 0 {
						err = r.Rename(ctx, own(), stable[rng.IntN(len(stable))])
					}
				}
				if err != nil && !errors.Is(err, ErrNotFound) && !assert.NoError(t, err) {
					return
				}
			}
		})
	}

	counts := []int{1, 10, 1000, math.MaxInt}
	var rwg sync.WaitGroup
	for rd := range 3 {
		rwg.Go(func() {
			for iter := 0; iter < 8 || ops.Load() < stressOps; iter++ {
				count := counts[(iter+rd)%len(counts)]
				seen := map[string]int{}
				cursor := uint64(0)
				for step := 0; ; step++ {
					if step > len(universe)+2 {
						assert.Failf(t, "the iteration does not end", "count %d: %d steps", count, step)
						return
					}
					page, next, err := r.Scan(cursor, count)
					if !assert.NoError(t, err) {
						return
					}
					if !assert.NoError(t, scanorder.CheckStep(page, cursor, next)) {
						return
					}
					for _, k := range page {
						kind, ok := universe[k]
						if !assert.True(t, ok, "never-present name %q", k) ||
							!assert.NotEqual(t, 2, kind, "name %q deleted before the iteration", k) {
							return
						}
						seen[k]++
					}
					if next == 0 {
						break
					}
					cursor = next
					runtime.Gosched() // let the writers in between steps
				}
				for _, s := range stable {
					if seen[s] != 1 {
						assert.Failf(t, "stable name not returned once", "count %d: %q returned %d times", count, s, seen[s])
						return
					}
				}
			}
		})
	}
	rwg.Wait()
	close(stop)
	wg.Wait()
	t.Logf("%d writer operations", ops.Load())

	names, err := r.NamesErr()
	require.NoError(t, err)
	for _, count := range []int{1, 3, math.MaxInt} {
		seen := scanAll(t, r, count)
		require.Len(t, seen, len(names), "count %d", count)
		for _, nm := range names {
			require.Equal(t, 1, seen[nm], "count %d: %q", count, nm)
		}
	}
}
