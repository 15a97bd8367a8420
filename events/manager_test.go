package events

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs m until the test ends and returns a func that stops it and
// waits for Serve to return.
func serve(t *testing.T, m *Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Serve(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// collector is a subscriber that records what it receives.
type collector struct {
	mu  sync.Mutex
	evs []Event
}

func (c *collector) handle(ev Event) {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
}

func (c *collector) events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.evs...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.evs)
}

func TestPublishDeliversInOrderWithSequence(t *testing.T) {
	m := New(Options{})
	serve(t, m)
	var c collector
	sub, err := m.Subscribe(SubscribeOptions{}, c.handle)
	require.NoError(t, err)
	defer sub.Close()

	const n = 500
	for i := range n {
		if i%2 == 0 {
			m.Publish(Created{Bucket: "b", ID: uint64(i)})
		} else {
			m.Publish(Exited{Bucket: "b", ID: uint64(i - 1)})
		}
	}
	require.Eventually(t, func() bool { return c.len() == n }, waitFor, tick)
	for i, ev := range c.events() {
		assert.Equal(t, uint64(i+1), ev.Sequence(), "event %d", i)
		assert.Equal(t, "b", ev.BucketName())
		if i%2 == 0 {
			assert.IsType(t, Created{}, ev)
		} else {
			assert.IsType(t, Exited{}, ev)
		}
	}
	assert.Equal(t, uint64(n), m.Stats().Published)
}

func TestConcurrentPublishersKeepOneOrderForAll(t *testing.T) {
	m := New(Options{})
	serve(t, m)
	var a, b collector
	sa, err := m.Subscribe(SubscribeOptions{Mailbox: 10000}, a.handle)
	require.NoError(t, err)
	defer sa.Close()
	sb, err := m.Subscribe(SubscribeOptions{Mailbox: 10000}, b.handle)
	require.NoError(t, err)
	defer sb.Close()

	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				m.Publish(Created{Bucket: "p", ID: uint64(p*1000 + i)})
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { return a.len() == 4000 && b.len() == 4000 }, waitFor, tick)
	ea, eb := a.events(), b.events()
	require.Equal(t, ea, eb, "both subscribers see one and the same order")
	for i, ev := range ea {
		require.Equal(t, uint64(i+1), ev.Sequence())
	}
}

func TestSlowSubscriberLosesEventsOthersDoNot(t *testing.T) {
	m := New(Options{})
	serve(t, m)
	release := make(chan struct{})
	blocked, err := m.Subscribe(SubscribeOptions{Mailbox: 4, Name: "stuck"}, func(Event) { <-release })
	require.NoError(t, err)
	var c collector
	fast, err := m.Subscribe(SubscribeOptions{Mailbox: 1000}, c.handle)
	require.NoError(t, err)
	defer fast.Close()

	for i := range 100 {
		m.Publish(Created{Bucket: "x", ID: uint64(i)}) // never blocks, though "stuck" never reads
	}
	require.Eventually(t, func() bool { return c.len() == 100 }, waitFor, tick)
	// The stuck handler holds one event; four wait in its mailbox; the rest
	// are lost, and counted.
	assert.GreaterOrEqual(t, blocked.Dropped(), uint64(95))
	assert.LessOrEqual(t, blocked.Dropped(), uint64(96))
	assert.Equal(t, blocked.Dropped(), m.Stats().Dropped)
	assert.Zero(t, fast.Dropped())
	close(release)
	blocked.Close()
	<-blocked.Done()
}

func TestPanickingSubscriberIsRemovedOthersKeepReceiving(t *testing.T) {
	m := New(Options{})
	serve(t, m)
	bad, err := m.Subscribe(SubscribeOptions{Name: "bad"}, func(ev Event) {
		if ev.BucketID() == 2 {
			panic("boom")
		}
	})
	require.NoError(t, err)
	var c collector
	good, err := m.Subscribe(SubscribeOptions{}, c.handle)
	require.NoError(t, err)
	defer good.Close()

	for i := 1; i <= 3; i++ {
		m.Publish(Created{Bucket: "x", ID: uint64(i)})
	}
	<-bad.Done()
	var perr *PanicError
	require.ErrorAs(t, bad.Err(), &perr)
	assert.Equal(t, "boom", perr.Value)
	assert.Contains(t, string(perr.Stack), "TestPanickingSubscriber")

	m.Publish(Created{Bucket: "x", ID: 4})
	require.Eventually(t, func() bool { return c.len() == 4 }, waitFor, tick)
	st := m.Stats()
	assert.Equal(t, uint64(1), st.Removed)
	assert.Equal(t, 1, st.Subscribers)
}

func TestCloseFromInsideHandler(t *testing.T) {
	m := New(Options{})
	serve(t, m)
	var got []uint64
	var sub *Subscription
	ready := make(chan struct{})
	sub, err := m.Subscribe(SubscribeOptions{}, func(ev Event) {
		<-ready
		got = append(got, ev.BucketID())
		sub.Close()
	})
	require.NoError(t, err)
	close(ready)
	m.Publish(Created{ID: 1})
	m.Publish(Created{ID: 2})
	<-sub.Done()
	assert.NoError(t, sub.Err())
	assert.Equal(t, []uint64{1}, got, "nothing is delivered after Close")
	assert.Zero(t, m.Stats().Subscribers)
}

