package resp

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// Transactions that hold their writes (DEL, RENAME, FLUSHALL, HSET on
// buckets that must be loaded or created, DEBUG CRASH-BUCKET) run among
// clients that pipeline writes, while the disk fails and recovers: no
// client waits for ever.
func TestHeldTransactionsAmongFaultsDoNotHang(t *testing.T) {
	for _, policy := range []store.Fsync{store.FsyncEverySec, store.FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			faults := &store.Faults{}
			ds := startDurable(t, t.TempDir(), store.Options{Fsync: policy, Faults: faults, RetryInterval: time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const rounds = 150
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			stuck := func(err error) bool { return err != nil && ctx.Err() != nil }
			for w := range 3 {
				rc := ds.client(t)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range rounds {
						_, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
							for j := range 8 {
								p.HSet(ctx, fmt.Sprintf("p%d-%d", w, j%3), "f"+strconv.Itoa(j), i)
							}
							return nil
						})
						if stuck(err) {
							errs <- fmt.Errorf("pipeliner %d stuck: %w", w, err)
							return
						}
					}
				}()
			}
			for x := range 2 {
				rc := ds.client(t)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range rounds {
						k := fmt.Sprintf("t%d-%d", x, i%4)
						_, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.HSet(ctx, k, "a", i)
							p.HSet(ctx, fmt.Sprintf("p%d-0", i%3), "tx", i)
							switch i % 6 {
							case 0:
								p.Del(ctx, k)
							case 1:
								p.Rename(ctx, k, k+"r")
							case 2:
								p.Do(ctx, "DEBUG", "CRASH-BUCKET", fmt.Sprintf("p%d-1", i%3))
								p.HSet(ctx, fmt.Sprintf("p%d-1", i%3), "after", i)
							case 3:
								if x == 0 && i%12 == 3 {
									p.FlushAll(ctx)
								}
							case 4:
								p.HIncrBy(ctx, k+"r", "n", 1)
								p.HSetNX(ctx, "new"+strconv.Itoa(i), "f", "v")
							}
							p.HSet(ctx, k, "b", i)
							return nil
						})
						if stuck(err) {
							errs <- fmt.Errorf("transaction client %d stuck: %w", x, err)
							return
						}
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				rc := ds.client(t)
				for i := range 40 {
					if i%2 == 0 {
						faults.FailSyncs(syscall.EIO)
					} else {
						faults.FailWrites(syscall.ENOSPC)
					}
					_ = rc.HSet(ctx, "faulty", "f", i).Err()
					faults.Clear()
					_ = rc.HSet(ctx, "faulty", "f", i).Err()
					if ctx.Err() != nil {
						errs <- fmt.Errorf("fault injector stuck: %w", ctx.Err())
						return
					}
				}
			}()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			faults.Clear()
			rc := ds.client(t)
			require.Eventually(t, func() bool { return rc.HSet(context.Background(), "end", "f", "v").Err() == nil }, 10*time.Second, time.Millisecond)
		})
	}
}
