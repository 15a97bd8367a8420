package registry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/store"
)

// unloadingTree serves a tree around a registry with st and UnloadIdle
// idle until the test ends (see serveTreeOf for wrap and before).
func unloadingTree(t *testing.T, st Store, idle time.Duration, wrap func(*events.Manager) Publisher, before func(*Registry)) (*Registry, *bucket.Supervisor, *events.Manager) {
	t.Helper()
	reg, sup, ev, _ := serveTreeOf(t, Config{Store: st, UnloadIdle: idle}, wrap, before)
	return reg, sup, ev
}

// newUnloadingTree is unloadingTree with the Exited events it publishes,
// as they come.
func newUnloadingTree(t *testing.T, st Store, idle time.Duration) (*Registry, *bucket.Supervisor, <-chan events.Exited) {
	t.Helper()
	reg, sup, ev := unloadingTree(t, st, idle, nil, nil)
	exited := make(chan events.Exited, 1024)
	sub, err := ev.Subscribe(events.SubscribeOptions{Mailbox: 1024}, func(e events.Event) {
		if x, ok := e.(events.Exited); ok {
			exited <- x
		}
	})
	require.NoError(t, err)
	t.Cleanup(sub.Close)
	return reg, sup, exited
}

// nextExited returns the next Exited, failing the test after 10 s.
func nextExited(t *testing.T, exited <-chan events.Exited) events.Exited {
	t.Helper()
	select {
	case x := <-exited:
		return x
	case <-time.After(10 * time.Second):
		t.Fatal("no Exited")
		return events.Exited{}
	}
}

// A pass of the unloader ends the buckets that no lookup returned since
// the pass before: a new bucket survives its first pass, a looked-up one
// the pass after its lookup. An unloaded bucket keeps its data in the
// store; its next lookup loads it back, as a new instance.
func TestUnloadIdleEndsWhatNoLookupReturned(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	reg, sup, exited := newUnloadingTree(t, st, time.Hour) // passes run by hand
	ctx := context.Background()
	a, err := reg.Create(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, a.Put("k", []byte("va")))
	b, err := reg.Create(ctx, "b")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("vb")))

	assert.Zero(t, reg.unloadIdleOnce(nil), "new buckets are in use")
	_, ok := reg.Lookup("a")
	require.True(t, ok)
	assert.Equal(t, 1, reg.unloadIdleOnce(nil), "b: no lookup since the last pass")
	x := nextExited(t, exited)
	assert.Equal(t, "b", x.Bucket)
	assert.Equal(t, b.ID(), x.ID)
	assert.ErrorIs(t, x.Reason, bucket.ErrIdle)
	assert.Equal(t, bucket.EndIdle, bucket.EndKind(x.Reason))
	select {
	case <-a.Done():
		t.Fatal("a was looked up since the last pass")
	default:
	}

	assert.Equal(t, 1, reg.unloadIdleOnce(nil), "a: no lookup since")
	x = nextExited(t, exited)
	assert.Equal(t, "a", x.Bucket)
	require.Eventually(t, func() bool { return sup.Running() == 0 && len(reg.Live()) == 0 },
		10*time.Second, time.Millisecond, "out of memory, goroutines included")
	assert.Equal(t, EndCounts{Idle: 2}, reg.Ends())
	assert.ElementsMatch(t, []string{"a", "b"}, reg.Names(), "still stored")
	assert.Equal(t, 2, reg.Len())

	for name, want := range map[string]string{"a": "va", "b": "vb"} {
		got, ok, err := reg.LookupCurrent(ctx, name)
		require.NoError(t, err)
		require.True(t, ok, name)
		v, err := got.Get("k")
		require.NoError(t, err)
		assert.Equal(t, want, string(v), "%s: loaded back from the store", name)
	}
	_, err = a.Get("k")
	assert.True(t, bucket.EndedBefore(err), "the old instance stays ended: %v", err)
}

// With a period, the registry unloads by itself; a Delete of an unloaded
// bucket deletes it from the store.
func TestUnloadIdleRunsEveryPeriod(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	reg, sup, exited := newUnloadingTree(t, st, 5*time.Millisecond)
	ctx := context.Background()
	b, err := reg.Create(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))
	x := nextExited(t, exited)
	assert.Equal(t, "a", x.Bucket)
	assert.ErrorIs(t, x.Reason, bucket.ErrIdle)
	require.Eventually(t, func() bool { return sup.Running() == 0 }, 10*time.Second, time.Millisecond)

	require.NoError(t, reg.Delete(ctx, "a"))
	assert.Empty(t, reg.Names())
	_, found, err := st.Load("a")
	require.NoError(t, err)
	assert.False(t, found, "deleted from the store")
}

