package bucket

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/scanorder"
)

// stressKey returns the i-th key of a family: text, or binary (the empty
// key, bytes 0x00 and 0xff, random bytes).
func stressKey(family string, i int) string {
	switch i % 5 {
	case 0:
		return family + ":" + strconv.Itoa(i)
	case 1:
		return family + "\x00" + strconv.Itoa(i) + "\xff"
	case 2:
		return "\xff" + family + strconv.Itoa(i) + "\x00"
	case 3:
		return string([]byte{0, byte(i), byte(i >> 8), 0xff}) + family
	default:
		return family + "\x00\x00" + strconv.Itoa(i)
	}
}

// Writers add, delete, overwrite and roll back keys while readers run whole
// iterations (COUNT 1, 10, large), in views and in updates: every key
// present throughout an iteration comes back exactly once, no key that was
// never there (nor one deleted before the iteration and not added again)
// comes back, each step's page is in scan order within [cursor, next), and
// the cursor moves forward. Sizes straddle the index's thresholds.
func TestScanStressConcurrentModel(t *testing.T) {
	sizes := []int{0, 1, scanIndexMin - 1, scanIndexMin, scanIndexMin + 1, 255, 256, 257, 1023, 1024, 1025, 3000}
	if v := os.Getenv("KV_SCAN_STRESS_SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			require.NoError(t, err)
			sizes = append(sizes, n)
		}
	} else if os.Getenv("KV_STRESS") == "" {
		// The full list takes a minute under -race: KV_STRESS=1 runs it.
		sizes = []int{0, 1, scanIndexMin, 300, 1100}
	}
	for _, n := range sizes {
		for _, durable := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/durable=%v", n, durable), func(t *testing.T) {
				stressScan(t, n, durable)
			})
		}
	}
}

