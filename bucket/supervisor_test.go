package bucket

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ends records what the termination hook reports.
type ends struct {
	mu  sync.Mutex
	got map[uint64][]error
	ch  chan uint64
}

func newEnds() *ends { return &ends{got: map[uint64][]error{}, ch: make(chan uint64, 1000)} }

func (e *ends) hook(b *Bucket, reason error) {
	e.mu.Lock()
	e.got[b.ID()] = append(e.got[b.ID()], reason)
	e.mu.Unlock()
	e.ch <- b.ID()
}

func (e *ends) reasons(id uint64) []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.got[id]...)
}

func (e *ends) wait(t *testing.T, id uint64) {
	t.Helper()
	select {
	case got := <-e.ch:
		require.Equal(t, id, got)
	case <-time.After(10 * time.Second):
		t.Fatalf("bucket %d: no end reported", id)
	}
}

func serveSupervisor(t *testing.T, s *Supervisor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func TestSupervisorReportsEveryEndOnceAndNeverRestarts(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{})
	serveSupervisor(t, s)
	e := newEnds()
	errStop := errors.New("stopped with an error")

	cases := []struct {
		name  string
		end   func(b *Bucket)
		check func(t *testing.T, reason error)
	}{
		{"normal", func(b *Bucket) { b.Stop(nil) }, func(t *testing.T, r error) { assert.NoError(t, r) }},
		{"error", func(b *Bucket) { b.Stop(errStop) }, func(t *testing.T, r error) { assert.ErrorIs(t, r, errStop) }},
		{"panic in update", func(b *Bucket) {
			_ = b.Update(func(*Tx) error { panic("kaboom") })
		}, func(t *testing.T, r error) {
			var perr *PanicError
			require.ErrorAs(t, r, &perr)
			assert.Equal(t, "kaboom", perr.Value)
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := New(tc.name, uint64(i+1))
			require.NoError(t, s.Start(b, e.hook))
			require.Eventually(t, func() bool { return s.Running() == 1 }, 10*time.Second, time.Millisecond)
			tc.end(b)
			e.wait(t, b.ID())
			require.Len(t, e.reasons(b.ID()), 1)
			tc.check(t, e.reasons(b.ID())[0])
			require.Eventually(t, func() bool { return s.Running() == 0 }, 10*time.Second, time.Millisecond,
				"the bucket is not restarted")
		})
	}
}

func TestSupervisorStopEndsEveryBucketWithContextError(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{})
	stop := serveSupervisor(t, s)
	e := newEnds()
	var bs []*Bucket
	for i := range 50 {
		b := New("b", uint64(i))
		require.NoError(t, s.Start(b, e.hook))
		bs = append(bs, b)
	}
	stop()
	for _, b := range bs {
		<-b.Done()
		reasons := e.reasons(b.ID())
		require.Len(t, reasons, 1, "bucket %d", b.ID())
		assert.ErrorIs(t, reasons[0], context.Canceled)
	}
	err := s.Start(New("late", 99), e.hook)
	assert.ErrorIs(t, err, ErrSupervisorStopped)
}

// The stop ends the buckets a batch at a time (endAll) before suture's
// own stop: across several batches, with buckets that ended before the
// stop and one that crashes during it, each end is reported once, the
// stop's with the context's error.
func TestSupervisorStopEndsManyBucketsOnceEach(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{})
	stop := serveSupervisor(t, s)
	e := newEnds()
	n := 3*endBatch + 17
	var bs []*Bucket
	for i := range n {
		b := New("b", uint64(i))
		require.NoError(t, s.Start(b, e.hook))
		bs = append(bs, b)
	}
	require.Eventually(t, func() bool { return s.Running() == n }, 10*time.Second, time.Millisecond)
	errEarly := errors.New("ended before the stop")
	for _, b := range bs[:5] {
		b.Stop(errEarly)
	}
	crash := make(chan struct{})
	go func() {
		defer close(crash)
		_ = bs[n-1].Update(func(*Tx) error { panic("during the stop") })
	}()
	stop()
	<-crash
	assert.Zero(t, s.Running())
	for i, b := range bs {
		<-b.Done()
		reasons := e.reasons(b.ID())
		require.Len(t, reasons, 1, "bucket %d", b.ID())
		switch {
		case i < 5:
			assert.ErrorIs(t, reasons[0], errEarly)
		case i == n-1: // the stop's or the crash's, whichever came first
			var perr *PanicError
			if !errors.As(reasons[0], &perr) {
				assert.ErrorIs(t, reasons[0], context.Canceled)
			}
		default:
			assert.ErrorIs(t, reasons[0], context.Canceled)
		}
	}
}

