package registry

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

// A registry whose Serve has returned (its StopTimeout passed while a
// bucket still ran) no longer forgets anything. A bucket of it that ends
// afterwards stays under its name: Create then waits for a Forgotten that
// never comes, until ctx ends (for ever with context.Background) instead
// of answering ErrStopped.
func TestCreateOnAStoppedRegistryDoesNotHang(t *testing.T) {
	reg, regCancel, regDone := givingUpTree(t, func(sup *bucket.Supervisor) Config { return Config{Buckets: sup} })
	b, err := reg.Create(context.Background(), "a")
	require.NoError(t, err)
	regCancel()
	<-regDone // drain timed out: "a" is still running
	b.Stop(errors.New("crash"))
	<-b.Done()

	cctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	start := time.Now()
	_, err = reg.Create(cctx, "a")
	require.ErrorIs(t, err, ErrStopped, "after %v", time.Since(start))
	start = time.Now()
	_, _, err = reg.LookupCurrent(cctx, "a")
	require.ErrorIs(t, err, ErrStopped, "LookupCurrent, after %v", time.Since(start))
}

// delayedEnds reports a bucket's end to the registry only once gate is
// closed (a bucket supervisor slow to report).
type delayedEnds struct {
	*bucket.Supervisor
	gate chan struct{}
}

func (d delayedEnds) Start(b *bucket.Bucket, onEnd func(*bucket.Bucket, error)) error {
	return d.Supervisor.Start(b, func(b *bucket.Bucket, reason error) {
		go func() { <-d.gate; onEnd(b, reason) }()
	})
}

// FlushAll releases flushMu before it waits for the buckets to be
// forgotten, so two can overlap; the first to finish sets r.flushing to
// nil while the second is still in DropAll, and a stop then returns
// before that DropAll runs: the store is wiped after Serve returned.
func TestStopWaitsForASecondOverlappingFlush(t *testing.T) {
	st := newGatedDropAll(openStoreT(t, t.TempDir()), true)
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	ends := delayedEnds{Supervisor: sup, gate: make(chan struct{})}
	reg := New(Config{Buckets: ends, Events: ev, Store: st})
	root := suture.New("test", suture.Spec{EventHook: func(suture.Event) {}})
	root.Add(ev)
	root.Add(sup)
	root.Add(reg)
	rctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(rctx)
	stopped := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-errc; close(stopped) }) }
	released := false
	defer func() {
		if !released {
			close(st.release)
		}
		stop()
	}()

	ctx := context.Background()
	_, err := reg.Create(ctx, "b")
	require.NoError(t, err)
	first := make(chan error, 1)
	go func() { first <- reg.FlushAll(ctx) }() // waits for "b" to be forgotten
	<-st.firstDone
	second := make(chan error, 1)
	go func() { second <- reg.FlushAll(ctx) }()
	<-st.entered // the second flush is in its DropAll
	close(ends.gate)
	require.NoError(t, <-first)

	reg.mu.RLock()
	flushing := reg.flushing
	reg.mu.RUnlock()
	assert.NotNil(t, flushing, "a flush is still under way")

	go stop()
	require.Never(t, isClosed(stopped), 300*time.Millisecond, 5*time.Millisecond, "the stop waits for the second flush")
	released = true
	close(st.release)
	<-second
	<-stopped
}

// A FlushAll under way when drain gives up (StopTimeout) waits for
// forgets that no loop will make: it blocks until ctx ends.
func TestFlushAllAfterDrainGaveUpReturns(t *testing.T) {
	var ends delayedEnds
	reg, regCancel, regDone := givingUpTree(t, func(sup *bucket.Supervisor) Config {
		ends = delayedEnds{Supervisor: sup, gate: make(chan struct{})}
		return Config{Buckets: ends, Store: openStoreT(t, t.TempDir())}
	})
	bg := context.Background()
	b, err := reg.Create(bg, "b")
	require.NoError(t, err)
	fctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	flushed := make(chan error, 1)
	go func() { flushed <- reg.FlushAll(fctx) }()
	<-b.Done() // the flush has begun; its end is held back by ends
	regCancel()
	<-regDone // gave up after StopTimeout
	close(ends.gate)
	require.ErrorIs(t, <-flushed, ErrStopped, "not its context's end: no loop forgets the buckets any more")
}

// givingUpTree serves a registry (StopTimeout 50 ms, cfg's Buckets and
// Store) on a running event manager and bucket supervisor; cancel stops
// the registry alone, so that its drain gives up while buckets still run.
func givingUpTree(t *testing.T, cfg func(sup *bucket.Supervisor) Config) (reg *Registry, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	return registryAlone(t, 50*time.Millisecond, cfg)
}

// registryAlone serves a registry (StopTimeout stop, cfg's Buckets and
// Store) beside a running event manager and bucket supervisor, which run
// until the test ends; cancel stops the registry alone, and done gets its
// Serve's result.
func registryAlone(t *testing.T, stop time.Duration, cfg func(sup *bucket.Supervisor) Config) (reg *Registry, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	bg := context.Background()
	evCtx, evCancel := context.WithCancel(bg)
	evDone := make(chan error, 1)
	go func() { evDone <- ev.Serve(evCtx) }()
	supCtx, supCancel := context.WithCancel(bg)
	supDone := make(chan error, 1)
	go func() { supDone <- sup.Serve(supCtx) }()
	t.Cleanup(func() { supCancel(); <-supDone; evCancel(); <-evDone })
	c := cfg(sup)
	c.Events = ev
	c.StopTimeout = stop
	reg = New(c)
	regCtx, regCancel := context.WithCancel(bg)
	regDone := make(chan error, 1)
	go func() { regDone <- reg.Serve(regCtx) }()
	return reg, regCancel, regDone
}

// Once drain gave up, a Delete (in memory: and so FlushAll) of a bucket
// that ends afterwards answers ErrStopped rather than waiting for a forget
// that no loop will make.
func TestDeleteAfterDrainGaveUpReturns(t *testing.T) {
	t.Run("memory flushall", func(t *testing.T) {
		reg, cancel, done := givingUpTree(t, func(sup *bucket.Supervisor) Config { return Config{Buckets: sup} })
		b, err := reg.Create(context.Background(), "a")
		require.NoError(t, err)
		cancel()
		<-done // drain gave up: "a" still runs
		b.Stop(errors.New("crash"))
		<-b.Done()
		ctx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		require.ErrorIs(t, reg.FlushAll(ctx), ErrStopped)
	})
	t.Run("store delete under way", func(t *testing.T) {
		var ends delayedEnds
		reg, cancel, done := givingUpTree(t, func(sup *bucket.Supervisor) Config {
			ends = delayedEnds{Supervisor: sup, gate: make(chan struct{})}
			return Config{Buckets: ends, Store: openStoreT(t, t.TempDir())}
		})
		_, err := reg.Create(context.Background(), "b")
		require.NoError(t, err)
		ctx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		deleted := make(chan error, 1)
		go func() { deleted <- reg.Delete(ctx, "b") }()
		require.Eventually(t, func() bool { // the Delete holds its claim
			reg.mu.RLock()
			defer reg.mu.RUnlock()
			return len(reg.claims) > 0
		}, waitFor, time.Millisecond)
		cancel()
		<-done // gave up after StopTimeout
		close(ends.gate)
		require.ErrorIs(t, <-deleted, ErrStopped)
	})
}

// isClosed returns a condition, for require.Eventually and Never, that
// holds once ch is closed.
func isClosed[T any](ch <-chan T) func() bool {
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}
