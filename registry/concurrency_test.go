package registry

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

// A subscriber that never reads costs Create nothing but lost events.
func TestStuckSubscriberDoesNotSlowCreate(t *testing.T) {
	tr := newTree(t)
	release := make(chan struct{})
	stuck, err := tr.ev.Subscribe(events.SubscribeOptions{Mailbox: 8, Name: "stuck"},
		func(events.Event) { <-release })
	require.NoError(t, err)

	const n = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			_, err := tr.reg.Create(ctx, fmt.Sprintf("s%d", i))
			assert.NoError(t, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Create blocked behind a subscriber that never reads")
	}
	assert.Equal(t, n, tr.reg.Len())
	assert.GreaterOrEqual(t, stuck.Dropped(), uint64(n-9), "its losses are counted")
	assert.Equal(t, stuck.Dropped(), tr.ev.Stats().Dropped, "and only its")
	close(release)
	stuck.Close()
}

// Many goroutines create, look up, write to and delete overlapping names.
// Afterwards: every Created has exactly one Exited, no Lookup returned a
// bucket whose Exited had already been observed, and every acknowledged
// write to a bucket still live is there.
func TestConcurrentCreateLookupWriteDelete(t *testing.T) {
	tr := newTree(t)
	const (
		workers = 8
		names   = 64
	)
	duration := 2 * time.Second
	if testing.Short() {
		duration = 300 * time.Millisecond
	}
	name := func(r *rand.Rand) string { return fmt.Sprintf("n%02d", r.IntN(names)) }

	type ack struct {
		id         uint64
		key, value string
	}
	var (
		stale   atomic.Int64 // lookups that returned an already-exited bucket
		lookups atomic.Int64
		writes  atomic.Int64
		deletes atomic.Int64
		acksMu  sync.Mutex
		acks    []ack
	)
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			var mine []ack
			for seq := 0; time.Now().Before(deadline); seq++ {
				n := name(r)
				switch op := r.IntN(20); {
				case op < 5: // create
					_, err := tr.reg.Create(ctx, n)
					require.NoError(t, err)
				case op < 11: // look up
					before := tr.rec.observations()
					if b, ok := tr.reg.Lookup(n); ok {
						lookups.Add(1)
						if tr.rec.exitedBefore(b.ID(), before) {
							stale.Add(1)
						}
					}
				case op < 19: // write
					b, ok := tr.reg.Lookup(n)
					if !ok {
						continue
					}
					key, value := fmt.Sprintf("w%d-%d", w, seq), fmt.Sprintf("v%d", seq)
					switch err := b.Put(key, []byte(value)); err {
					case nil:
						writes.Add(1)
						mine = append(mine, ack{b.ID(), key, value})
					default:
						require.ErrorIs(t, err, bucket.ErrEnded, "a refused write says why")
					}
				default: // delete
					if err := tr.reg.Delete(ctx, n); err == nil {
						deletes.Add(1)
					} else {
						require.ErrorIs(t, err, ErrNotFound)
					}
				}
			}
			acksMu.Lock()
			acks = append(acks, mine...)
			acksMu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("lookups %d, acknowledged writes %d, deletes %d", lookups.Load(), writes.Load(), deletes.Load())
	require.Positive(t, deletes.Load())
	assert.Zero(t, stale.Load(), "a Lookup returned a bucket after its Exited was observed")

	// Scan walks the live names, each once.
	scanned := scanAll(t, tr.reg, 3)
	assert.Len(t, scanned, tr.reg.Len())
	for _, n := range tr.reg.Names() {
		assert.Equal(t, 1, scanned[n], n)
	}

	// Every acknowledged write to a bucket that is still live is there.
	live := map[uint64]*bucket.Bucket{}
	for _, n := range tr.reg.Names() {
		b, ok := tr.reg.Lookup(n)
		require.True(t, ok)
		live[b.ID()] = b
	}
	var checked int
	for _, a := range acks {
		b, ok := live[a.id]
		if !ok {
			continue // that bucket was deleted later: its data went with it
		}
		v, err := b.Get(a.key)
		require.NoError(t, err, "acknowledged write %s=%s to bucket %d is missing", a.key, a.value, a.id)
		require.Equal(t, a.value, string(v))
		checked++
	}
	t.Logf("verified %d acknowledged writes in %d live buckets", checked, len(live))

	// Once all are stopped, every Created has exactly one Exited.
	tr.stop()
	tr.rec.mu.Lock()
	defer tr.rec.mu.Unlock()
	require.NotEmpty(t, tr.rec.created)
	for id, n := range tr.rec.created {
		if n != 1 || len(tr.rec.exited[id]) != 1 {
			t.Fatalf("bucket %d: %d Created and %d Exited, want one each", id, n, len(tr.rec.exited[id]))
		}
	}
	t.Logf("%d buckets, each with one Created and one Exited", len(tr.rec.created))
	for id := range tr.rec.exited {
		if _, ok := tr.rec.created[id]; !ok {
			t.Fatalf("an Exited without a Created: bucket %d", id)
		}
	}
	// And, per bucket, Created comes before Exited.
	seen := map[uint64]bool{}
	for _, ev := range tr.rec.all {
		switch ev.(type) {
		case events.Created:
			seen[ev.BucketID()] = true
		case events.Exited:
			require.True(t, seen[ev.BucketID()], "Exited before Created for %d", ev.BucketID())
		}
	}
}