func TestPublishNeverPanics(t *testing.T) {
	m := New(Options{})
	assert.NotPanics(t, func() { m.Publish(nil) })
	assert.NotPanics(t, func() { m.Publish(Exited{Bucket: "b", Reason: assert.AnError}) })
	assert.Equal(t, uint64(1), m.Stats().Published)
}

func TestStopWaitsForHoldsThenClosesSubscriptions(t *testing.T) {
	m := New(Options{})
	stop := serve(t, m)
	var c collector
	sub, err := m.Subscribe(SubscribeOptions{}, c.handle)
	require.NoError(t, err)
	release := m.Hold()
	other := m.Hold()
	other()
	other() // no further effect: release's hold stands

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// While held, a stopping manager still delivers.
	m.Publish(Exited{Bucket: "late", ID: 9, Reason: context.Canceled})
	require.Eventually(t, func() bool { return c.len() == 1 }, waitFor, tick)
	select {
	case <-sub.Done():
		t.Fatal("subscription closed while a hold was outstanding")
	case <-stopped:
		t.Fatal("stopped while a hold was outstanding")
	default:
	}
	release()
	release() // idempotent
	<-stopped
	<-sub.Done()
	assert.ErrorIs(t, sub.Err(), ErrStopped)
	_, err = m.Subscribe(SubscribeOptions{}, c.handle)
	assert.ErrorIs(t, err, ErrStopped)
}

func TestStopDeliversPendingEvents(t *testing.T) {
	m := New(Options{})
	stop := serve(t, m)
	gate := make(chan struct{})
	var c collector
	sub, err := m.Subscribe(SubscribeOptions{}, func(ev Event) { <-gate; c.handle(ev) })
	require.NoError(t, err)
	for i := range 10 {
		m.Publish(Created{ID: uint64(i)})
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	close(gate)
	<-stopped
	<-sub.Done()
	assert.Equal(t, 10, c.len())
}

func TestSubscribeRejectsNilHandler(t *testing.T) {
	_, err := New(Options{}).Subscribe(SubscribeOptions{}, nil)
	require.Error(t, err)
}

func TestEventStrings(t *testing.T) {
	assert.Equal(t, `#3 created "a" (id 7)`, Created{Seq: 3, Bucket: "a", ID: 7}.String())
	assert.Equal(t, `#4 exited "a" (id 7): normal`, Exited{Seq: 4, Bucket: "a", ID: 7}.String())
	assert.Equal(t, `#5 exited "a" (id 7): context canceled`,
		Exited{Seq: 5, Bucket: "a", ID: 7, Reason: context.Canceled}.String())
}

func TestStopGivesUpOnAForgottenHold(t *testing.T) {
	m := New(Options{HoldTimeout: 20 * time.Millisecond})
	stop := serve(t, m)
	sub, err := m.Subscribe(SubscribeOptions{}, func(Event) {})
	require.NoError(t, err)
	_ = m.Hold() // never released
	stop()       // returns after HoldTimeout
	<-sub.Done()
	assert.ErrorIs(t, sub.Err(), ErrStopped)
}

// A handler that never returns does not hold the stop past HoldTimeout,
// after a hold that used part of it or none of it.
func TestStopGivesUpOnAStuckHandler(t *testing.T) {
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprintf("held=%v", held), func(t *testing.T) {
			m := New(Options{HoldTimeout: 50 * time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- m.Serve(ctx) }()
			release := make(chan struct{})
			handling := make(chan struct{})
			sub, err := m.Subscribe(SubscribeOptions{Name: "stuck"}, func(Event) {
				close(handling)
				<-release
			})
			require.NoError(t, err)
			m.Publish(Created{Bucket: "x", ID: 1})
			<-handling
			if held {
				_ = m.Hold() // never released: the whole budget goes to it
			}
			cancel()
			select {
			case err := <-served:
				assert.ErrorIs(t, err, context.Canceled)
			case <-time.After(10 * time.Second):
				t.Fatal("Serve waits for a handler that never returns")
			}
			close(release) // let the handler, left running, end
			<-sub.Done()
		})
	}
}

// Nil events are ignored, typed nil pointers included, without taking a
// sequence number (a gap in the numbers means a lost event); pointers to
// events are published as the events.
func TestNilEventsTakeNoSequenceNumber(t *testing.T) {
	m := New(Options{})
	serve(t, m)
	var c collector
	sub, err := m.Subscribe(SubscribeOptions{}, c.handle)
	require.NoError(t, err)
	defer sub.Close()
	m.Publish(Created{Bucket: "a"})
	m.Publish(nil)
	m.Publish((*Created)(nil))
	m.Publish((*Exited)(nil))
	m.Publish(&Exited{Bucket: "a"})
	require.Eventually(t, func() bool { return c.len() == 2 }, waitFor, tick)
	evs := c.events()
	assert.Equal(t, Created{Bucket: "a", Seq: 1}, evs[0])
	assert.Equal(t, Exited{Bucket: "a", Seq: 2}, evs[1])
	assert.Equal(t, uint64(2), m.Stats().Published)
}