func stressScan(t *testing.T, n int, durable bool) {
	stressWrites := int64(5000)
	if os.Getenv("KV_STRESS") != "" {
		stressWrites = 20000
	}
	stable := make([]string, 0, n+3)
	if n > 0 {
		stable = append(stable, "") // the empty key
	}
	if n > 1 {
		stable = append(stable, "\x00")
	}
	if n > 2 {
		stable = append(stable, "\xff")
	}
	for i := len(stable); i < n; i++ {
		stable = append(stable, stressKey("s", i))
	}
	const writers = 2
	churnN := 50 + n/2
	dead := make([]string, 20)
	for i := range dead {
		dead[i] = stressKey("dead", i)
	}
	universe := map[string]int{} // 0 stable, 1 churn, 2 dead
	for _, k := range stable {
		universe[k] = 0
	}
	for w := range writers {
		for i := range churnN {
			universe[stressKey("w"+strconv.Itoa(w), i)] = 1
		}
	}
	for _, k := range dead {
		universe[k] = 2
	}

	data := map[string][]byte{}
	for _, k := range stable {
		data[k] = []byte("v")
	}
	var b *Bucket
	if durable {
		b = Restore("b", 1, data, openStore(t, nil))
	} else {
		b = Restore("b", 1, data, nil)
	}
	// The dead keys come and go before any iteration, with and without an
	// index: they are in the index, deleted.
	for round := range 2 {
		if round == 1 {
			scanStep(t, b, 0, 1)
		}
		for _, k := range dead {
			require.NoError(t, b.Put(k, []byte("d")))
		}
		for _, k := range dead {
			_, err := b.Delete(k)
			require.NoError(t, err)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	abort := errors.New("abort")
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(n)))
			own := func() string { return stressKey("w"+strconv.Itoa(w), rng.IntN(churnN)) }
			for {
				select {
				case <-stop:
					return
				default:
				}
				writes.Add(1)
				switch r := rng.IntN(10); {
				case r < 3:
					if !assert.NoError(t, b.Put(own(), []byte("p"))) {
						return
					}
				case r < 4:
					_, err := b.Set(own(), []byte("s"))
					if !assert.NoError(t, err) {
						return
					}
				case r < 7:
					_, err := b.Delete(own())
					if err != nil && !assert.ErrorIs(t, err, ErrNotFound) {
						return
					}
				default:
					// A transaction that deletes stable keys and puts them
					// back (readers never see them missing), adds and
					// deletes its own keys, may scan, and may roll back.
					rollback := rng.IntN(2) == 0
					err := b.Update(func(tx *Tx) error {
						for range 1 + rng.IntN(20) {
							switch rng.IntN(4) {
							case 0:
								if len(stable) > 0 {
									k := stable[rng.IntN(len(stable))]
									if _, err := tx.Delete(k); err != nil {
										return err
									}
									if rng.IntN(4) == 0 {
										if _, _, err := tx.Scan(rng.Uint64(), 1+rng.IntN(50)); err != nil {
											return err
										}
									}
									if err := tx.Put(k, []byte("v")); err != nil {
										return err
									}
								}
							case 1:
								if err := tx.Put(own(), []byte("t")); err != nil {
									return err
								}
							case 2:
								if _, err := tx.Delete(own()); err != nil && !errors.Is(err, ErrNotFound) {
									return err
								}
							default:
								if _, _, err := tx.Scan(rng.Uint64()>>rng.IntN(64), 1+rng.IntN(50)); err != nil {
									return err
								}
							}
						}
						if rollback {
							return abort
						}
						return nil
					})
					if rollback {
						if !assert.ErrorIs(t, err, abort) {
							return
						}
					} else if !assert.NoError(t, err) {
						return
					}
				}
			}
		})
	}

	counts := []int{1, 10, 1000, math.MaxInt}
	const readers = 3
	var rwg sync.WaitGroup
	for r := range readers {
		rwg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r)+100, uint64(n)))
			for iter := 0; iter < 6 || writes.Load() < stressWrites; iter++ {
				count := counts[(iter+r)%len(counts)]
				inUpdate := iter%3 == 2
				seen := map[string]int{}
				cursor := uint64(0)
				before := writes.Load()
				for step := 0; ; step++ {
					if step > len(universe)+2 {
						assert.Failf(t, "the iteration does not end", "n %d count %d: %d steps", n, count, step)
						return
					}
					var page []string
					var next uint64
					run := b.View
					if inUpdate && rng.IntN(2) == 0 {
						run = b.Update
					}
					err := run(func(tx *Tx) error {
						var err error
						page, next, err = tx.Scan(cursor, count)
						return err
					})
					if !assert.NoError(t, err) {
						return
					}
					if !assert.NoError(t, scanorder.CheckStep(page, cursor, next)) {
						return
					}
					for _, k := range page {
						kind, ok := universe[k]
						if !assert.True(t, ok, "never-present key %q", k) ||
							!assert.NotEqual(t, 2, kind, "key %q deleted before the iteration", k) {
							return
						}
						seen[k]++
					}
					if next == 0 {
						break
					}
					if count == math.MaxInt {
						assert.Failf(t, "a step of an unbounded count did not end the iteration", "next %d", next)
						return
					}
					cursor = next
					runtime.Gosched() // let the writers in between steps
				}
				for _, k := range stable {
					if seen[k] != 1 {
						assert.Failf(t, "stable key not returned once", "n %d count %d iter %d: %q returned %d times (%d writes meanwhile)", n, count, iter, k, seen[k], writes.Load()-before)
						return
					}
				}
			}
		})
	}
	rwg.Wait()
	close(stop)
	wg.Wait()
	t.Logf("%d writes", writes.Load())

	// Quiescent: one more iteration returns exactly the bucket's keys.
	want, err := b.Keys()
	require.NoError(t, err)
	for _, count := range []int{1, 7, math.MaxInt} {
		var got []string
		for _, p := range scanAll(t, b, count, nil) {
			got = append(got, p...)
		}
		require.Equal(t, sortedCopy(want), sortedCopy(got), "count %d", count)
	}
}
