package main

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"math/rand/v2"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// DEL's drop joins the wake-up's group of writes, and a transaction's
// held group: kv is killed with SIGKILL while clients run transactions
// that create a bucket, DEL the one the previous transaction created and
// record its number (MULTI HSET w:n; DEL w:n-1; HSET ctr w n; EXEC), and
// clients that create then DEL a bucket of their own; after each restart
// each transaction is whole (exactly the bucket the counter names), every
// acknowledged one is there, and no acknowledged DEL is undone.
func TestKill9KeepsDelsWhole(t *testing.T) {
	bin := buildKV(t)
	for _, policy := range []string{"always", "everysec"} {
		t.Run(policy, func(t *testing.T) { delKill9Rounds(t, bin, policy) })
	}
}

func delKill9Rounds(t *testing.T, bin, policy string) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--fsync", policy}
	const writers, deleters = 4, 3
	var mu sync.Mutex
	acked := make([]int, writers)       // each writer's last acknowledged transaction
	next := make([]int, writers)        // its next transaction's number
	lastDel := make([]int, deleters)    // each deleter's last acknowledged DEL
	attemptDel := make([]int, deleters) // its DEL in flight
	mayStay := map[string]bool{}        // left by a DEL a kill cut off, in an earlier round
	for i := range lastDel {
		lastDel[i], attemptDel[i] = -1, -1
	}
	for i := range acked {
		acked[i] = -1
	}

	verify := func(t *testing.T, rc *redis.Client) {
		ctx := context.Background()
		mu.Lock()
		defer mu.Unlock()
		for w := range writers {
			keys, err := rc.Keys(ctx, "w"+strconv.Itoa(w)+":*").Result()
			require.NoError(t, err)
			c, err := rc.HGet(ctx, "ctr", strconv.Itoa(w)).Int()
			if err == redis.Nil {
				require.Empty(t, keys, "writer %d: no transaction, no bucket", w)
				require.Equal(t, -1, acked[w], "writer %d: acknowledged transaction lost", w)
				continue
			}
			require.NoError(t, err)
			require.Equal(t, []string{"w" + strconv.Itoa(w) + ":" + strconv.Itoa(c)}, keys, "writer %d at %d: not whole", w, c)
			require.GreaterOrEqual(t, c, acked[w], "writer %d: acknowledged transaction lost", w)
			acked[w], next[w] = c, c+1
		}
		for d := range deleters {
			keys, err := rc.Keys(ctx, "d"+strconv.Itoa(d)+":*").Result()
			require.NoError(t, err)
			for _, k := range keys {
				if mayStay[k] {
					continue
				}
				require.Equal(t, "d"+strconv.Itoa(d)+":"+strconv.Itoa(attemptDel[d]), k, "an acknowledged DEL was undone (acknowledged up to %d)", lastDel[d])
				require.NotEqual(t, lastDel[d], attemptDel[d])
				mayStay[k] = true
			}
		}
	}

	kill9Rounds(t, bin, args, func() int64 { return int64(50 + rand.IntN(400)) }, verify, func(r *crashRound) {
		ctx := context.Background()
		r.plainWriters(2)
		for w := range writers {
			r.goClient(func(rc *redis.Client) {
				for {
					mu.Lock()
					n := next[w]
					mu.Unlock()
					_, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
						p.HSet(ctx, "w"+strconv.Itoa(w)+":"+strconv.Itoa(n), "f", n)
						p.Del(ctx, "w"+strconv.Itoa(w)+":"+strconv.Itoa(n-1))
						p.HSet(ctx, "ctr", strconv.Itoa(w), n)
						return nil
					})
					if err != nil {
						r.failed("transaction", err)
						return
					}
					mu.Lock()
					acked[w], next[w] = n, n+1
					mu.Unlock()
					r.acked(1)
				}
			})
		}
		for d := range deleters {
			r.goClient(func(rc *redis.Client) {
				for seq := r.round * 1_000_000; ; seq++ {
					k := "d" + strconv.Itoa(d) + ":" + strconv.Itoa(seq)
					mu.Lock()
					attemptDel[d] = seq
					mu.Unlock()
					if err := rc.HSet(ctx, k, "f", 1).Err(); err != nil {
						r.failed("hset", err)
						return
					}
					n, err := rc.Del(ctx, k).Result()
					if err != nil {
						r.failed("del", err)
						return
					}
					assert.Equal(t, int64(1), n)
					mu.Lock()
					lastDel[d] = seq
					mu.Unlock()
					r.acked(1)
				}
			})
		}
	})
}
