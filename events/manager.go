package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asaskevich/EventBus"
)

// topic is the one EventBus topic kv uses.
const topic = "kv.lifecycle"

// DefaultMailbox is the mailbox size of a subscription whose options leave it
// zero.
const DefaultMailbox = 1024

// ErrStopped is returned by [Manager.Subscribe] once the manager has stopped,
// and reported by [Subscription.Err] for subscriptions the stop closed.
var ErrStopped = errors.New("events: manager stopped")

// ErrHandlerExited is reported by [Subscription.Err] when the subscriber's
// handler called runtime.Goexit (t.FailNow does) and the subscriber was
// removed: its goroutine is gone, so nothing could deliver to it any more.
var ErrHandlerExited = errors.New("events: subscriber's handler called runtime.Goexit")

// PanicError is what [Subscription.Err] reports when the subscriber's handler
// panicked and the subscriber was removed.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the handler's stack when it panicked
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("events: subscriber panicked: %v", e.Value)
}

// Options configures a [Manager]. The zero value is ready to use.
type Options struct {
	// Logger receives the manager's reports (a subscriber removed after a
	// panic, a publish that failed). Nil discards them.
	Logger *slog.Logger
	// HoldTimeout bounds how long a stopping manager waits: for its holds
	// (see Hold), then for its subscriptions to deliver what was pending
	// (a handler that never returns is left running, and logged); 0 means
	// 10 seconds.
	HoldTimeout time.Duration
}

// Stats is a snapshot of a Manager's counters.
type Stats struct {
	Published   uint64 // events published
	Dropped     uint64 // deliveries lost to full mailboxes, over all subscribers
	Subscribers int    // live subscriptions
	Removed     uint64 // subscribers removed because their handler panicked (or called runtime.Goexit)
}

// Manager is the event manager service. Create one with [New]; the zero
// value is not usable.
type Manager struct {
	bus         EventBus.Bus
	log         *slog.Logger
	holdTimeout time.Duration

	seq       atomic.Uint64 // advanced only under EventBus's lock
	dropped   atomic.Uint64
	removed   atomic.Uint64
	published atomic.Uint64

	mu      sync.RWMutex // guards subs and stopped; fan-out holds it for reading
	subs    map[*Subscription]struct{}
	stopped bool

	holdMu sync.Mutex
	holds  int
	idle   chan struct{} // closed when holds drops to zero while stopping
}

// New returns a Manager ready to publish and to accept subscriptions.
// Subscriptions made before the manager is served receive every event.
func New(opts Options) *Manager {
	m := &Manager{
		bus:  EventBus.New(),
		log:  opts.Logger,
		subs: make(map[*Subscription]struct{}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.holdTimeout = opts.HoldTimeout
	if m.holdTimeout <= 0 {
		m.holdTimeout = 10 * time.Second
	}
	// The one handler, registered once and never removed. EventBus only
	// fails here if fanout were not a func, which it always is.
	if err := m.bus.Subscribe(topic, m.fanout); err != nil {
		panic(fmt.Sprintf("events: registering the fan-out handler: %v", err))
	}
	return m
}

// String names the service in suture's logs.
func (m *Manager) String() string { return "kv event manager" }

// Serve runs the manager until ctx ends, then waits for every hold to be
// released, closes every subscription and returns once their goroutines
// have delivered what was pending and ended: both waits within
// HoldTimeout.
func (m *Manager) Serve(ctx context.Context) error {
	<-ctx.Done()

	m.holdMu.Lock()
	m.idle = make(chan struct{})
	if m.holds == 0 {
		close(m.idle)
	}
	idle := m.idle
	m.holdMu.Unlock()
	// One budget for both waits: a context's Done, unlike a timer's
	// channel, can be received from twice.
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.holdTimeout)
	defer cancel()
	select {
	case <-idle:
	case <-stop.Done():
		m.log.Error("events: publishers still held the manager when it stopped", "waited", m.holdTimeout)
	}

	m.mu.Lock()
	m.stopped = true
	subs := make([]*Subscription, 0, len(m.subs))
	for s := range m.subs {
		subs = append(subs, s)
		delete(m.subs, s)
		close(s.mailbox) // no fan-out runs: we hold the write lock
	}
	m.mu.Unlock()
	for i, s := range subs {
		select {
		case <-s.done:
		case <-stop.Done():
			m.log.Error("events: subscribers still delivering when the manager stopped; left running",
				"subscribers", len(subs)-i, "waited", m.holdTimeout)
			return ctx.Err()
		}
	}
	return ctx.Err()
}

// Hold tells the manager that a publisher may still publish events that
// subscribers must see. A stopping manager closes its subscriptions only
// once every hold is released. The returned func releases the hold; calling
// it more than once has no further effect.
func (m *Manager) Hold() (release func()) {
	m.holdMu.Lock()
	m.holds++
	m.holdMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.holdMu.Lock()
			m.holds--
			if m.holds == 0 && m.idle != nil {
				select {
				case <-m.idle:
				default:
					close(m.idle)
				}
			}
			m.holdMu.Unlock()
		})
	}
}

// Publish gives ev to every subscriber, stamped with the next sequence
// number. It never blocks and never panics: a full mailbox loses the event
// (counted), and a nil event (a nil *Created or *Exited too) is ignored,
// without taking a sequence number.
func (m *Manager) Publish(ev Event) {
	switch e := ev.(type) {
	case nil:
		return
	case *Created:
		if e == nil {
			return
		}
		ev = *e
	case *Exited:
		if e == nil {
			return
		}
		ev = *e
	}
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("events: publish failed", "event", ev, "panic", r)
		}
	}()
	m.bus.Publish(topic, ev)
}