// A handler that calls runtime.Goexit (require's t.FailNow does, in a
// test's subscriber) ends the subscription's goroutine: the subscriber
// must leave the fan-out, as a panicking one does, rather than stay
// counted with a mailbox no one reads, every later event counted as lost.
func TestGoexitInHandlerRemovesTheSubscriber(t *testing.T) {
	m := New(Options{})
	serve(t, m)
	sub, err := m.Subscribe(SubscribeOptions{Mailbox: 4, Name: "exits"}, func(Event) { runtime.Goexit() })
	require.NoError(t, err)
	var c collector
	good, err := m.Subscribe(SubscribeOptions{}, c.handle)
	require.NoError(t, err)
	defer good.Close()

	m.Publish(Created{Bucket: "x", ID: 1})
	<-sub.Done()
	assert.ErrorIs(t, sub.Err(), ErrHandlerExited)
	for i := 2; i <= 20; i++ {
		m.Publish(Created{Bucket: "x", ID: uint64(i)})
	}
	require.Eventually(t, func() bool { return c.len() == 20 }, waitFor, tick)
	st := m.Stats()
	assert.Equal(t, 1, st.Subscribers, "only the good subscriber is left")
	assert.Zero(t, st.Dropped, "nothing is lost by a subscriber that is gone")
	assert.Zero(t, sub.Dropped())
	assert.Equal(t, uint64(1), st.Removed)
}

// A handler that panics while a stopping manager drains its mailbox is
// counted in Stats.Removed, as its Err and the log say (from review: the
// stop had taken it out of the fan-out, and only a removal from the
// fan-out counted).
func TestPanicWhileDrainingIsCountedAsRemoved(t *testing.T) {
	m := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Serve(ctx) }()

	entered, unblock := make(chan struct{}), make(chan struct{})
	sub, err := m.Subscribe(SubscribeOptions{}, func(ev Event) {
		if ev.Sequence() == 1 {
			close(entered)
			<-unblock
			return
		}
		panic("boom")
	})
	require.NoError(t, err)
	m.Publish(Created{Bucket: "a", ID: 1})
	m.Publish(Created{Bucket: "b", ID: 2}) // waits in the mailbox
	<-entered
	cancel()
	require.Eventually(t, func() bool { return m.Stats().Subscribers == 0 }, waitFor, tick) // the stop took it out
	close(unblock)
	<-done
	<-sub.Done()
	var perr *PanicError
	require.ErrorAs(t, sub.Err(), &perr)
	require.EqualValues(t, 1, m.Stats().Removed)
}

type wrappedCreated struct{ Created }

// A nil pointer to a type that embeds Created is an Event that Publish's
// nil checks miss: its stamp panics (Publish recovers), and it takes no
// sequence number, or subscribers would see a gap that no Dropped count
// explains (from review).
func TestTypedNilEventTakesNoSequenceNumber(t *testing.T) {
	m := New(Options{})
	var c collector
	sub, err := m.Subscribe(SubscribeOptions{}, c.handle)
	require.NoError(t, err)
	defer sub.Close()
	require.NotPanics(t, func() { m.Publish((*wrappedCreated)(nil)) })
	m.Publish(Created{Bucket: "a", ID: 1})
	require.Eventually(t, func() bool { return c.len() == 1 }, waitFor, tick)
	require.EqualValues(t, 1, c.events()[0].Sequence())
}

// Room is the free room of the fullest mailbox, and grows back as its
// subscriber takes the events.
func TestRoomIsTheFullestMailboxsFreeRoom(t *testing.T) {
	m := New(Options{})
	serve(t, m)
	assert.Equal(t, math.MaxInt, m.Room(), "no subscriber")
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	slow, err := m.Subscribe(SubscribeOptions{Mailbox: 10}, func(Event) {
		select {
		case held <- struct{}{}:
		default:
		}
		<-release
	})
	require.NoError(t, err)
	var c collector
	fast, err := m.Subscribe(SubscribeOptions{Mailbox: 100}, c.handle)
	require.NoError(t, err)
	defer fast.Close()
	assert.Equal(t, 10, m.Room())

	m.Publish(Created{Bucket: "x", ID: 1})
	<-held // the slow handler holds the first event: its mailbox is empty again
	for i := range 4 {
		m.Publish(Created{Bucket: "x", ID: uint64(2 + i)})
	}
	require.Eventually(t, func() bool { return c.len() == 5 }, waitFor, tick)
	assert.Equal(t, 6, m.Room(), "four wait for the slow handler")
	close(release)
	require.Eventually(t, func() bool { return m.Room() == 10 }, waitFor, tick, "taken")
	slow.Close()
	<-slow.Done()
}
