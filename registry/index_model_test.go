package registry

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/store"
)

// The index of stored names and the buckets in memory agree with the disk
// whatever the writes that change them (creates, DELs of one name or
// several, RENAMEs, RENAMENXs, COPYs, field writes) meet: clients run random pipelines of them over a few names,
// some of which the disk loses whole, and answer their writes in any
// order; after each round, once the store has recovered, Names lists
// exactly the buckets on disk and every one of them reads as the disk
// holds it. Each indexWrite bug found so far (a lost DEL then HSET, a
// create answered lost while a rename was queued) breaks this.
// KV_INDEX_MODEL_ROUNDS sets the rounds (default 500) and
// KV_INDEX_MODEL_SEED the seed (default: random, logged).
func TestDurableIndexAgreesWithTheDiskThroughLostWrites(t *testing.T) {
	rounds := 500
	if s := os.Getenv("KV_INDEX_MODEL_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		rounds = n
	}
	seed := rand.Uint64()
	if s := os.Getenv("KV_INDEX_MODEL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		seed = n
	}
	t.Logf("KV_INDEX_MODEL_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	faults := &store.Faults{}
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Nanosecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	reg, _, _ := newDurableTree(t, &countingStore{Store: st})
	names := []string{"a", "b", "c", "d"}

	// pipeline queues a client's random writes and returns their
	// Pendings, to be answered later.
	pipeline := func(rng *rand.Rand, client int, queued func()) []bucket.Pending {
		var ps []bucket.Pending
		for range 1 + rng.IntN(6) {
			name := names[rng.IntN(len(names))]
			var p bucket.Pending
			var err error
			switch rng.IntN(6) {
			case 0:
				_, p, err = reg.CreateWith(ctx, name, putF(fmt.Sprintf("c%d-%d", client, rng.IntN(1000))))
			case 1:
				p, err = reg.DeleteNoWait(ctx, name)
			case 2:
				p, err = reg.RenameNoWait(ctx, name, names[rng.IntN(len(names))])
			case 4, 5: // RENAMENX, COPY with or without REPLACE
				to := names[rng.IntN(len(names))]
				var done bool
				if rng.IntN(2) == 0 {
					done, p, err = reg.RenameNXNoWait(ctx, name, to)
				} else {
					done, p, err = reg.CopyNoWait(ctx, name, to, rng.IntN(2) == 0)
				}
				if err == nil && !done {
					continue // nothing queued
				}
			case 3: // DEL of several names, some maybe twice
				many := []string{name}
				for range rng.IntN(3) {
					many = append(many, names[rng.IntN(len(names))])
				}
				var drops []bucket.Pending
				_, drops, err = reg.DeleteManyNoWait(ctx, many)
				for _, d := range drops {
					ps = append(ps, d)
					queued()
				}
				if err == nil {
					continue
				}
			}
			switch {
			case err == nil:
				ps = append(ps, p)
				queued()
			case errors.Is(err, ErrNotFound), errors.Is(err, store.ErrWriteFailed), errors.Is(err, bucket.ErrEnded):
				// refused, nothing queued
			default:
				t.Errorf("client %d: %v", client, err)
			}
		}
		return ps
	}

	var lostWrites, writes atomic.Int64
	for round := range rounds {
		// Two clients each queue a pipeline, then answer it in an order
		// of their own (a pipeline answers in order, but the other client
		// does not wait for it), side by side: one may answer while the
		// other queues. In one round of three the disk starts failing
		// once a random number of writes are queued.
		lose := rng.IntN(3) == 0
		failAt := int64(-1)
		if lose {
			failAt = 1 + rng.Int64N(8)
		}
		var queuedN atomic.Int64
		seeds := [2]uint64{rng.Uint64(), rng.Uint64()}
		var wg sync.WaitGroup
		for c := range seeds {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seeds[c], uint64(c)))
				ps := pipeline(r, c, func() {
					if queuedN.Add(1) == failAt {
						faults.FailSyncs(syscall.EIO)
					}
				})
				r.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
				for _, p := range ps {
					writes.Add(1)
					err := p.Wait()
					if err != nil {
						lostWrites.Add(1)
					}
					if err != nil && !lose {
						t.Errorf("round %d: a write failed with no fault: %v", round, err)
					}
				}
			})
		}
		wg.Wait()
		faults.Clear()
		require.Eventually(t, func() bool {
			_, p, err := reg.CreateWith(ctx, "probe", putF("p"))
			return err == nil && p.Wait() == nil
		}, waitFor, tick, "round %d: the store recovers", round)

		require.NoError(t, st.Settle())
		var disk []string
		require.NoError(t, st.Buckets(func(n string) error { disk = append(disk, n); return nil }))
		listed, err := reg.NamesErr()
		require.NoError(t, err)
		require.ElementsMatch(t, disk, listed, "round %d (lost: %v): the names listed are the buckets on disk", round, lose)
		for _, n := range names {
			pairs, stored, err := st.Load(n)
			require.NoError(t, err)
			b, found, err := reg.LookupCurrent(ctx, n)
			require.NoError(t, err)
			require.Equal(t, stored, found, "round %d (lost: %v): %s found as the disk holds it", round, lose, n)
			if !found {
				continue
			}
			mem := map[string][]byte{}
			require.NoError(t, b.View(func(tx *bucket.Tx) error {
				return tx.ForEach(func(k string, v []byte) error { mem[k] = bytes.Clone(v); return nil })
			}))
			if len(pairs) == 0 {
				pairs = map[string][]byte{}
			}
			require.Equal(t, pairs, mem, "round %d (lost: %v): %s reads as the disk holds it", round, lose, n)
		}
	}
	t.Logf("%d writes answered, %d of them lost", writes.Load(), lostWrites.Load())
	require.Positive(t, lostWrites.Load(), "some writes were lost: the test exercised the failures")
}
