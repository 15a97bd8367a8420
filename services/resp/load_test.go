package resp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoad runs 200 concurrent clients doing mixed reads and writes on
// overlapping buckets, then checks that every acknowledged write is there
// and that the counters add up.
func TestLoad(t *testing.T) {
	const (
		clients = 200
		ops     = 150
		buckets = 16
	)
	ts := start(t, Config{})
	ctx := context.Background()

	type ack struct{ bucket, field, value string }
	acked := make([][]ack, clients)
	incrs := make([][buckets]int64, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for id := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := redis.NewClient(&redis.Options{Addr: ts.addr, PoolSize: 1, MaxRetries: -1})
			defer rc.Close()
			rng := rand.New(rand.NewPCG(uint64(id), 7))
			for i := range ops {
				b := rng.IntN(buckets)
				bucket := fmt.Sprintf("load:%d", b)
				switch rng.IntN(4) {
				case 0, 1:
					field, value := fmt.Sprintf("c%d:%d", id, i), fmt.Sprint(rng.Uint64())
					if err := rc.HSet(ctx, bucket, field, value).Err(); err != nil {
						errs <- err
						return
					}
					acked[id] = append(acked[id], ack{bucket, field, value})
				case 2:
					if err := rc.HIncrBy(ctx, bucket, "counter", 1).Err(); err != nil {
						errs <- err
						return
					}
					incrs[id][b]++
				case 3:
					if len(acked[id]) > 0 {
						a := acked[id][rng.IntN(len(acked[id]))]
						v, err := rc.HGet(ctx, a.bucket, a.field).Result()
						if err != nil {
							errs <- err
							return
						}
						if v != a.value {
							errs <- fmt.Errorf("read %s/%s = %q, want %q", a.bucket, a.field, v, a.value)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	rc := ts.client(t)
	all := map[string]map[string]string{}
	for b := range buckets {
		name := fmt.Sprintf("load:%d", b)
		all[name] = rc.HGetAll(ctx, name).Val()
	}
	n := 0
	for id := range clients {
		for _, a := range acked[id] {
			assert.Equal(t, a.value, all[a.bucket][a.field], "acknowledged write %v", a)
			n++
		}
	}
	for b := range buckets {
		var want int64
		for id := range clients {
			want += incrs[id][b]
		}
		if want > 0 {
			assert.Equal(t, fmt.Sprint(want), all[fmt.Sprintf("load:%d", b)]["counter"])
		}
	}
	t.Logf("%d acknowledged writes checked", n)
}