// End hooks that do not return hold endAll back only up to the
// supervisor's Timeout, and suture's stop as long again: the stop
// returns, and every end is reported once the hooks go on.
func TestSupervisorStopIsBoundedByHooksThatBlock(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{Timeout: 100 * time.Millisecond})
	stop := serveSupervisor(t, s)
	e := newEnds()
	release := make(chan struct{})
	var bs []*Bucket
	for i := range 2*endBatch + 1 {
		b := New("b", uint64(i))
		require.NoError(t, s.Start(b, func(b *Bucket, reason error) { <-release; e.hook(b, reason) }))
		bs = append(bs, b)
	}
	require.Eventually(t, func() bool { return s.Running() == len(bs) }, 10*time.Second, time.Millisecond)
	stop() // returns though no hook has
	close(release)
	for _, b := range bs {
		<-b.Done()
	}
	require.Eventually(t, func() bool {
		for _, b := range bs {
			if len(e.reasons(b.ID())) != 1 {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond)
}

// endAll waits between batches for the ends the children count, not for
// its Timeout: with a Timeout of an hour, a stop of several batches
// returns at once (a child that did not count its end made every batch
// wait the whole Timeout, and the stop of the daemon with it).
func TestSupervisorStopDoesNotWaitForItsTimeout(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	e := newEnds()
	n := 3*endBatch + 1
	for i := range n {
		require.NoError(t, s.Start(New("b", uint64(i)), e.hook))
	}
	require.Eventually(t, func() bool { return s.Running() == n }, 10*time.Second, time.Millisecond)
	cancel()
	select {
	case <-served:
	case <-time.After(30 * time.Second):
		t.Fatal("the stop waited for the supervisor's Timeout")
	}
}

func TestBucketsStartedBeforeServeStartWithIt(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{})
	e := newEnds()
	b := New("early", 1)
	require.NoError(t, s.Start(b, e.hook))
	serveSupervisor(t, s)
	require.Eventually(t, func() bool { return s.Running() == 1 }, 10*time.Second, time.Millisecond)
	b.Stop(nil)
	e.wait(t, 1)
}

func TestChildIsNeverServedTwice(t *testing.T) {
	e := newEnds()
	c := &child{b: New("once", 1), onEnd: e.hook, sup: NewSupervisor(SupervisorOptions{})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, c.Serve(ctx))
	require.Error(t, c.Serve(ctx))
	assert.Len(t, e.reasons(1), 1)
}

func TestChildPanicIsReportedAsPanicError(t *testing.T) {
	e := newEnds()
	// A panic in the bucket's own goroutine (here, from its context) ends
	// the bucket with a PanicError instead of reaching suture.
	b := New("p", 7)
	c := &child{b: b, onEnd: e.hook, sup: NewSupervisor(SupervisorOptions{})}
	require.Error(t, c.Serve(panickingContext{}))
	<-b.Done()
	reasons := e.reasons(7)
	require.Len(t, reasons, 1)
	var perr *PanicError
	require.ErrorAs(t, reasons[0], &perr)
	assert.Equal(t, "context exploded", perr.Value)
}

// panickingContext panics when the bucket waits on it.
type panickingContext struct{ context.Context }

func (panickingContext) Done() <-chan struct{} { panic("context exploded") }

// A bucket runs under one child, once: a second Start of it, even after it
// ended, would report its end twice; a nil onEnd would report it to no
// one (the child's Serve would panic at the end, and suture restart it).
func TestStartRefusesABucketTwiceAndANilHook(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{})
	serveSupervisor(t, s)
	e := newEnds()

	b := New("twice", 1)
	require.Error(t, s.Start(b, nil), "a nil onEnd")
	require.NoError(t, s.Start(b, e.hook), "refusing a nil onEnd does not take the bucket")
	require.ErrorIs(t, s.Start(b, e.hook), errStartedTwice)
	b.Stop(nil)
	e.wait(t, 1)
	require.ErrorIs(t, s.Start(b, e.hook), errStartedTwice, "an ended bucket does not run again")
	require.Eventually(t, func() bool { return s.Running() == 0 }, 10*time.Second, time.Millisecond)
	assert.Len(t, e.reasons(1), 1)
}

