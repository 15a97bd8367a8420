package bucket

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// Scan against a model map: iterations of random page sizes, with puts,
// deletes and transactions (committed or rolled back, some scanning
// inside) between the steps, over buckets below and above the index's
// thresholds, so that the added keys are sorted apart, merged and dropped.
// Every key present and untouched for a whole iteration comes back once;
// no key comes back twice, nor while absent.
func TestScanModelRandomized(t *testing.T) {
	for seed := uint64(1); seed <= 2; seed++ {
		for _, n := range []int{0, 5, 300, 1100, 3000} {
			rng := rand.New(rand.NewPCG(seed, uint64(n)))
			b, stable := bucketWith(t, n)
			model := map[string]bool{}
			for _, k := range stable {
				model[k] = true
			}
			churnN := 50 + rng.IntN(3000)
			key := func() string { return "c:" + strconv.Itoa(rng.IntN(churnN)) }
			for range 3 {
				start := map[string]bool{}
				for k := range model {
					start[k] = true
				}
				touched := map[string]bool{}
				seen := map[string]int{}
				cursor := uint64(0)
				for step := 0; ; step++ {
					require.Less(t, step, 100000)
					page, next := scanStep(t, b, cursor, 1+rng.IntN(20))
					for _, k := range page {
						seen[k]++
						require.True(t, model[k], "returned absent key %s", k)
					}
					if next == 0 {
						break
					}
					cursor = next
					ops := rng.IntN(3) * rng.IntN(200)
					for range ops {
						k := key()
						switch r := rng.IntN(10); {
						case r < 4:
							require.NoError(t, b.Put(k, []byte("v")))
							model[k] = true
							touched[k] = true
						case r < 7:
							if model[k] {
								_, err := b.Delete(k)
								require.NoError(t, err)
								delete(model, k)
								touched[k] = true
							}
						default:
							abort := rng.IntN(2) == 0
							var ks []string
							err := b.Update(func(tx *Tx) error {
								for range 1 + rng.IntN(30) {
									k := key()
									if rng.IntN(2) == 0 {
										_ = tx.Put(k, []byte("t"))
									} else {
										_, _ = tx.Delete(k)
									}
									ks = append(ks, k)
									if rng.IntN(8) == 0 {
										if _, _, err := tx.Scan(rng.Uint64(), 5); err != nil {
											return err
										}
									}
								}
								if abort {
									return errors.New("abort")
								}
								return nil
							})
							if !abort {
								require.NoError(t, err)
								for _, k := range ks {
									ok, _ := b.Get(k)
									if ok != nil {
										model[k] = true
									} else {
										delete(model, k)
									}
									touched[k] = true
								}
							}
						}
					}
				}
				for k := range start {
					if !touched[k] {
						require.Equal(t, 1, seen[k], "seed %d n %d: key %s present throughout", seed, n, k)
					}
				}
				for k, c := range seen {
					require.LessOrEqual(t, c, 1, "key %s returned %d times", k, c)
				}
			}
		}
	}
}
