package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/store"
)

// gatedDrop is a store whose DropBucket, once entered, waits for release
// before it drops. afterDrop, if set, runs once the drop is done.
type gatedDrop struct {
	*countingStore
	entered   chan struct{} // closed at the first DropBucket
	release   chan struct{}
	once      sync.Once
	afterDrop func()
}

func newGatedDrop(st *countingStore) *gatedDrop {
	return &gatedDrop{countingStore: st, entered: make(chan struct{}), release: make(chan struct{})}
}

func (s *gatedDrop) DropBucket(name string) error {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	err := s.countingStore.DropBucket(name)
	if s.afterDrop != nil {
		s.afterDrop()
	}
	return err
}

// DropBucketNoWait is gated as DropBucket is: afterDrop runs once the
// drop is queued.
func (s *gatedDrop) DropBucketNoWait(name string) (store.Waiter, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	w, err := s.countingStore.DropBucketNoWait(name)
	if s.afterDrop != nil {
		s.afterDrop()
	}
	return w, err
}

// stoppingTree serves a registry on st with StopTimeout stop, beside a
// running event manager and bucket supervisor; cancel stops the registry
// alone, whose drain then waits for the buckets that still run (a Stop of
// each ends it), and done gets its Serve's result.
func stoppingTree(t *testing.T, st Store, stop time.Duration) (reg *Registry, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	return registryAlone(t, stop, func(sup *bucket.Supervisor) Config { return Config{Buckets: sup, Store: st} })
}

// waitClosed waits until reg's stop has begun (drain has set closed).
func waitClosed(t *testing.T, reg *Registry) {
	t.Helper()
	require.Eventually(t, func() bool {
		reg.mu.RLock()
		defer reg.mu.RUnlock()
		return reg.closed
	}, waitFor, tick)
}

// Callers that keep using a durable registry while it stops (a host, a
// front end slow to stop) do not hold its stop until StopTimeout: an
// operation that needs a claim (a load, a create, a delete, a rename) or
// a flush is refused once the stop has begun, and the drain waits only
// for those begun before. (Before, they were refused only once drained:
// some claim was always held, the drain waited the whole StopTimeout,
// then returned with a Delete still under way, which dropped its bucket
// after Serve had returned, where another tree may already serve. The
// Delete here never finishes until the test ends: the extreme of "always
// some claim held". Renames and flushes are refused likewise: see
// TestOperationsRefusedOnceTheStopBegan.)
func TestStopIsNotHeldByOperationsBegunDuringIt(t *testing.T) {
	cs := openStoreT(t, t.TempDir())
	const stored = 4
	for i := range stored {
		require.NoError(t, cs.Apply(fmt.Sprintf("s%d", i), store.Put("k", []byte("v"))))
	}
	st := newGatedDrop(cs)
	reg, cancel, done := stoppingTree(t, st, 10*time.Minute)
	defer cancel()
	bg := context.Background()
	live, err := reg.Create(bg, "live")
	require.NoError(t, err)
	cancel()
	waitClosed(t, reg) // the drain waits for live's end
	defer live.Stop(nil)

	// The callers' context ends only when the test does, and with it
	// any wait for a claim.
	lctx, quit := context.WithCancel(bg)
	var wg sync.WaitGroup
	defer func() { quit(); close(st.release); wg.Wait() }()
	var calls atomic.Int64
	var (
		mu         sync.Mutex
		unexpected []error // those that do not wrap ErrStopped
	)
	loop := func(op func(i int) error) {
		wg.Go(func() {
			for i := 0; ; i++ {
				if lctx.Err() != nil {
					return
				}
				if err := op(i); !errors.Is(err, ErrStopped) {
					mu.Lock()
					if len(unexpected) < 5 {
						unexpected = append(unexpected, err)
					}
					mu.Unlock()
				}
				calls.Add(1)
			}
		})
	}
	loop(func(i int) error { // a load of a stored bucket not in memory
		_, _, err := reg.LookupErr(fmt.Sprintf("s%d", i%stored))
		return err
	})
	loop(func(i int) error {
		_, err := reg.Create(lctx, fmt.Sprintf("new%d", i%8))
		return err
	})
	loop(func(i int) error {
		_, _, err := reg.CreateWith(lctx, fmt.Sprintf("with%d", i%8), func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
		return err
	})
	// Before, the first Delete took its claim and held it in the store,
	// and the stop with it.
	loop(func(i int) error { return reg.Delete(lctx, fmt.Sprintf("s%d", i%stored)) })
	require.Eventually(t, func() bool { return calls.Load() >= 500 }, waitFor, tick)

	live.Stop(nil) // the last bucket ends: nothing begun before the stop is left
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second): // far below StopTimeout
		require.FailNow(t, "Serve did not return: the stop waits for operations begun during it")
	}
	mu.Lock()
	assert.Empty(t, unexpected, "every operation begun during the stop is refused")
	mu.Unlock()
	for i := range stored {
		has, err := cs.Has(fmt.Sprintf("s%d", i))
		require.NoError(t, err)
		assert.True(t, has, "s%d is still stored: no delete, rename or flush ran", i)
	}
}