// fanout is the EventBus handler. EventBus calls it under its bus-wide lock,
// one publish at a time, which is what makes the sequence numbers and every
// subscriber's order follow publish order.
func (m *Manager) fanout(ev Event) {
	// The number is taken once the event is stamped: an event whose stamp
	// panics (a nil pointer to a type that embeds Created) leaves no gap.
	// Only fanout writes seq, one publish at a time.
	seq := m.seq.Load() + 1
	ev = ev.stamp(seq)
	m.seq.Store(seq)
	m.published.Add(1)
	m.mu.RLock()
	for s := range m.subs {
		select {
		case s.mailbox <- ev:
		default:
			s.dropped.Add(1)
			m.dropped.Add(1)
		}
	}
	m.mu.RUnlock()
}

// SubscribeOptions configures one subscription. The zero value is ready to
// use.
type SubscribeOptions struct {
	// Mailbox is how many events may wait for the handler before new ones
	// are dropped; 0 means DefaultMailbox.
	Mailbox int
	// Name identifies the subscriber in logs.
	Name string
}

// Subscribe starts delivering events to fn, on a goroutine of the
// subscription's own, in publish order. fn may call any method of the
// Manager and of its own Subscription (Close included). It returns
// ErrStopped once the manager has stopped.
func (m *Manager) Subscribe(opts SubscribeOptions, fn func(Event)) (*Subscription, error) {
	if fn == nil {
		return nil, errors.New("events: subscribe: nil handler")
	}
	size := opts.Mailbox
	if size <= 0 {
		size = DefaultMailbox
	}
	s := &Subscription{
		m:       m,
		name:    opts.Name,
		fn:      fn,
		mailbox: make(chan Event, size),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return nil, ErrStopped
	}
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	go s.run()
	return s, nil
}

// Stats returns the manager's counters.
func (m *Manager) Stats() Stats {
	m.mu.RLock()
	n := len(m.subs)
	m.mu.RUnlock()
	return Stats{
		Published:   m.published.Load(),
		Dropped:     m.dropped.Load(),
		Subscribers: n,
		Removed:     m.removed.Load(),
	}
}

// Room returns how many more events the fullest subscription's mailbox
// takes before it drops one: the least free room among the
// subscriptions, math.MaxInt with none. A publisher of many events at
// once (the registry taking idle buckets out of memory) waits for room
// between its batches, so that the subscribers that keep up are not cut
// for a burst.
func (m *Manager) Room() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	room := math.MaxInt
	for s := range m.subs {
		room = min(room, cap(s.mailbox)-len(s.mailbox))
	}
	return room
}

// remove takes s out of the fan-out; it reports whether s was still there.
func (m *Manager) remove(s *Subscription) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.subs[s]; !ok {
		return false
	}
	delete(m.subs, s)
	return true
}

// Subscription is one subscriber's handle.
type Subscription struct {
	m       *Manager
	name    string
	fn      func(Event)
	mailbox chan Event
	quit    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64

	closeOnce sync.Once
	err       error // written before done is closed
}

// Close stops delivery. It does not wait for the handler (so a handler may
// call it): the event being handed to the handler as Close runs may still
// reach it after Close returns, and none after that. Wait on Done to know
// that the handler will not be called again.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		s.m.remove(s)
		close(s.quit)
	})
}

// Done is closed when the subscription has ended: after Close, after its
// handler panicked or called runtime.Goexit, or after the manager stopped
// and delivered what was pending.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended, once Done is closed: nil after Close,
// ErrStopped when the manager stopped, a *PanicError when the handler
// panicked, ErrHandlerExited when it called runtime.Goexit.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Dropped is how many events this subscription lost because its mailbox was
// full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

func (s *Subscription) run() {
	returned := false
	defer func() {
		if !returned {
			// The handler called runtime.Goexit: this goroutine is ending,
			// so the subscription must leave the fan-out, or its mailbox
			// would fill and every later event count as dropped.
			s.err = ErrHandlerExited
			s.m.remove(s) // if a stop or Close has not already
			s.m.removed.Add(1)
			s.m.log.Error("events: subscriber's handler called runtime.Goexit; removed", "subscriber", s.name)
		}
		close(s.done)
	}()
	s.loop()
	returned = true
}

// loop delivers events until the subscription ends; it returns unless the
// handler calls runtime.Goexit.
func (s *Subscription) loop() {
	for {
		select {
		case <-s.quit:
			return
		case ev, ok := <-s.mailbox:
			if !ok {
				s.err = ErrStopped
				return
			}
			select {
			case <-s.quit: // closed while this event waited
				return
			default:
			}
			if perr := s.deliver(ev); perr != nil {
				s.err = perr
				// Counted even when a stop that drains the mailbox, or
				// the handler's own Close, took it out of the fan-out
				// first: its handler panicked all the same.
				s.m.remove(s)
				s.m.removed.Add(1)
				s.m.log.Error("events: subscriber panicked and was removed",
					"subscriber", s.name, "panic", perr.Value, "stack", string(perr.Stack))
				return
			}
		}
	}
}

func (s *Subscription) deliver(ev Event) (perr *PanicError) {
	defer func() {
		if r := recover(); r != nil {
			perr = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	s.fn(ev)
	return nil
}
