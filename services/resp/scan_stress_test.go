package resp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// HSCAN (with MATCH, COUNT 1, 10, large), SCAN and HRANDFIELD over the
// protocol while other connections add and delete fields and hashes: every
// field present throughout comes back once with its value, nothing never
// present comes back, HRANDFIELD's positive counts have no repeats and
// exact lengths.
func TestScanStressOverTheProtocol(t *testing.T) {
	for _, perClient := range []bool{false, true} {
		t.Run(fmt.Sprintf("goroutinePerClient=%v", perClient), func(t *testing.T) {
			stressScanOverTheProtocol(t, start(t, Config{GoroutinePerClient: perClient}))
		})
	}
}

func stressScanOverTheProtocol(t *testing.T, ts *testServer) {
	ctx := context.Background()
	for _, n := range []int{1, 7, 8, 9, 300, 1100} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			rc := ts.client(t)
			h := "h" + strconv.Itoa(n)
			stable := map[string]string{}
			for i := range n {
				f := string([]byte{byte(i), 0, 0xff}) + strconv.Itoa(i)
				if i == 0 {
					f = ""
				}
				stable[f] = "v" + f
				require.NoError(t, rc.HSet(ctx, h, f, "v"+f).Err())
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var writes atomic.Int64
			for w := range 2 {
				wc := ts.client(t)
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), uint64(n)))
					for {
						select {
						case <-stop:
							return
						default:
						}
						writes.Add(1)
						f := fmt.Sprintf("w%d:%d\x00", w, rng.IntN(50+n))
						var err error
						switch rng.IntN(5) {
						case 0, 1:
							err = wc.HSet(ctx, h, f, "c"+f).Err()
						case 2, 3:
							err = wc.HDel(ctx, h, f).Err()
						default:
							name := fmt.Sprintf("churn%d", rng.IntN(20))
							if rng.IntN(2) == 0 {
								err = wc.HSet(ctx, name, "x", "y").Err()
							} else {
								err = wc.Del(ctx, name).Err()
							}
						}
						if !assert.NoError(t, err) {
							return
						}
					}
				})
			}
			defer func() {
				select {
				case <-stop:
				default:
					close(stop)
				}
				wg.Wait()
			}()
			for iter := 0; iter < 8 || writes.Load() < 3000; iter++ {
				count := []int64{1, 10, 100000}[iter%3]
				match := []string{"", "*", "w0*", "*\x00*", "[^w]*"}[iter%5]
				seen := map[string]int{}
				var cursor uint64
				for step := 0; ; step++ {
					require.Less(t, step, 100000)
					kv, next, err := rc.HScan(ctx, h, cursor, match, count).Result()
					require.NoError(t, err)
					for i := 0; i < len(kv); i += 2 {
						f, v := kv[i], kv[i+1]
						seen[f]++
						if sv, ok := stable[f]; ok {
							require.Equal(t, sv, v)
						} else {
							require.Equal(t, "c"+f, v, "field %q never set", f)
						}
					}
					if next == 0 {
						break
					}
					require.Greater(t, next, cursor)
					cursor = next
				}
				for f := range stable {
					if match == "" || match == "*" || (match == "*\x00*" && f != "") || (match == "[^w]*" && f != "" && f[0] != 'w') {
						require.Equal(t, 1, seen[f], "match %q count %d: %q", match, count, f)
					}
				}
				for _, c := range []int64{1, 5, int64(n), int64(n) + 100} {
					fs, err := rc.HRandFieldWithValues(ctx, h, int(c)).Result()
					require.NoError(t, err)
					got := map[string]bool{}
					for _, p := range fs {
						require.False(t, got[p.Key], "repeat %q", p.Key)
						got[p.Key] = true
					}
					require.LessOrEqual(t, len(fs), int(c))
					require.GreaterOrEqual(t, len(fs), min(int(c), n))
					neg, err := rc.HRandField(ctx, h, -int(c)).Result()
					require.NoError(t, err)
					require.Len(t, neg, int(c))
				}
				names := map[string]int{}
				cursor = 0
				for {
					page, next, err := rc.Scan(ctx, cursor, "", 3).Result()
					require.NoError(t, err)
					for _, p := range page {
						names[p]++
					}
					if next == 0 {
						break
					}
					cursor = next
				}
				require.Equal(t, 1, names[h])
			}
		})
	}
}