// A stop by a context that ends with DeadlineExceeded ends every bucket
// with it, also those that endAll, out of time, leaves to suture's stop:
// the tree's own context is cancelled with the stop's error as its cause.
func TestSupervisorStopPastTheTimeoutKeepsTheContextError(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{Timeout: 10 * time.Millisecond})
	release := make(chan struct{})
	var bs []*Bucket
	for i := range 3 * endBatch {
		b := New("b", uint64(i))
		// No hook returns before the stop has: endAll runs out of time
		// once it has ended two batches, and suture's stop ends the third.
		require.NoError(t, s.Start(b, func(*Bucket, error) { <-release }))
		bs = append(bs, b)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	<-ctx.Done()
	require.ErrorIs(t, s.Serve(ctx), context.Canceled) // suture's own
	close(release)
	for _, b := range bs {
		<-b.Done()
		assert.ErrorIs(t, b.Err(), context.DeadlineExceeded, "bucket %d", b.ID())
	}
}

// A bucket whose lock is held at the stop (an Update whose write waits
// on a stalled disk, here a function that waits) holds back neither the
// end of the others nor the stop beyond the supervisor's Timeout, as
// when suture alone stopped the buckets, each on its own goroutine.
func TestSupervisorStopIsNotHeldBackByABusyBucket(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{Timeout: 10 * time.Millisecond})
	stop := serveSupervisor(t, s)
	e := newEnds()
	e.ch = make(chan uint64, 4*endBatch)
	var bs []*Bucket
	for i := range 2*endBatch + 1 {
		b := New("b", uint64(i))
		require.NoError(t, s.Start(b, e.hook))
		bs = append(bs, b)
	}
	busy := New("busy", 1<<20)
	require.NoError(t, s.Start(busy, e.hook))
	require.Eventually(t, func() bool { return s.Running() == len(bs)+1 }, 10*time.Second, time.Millisecond)
	inside, release := make(chan struct{}), make(chan struct{})
	updated := make(chan error, 1)
	go func() {
		updated <- busy.Update(func(*Tx) error { close(inside); <-release; return nil })
	}()
	<-inside
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	defer close(release)
	bound := time.NewTimer(30 * time.Second) // a bound for failing, not a wait
	defer bound.Stop()
	for _, b := range bs {
		select {
		case <-b.Done():
		case <-bound.C:
			t.Fatalf("bucket %d did not end while another bucket's lock was held", b.ID())
		}
		assert.ErrorIs(t, b.Err(), context.Canceled, "bucket %d", b.ID())
	}
	select {
	case <-stopped:
	case <-bound.C:
		t.Fatal("the stop waited for a busy bucket past the supervisor's Timeout")
	}
	release <- struct{}{}
	require.NoError(t, <-updated)
	<-busy.Done()
	assert.ErrorIs(t, busy.Err(), context.Canceled)
}

// A Start refused because the supervisor's Serve is stopping (or has
// stopped) says why: its error wraps the stop's context error as well as
// ErrSupervisorStopped, so that the caller, which ends the bucket itself
// with that error (the registry does, and publishes it as the Exited's
// reason), ends it as the stop ended the others: a shutdown, not an error.
func TestSupervisorStartRefusedByAStopCarriesTheStopsReason(t *testing.T) {
	s := NewSupervisor(SupervisorOptions{})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	<-ctx.Done()
	require.Error(t, s.Serve(ctx))

	err := s.Start(New("late", 1), func(*Bucket, error) { t.Error("onEnd called for a refused bucket") })
	require.ErrorIs(t, err, ErrSupervisorStopped)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, EndShutdown, EndKind(err))

	// A later Serve's stop refuses with its own reason.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	require.Error(t, s.Serve(ctx2))
	err = s.Start(New("later", 3), func(*Bucket, error) {})
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, context.DeadlineExceeded)
}