// A Delete under way when the stop begins still holds it: its drop is
// queued before Serve returns, and on disk by then (the stop commits the
// writes queued before it), and the Delete succeeds.
func TestStopWaitsForADeleteBegunBeforeIt(t *testing.T) {
	cs := openStoreT(t, t.TempDir())
	require.NoError(t, cs.Apply("doomed", store.Put("k", []byte("v"))))
	st := newGatedDrop(cs)
	reg, cancel, done := stoppingTree(t, st, 10*time.Minute)
	defer cancel()
	served := make(chan struct{})
	var serveErr error
	go func() { serveErr = <-done; close(served) }()
	returnedFirst := make(chan bool, 1) // whether Serve had returned when the drop was done
	st.afterDrop = func() { returnedFirst <- isClosed(served)() }

	deleted := make(chan error, 1)
	go func() { deleted <- reg.Delete(context.Background(), "doomed") }()
	<-st.entered // the Delete holds its claim
	cancel()
	waitClosed(t, reg)
	// A stop that did not wait would return now: give it the chance.
	require.Never(t, isClosed(served), 200*time.Millisecond, 5*time.Millisecond,
		"the stop waits for the Delete begun before it")
	close(st.release)
	require.NoError(t, <-deleted)
	assert.False(t, <-returnedFirst, "the drop was done before Serve returned")
	<-served
	require.ErrorIs(t, serveErr, context.Canceled)
	has, err := cs.Has("doomed")
	require.NoError(t, err)
	assert.False(t, has, "the Delete's drop is on disk")
}

// Once the stop has begun, and before it is over, every operation of a
// durable registry that would load a bucket or change the store answers
// with an error wrapping ErrStopped, and changes nothing: the stored
// buckets are as they were when Serve returns.
func TestOperationsRefusedOnceTheStopBegan(t *testing.T) {
	cs := openStoreT(t, t.TempDir())
	require.NoError(t, cs.Apply("stored", store.Put("k", []byte("v"))))
	reg, cancel, done := stoppingTree(t, cs, 10*time.Minute)
	defer cancel()
	bg := context.Background()
	live, err := reg.Create(bg, "live")
	require.NoError(t, err)
	cancel()
	waitClosed(t, reg) // the drain waits for live's end
	defer live.Stop(nil)

	_, ok, err := reg.LookupErr("stored")
	assert.False(t, ok)
	assert.ErrorIs(t, err, ErrStopped, "LookupErr of a stored bucket not in memory")
	_, err = reg.Create(bg, "new")
	assert.ErrorIs(t, err, ErrStopped, "Create")
	_, _, err = reg.CreateWith(bg, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
	assert.ErrorIs(t, err, ErrStopped, "CreateWith")
	assert.ErrorIs(t, reg.Delete(bg, "stored"), ErrStopped, "Delete of a stored bucket")
	assert.ErrorIs(t, reg.Delete(bg, "live"), ErrStopped, "Delete of a live bucket")
	assert.ErrorIs(t, reg.Rename(bg, "stored", "other"), ErrStopped, "Rename")
	assert.ErrorIs(t, reg.FlushAll(bg), ErrStopped, "FlushAll")
	select {
	case <-done:
		require.FailNow(t, "Serve returned while live still ran")
	default:
	}

	live.Stop(nil)
	require.ErrorIs(t, <-done, context.Canceled)
	got := map[string]bool{}
	require.NoError(t, cs.Buckets(func(name string) error { got[name] = true; return nil }))
	assert.Equal(t, map[string]bool{"stored": true, "live": true}, got, "nothing was created, deleted, renamed or flushed")
}