// Writers that keep looking their buckets up meet the unloader at every
// turn (passes one after the other, and the period's too): every write
// they were told succeeded is there at the end, each bucket's last value
// wins, and nothing else is.
func TestUnloadIdleLosesNoWrite(t *testing.T) {
	st := openStoreWith(t, t.TempDir(), store.Options{Fsync: store.FsyncNo})
	reg, _, _ := newUnloadingTree(t, st, time.Millisecond)
	ctx := context.Background()
	const writers, names, writes = 8, 6, 300
	quit, passed := make(chan struct{}), make(chan int)
	go func() {
		unloaded := 0
		for {
			select {
			case <-quit:
				passed <- unloaded
				return
			default:
			}
			unloaded += reg.unloadIdleOnce(quit)
			runtime.Gosched()
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range writes {
				name := fmt.Sprintf("b%d", (w+i)%names)
				key, val := fmt.Sprintf("w%d", w), []byte(fmt.Sprint(i))
				for attempt := 0; ; attempt++ {
					require.Less(t, attempt, 100, "ended at every attempt")
					b, err := reg.Create(ctx, name)
					if errors.Is(err, bucket.ErrEnded) {
						// Unloaded as often as Create follows the name
						// (passes back to back, under load): its error
						// says try again, as a front end's does.
						continue
					}
					require.NoError(t, err)
					err = b.Put(key, val)
					if bucket.EndedBefore(err) {
						continue // unloaded between the lookup and the write
					}
					require.NoError(t, err)
					break
				}
			}
		}()
	}
	wg.Wait()
	close(quit)
	n := <-passed
	t.Logf("%d unloads", n)
	assert.Positive(t, n, "buckets were unloaded under the writers")
	for n := range names {
		name := fmt.Sprintf("b%d", n)
		b, ok, err := reg.LookupCurrent(ctx, name)
		require.NoError(t, err)
		require.True(t, ok, name)
		got := map[string]string{}
		require.NoError(t, b.View(func(tx *bucket.Tx) error {
			return tx.ForEach(func(k string, v []byte) error {
				got[k] = string(v)
				return nil
			})
		}))
		want := map[string]string{}
		for w := range writers {
			for i := writes - 1; i >= 0; i-- { // w's last write to this name
				if (w+i)%names == n {
					want[fmt.Sprintf("w%d", w)] = fmt.Sprint(i)
					break
				}
			}
		}
		assert.Equal(t, want, got, name)
	}
}

// Without a store an unloaded bucket's data would be gone: New refuses.
func TestUnloadIdleNeedsAStore(t *testing.T) {
	assert.PanicsWithValue(t,
		"registry: Config.UnloadIdle needs a Config.Store: in memory, an unloaded bucket's data would be lost",
		func() {
			New(Config{Buckets: bucket.NewSupervisor(bucket.SupervisorOptions{}), Events: events.New(events.Options{}), UnloadIdle: time.Second})
		})
}

// A pass waits for the events' subscribers between its batches: one that
// takes its events slowly, with a small mailbox, loses none of the
// Exited of hundreds of unloads.
func TestUnloadIdleLeavesSubscribersRoom(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	reg, _, ev := unloadingTree(t, st, time.Hour, nil, nil) // passes run by hand
	ctx := context.Background()
	const n = 600
	for i := range n {
		_, err := reg.Create(ctx, fmt.Sprintf("b%d", i))
		require.NoError(t, err)
	}
	var exited atomic.Int64
	slow, err := ev.Subscribe(events.SubscribeOptions{Mailbox: 100}, func(e events.Event) {
		// Slower than the unloads' cap (unloadRate), so that only the
		// wait for room keeps the mailbox from overflowing.
		for began := time.Now(); time.Since(began) < 2*time.Second/unloadRate; {
			runtime.Gosched()
		}
		if _, ok := e.(events.Exited); ok {
			exited.Add(1)
		}
	})
	require.NoError(t, err)
	defer slow.Close()

	assert.Zero(t, reg.unloadIdleOnce(nil), "new buckets are in use")
	assert.Equal(t, n, reg.unloadIdleOnce(nil))
	require.Eventually(t, func() bool { return exited.Load() == n }, 10*time.Second, time.Millisecond)
	assert.Zero(t, slow.Dropped(), "no Exited lost")
}
