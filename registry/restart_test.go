package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

// gatedPublisher holds the publish of the first event that gate matches
// until open is closed; held is closed once it holds it.
type gatedPublisher struct {
	*events.Manager
	gate func(events.Event) bool
	held chan struct{}
	open chan struct{}

	mu   sync.Mutex
	done bool // an event was held
}

func newGate(gate func(events.Event) bool) *gatedPublisher {
	return &gatedPublisher{gate: gate, held: make(chan struct{}), open: make(chan struct{})}
}

func (g *gatedPublisher) wrap(m *events.Manager) Publisher { g.Manager = m; return g }

func (g *gatedPublisher) Publish(ev events.Event) {
	g.mu.Lock()
	hold := !g.done && g.gate(ev)
	g.done = g.done || hold
	g.mu.Unlock()
	if hold {
		close(g.held)
		<-g.open
	}
	g.Manager.Publish(ev)
}

// signalHandler is a slog handler that closes seen when a record with
// message msg is logged.
type signalHandler struct {
	slog.Handler
	msg  string
	seen chan struct{}
	once *sync.Once
}

func newSignal(msg string) signalHandler {
	return signalHandler{Handler: slog.DiscardHandler, msg: msg, seen: make(chan struct{}), once: &sync.Once{}}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}

// A rename's source is no longer under its name; if its end notice was lost
// with a crashed loop, the restarted loop still finds it (it looks through
// every bucket not yet forgotten, not only the named ones): Rename returns,
// and the source gets its one Exited.
func TestRestartedRegistryForgetsARenamedSourceWhoseNoticeWasLost(t *testing.T) {
	g := newGate(func(ev events.Event) bool {
		ex, ok := ev.(events.Exited)
		return ok && ex.Bucket == "w"
	})
	tr := newTreeWith(t, g.wrap, nil)
	a, err := tr.reg.Create(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, a.Put("k", []byte("v")))
	w, err := tr.reg.Create(ctx, "w")
	require.NoError(t, err)

	w.Stop(nil)
	<-g.held // the loop is inside forget(w), publishing its Exited
	tr.reg.box.send(notice{crash: true})
	renamed := make(chan error, 1)
	go func() { renamed <- tr.reg.Rename(ctx, "a", "b") }()
	require.Eventually(t, func() bool { // a's end notice is queued behind the crash
		tr.reg.box.mu.Lock()
		defer tr.reg.box.mu.Unlock()
		return len(tr.reg.box.queue) == 2
	}, waitFor, tick)
	close(g.open) // the loop crashes, and the batch with a's notice is lost

	select {
	case err := <-renamed:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("Rename waits for ever for its source to be forgotten")
	}
	tr.rec.waitExit(t, a.ID())
	b, ok := tr.reg.Lookup("b")
	require.True(t, ok)
	v, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
	tr.stop()
	assert.Len(t, tr.rec.exitsOf(a.ID()), 1)
}

// A bucket that ends before its Created is published (a caller's function
// panics in a bucket found by Lookup right after Create recorded it) while
// the registry restarts: its Exited still comes after its Created.
func TestRestartedRegistryKeepsCreatedBeforeExited(t *testing.T) {
	g := newGate(func(ev events.Event) bool {
		c, ok := ev.(events.Created)
		return ok && c.Bucket == "x"
	})
	restarted := newSignal("registry restarted")
	tr := newTreeWith(t, g.wrap, slog.New(restarted))

	created := make(chan error, 1)
	go func() { _, err := tr.reg.Create(ctx, "x"); created <- err }()
	<-g.held // recorded, Created not yet published
	b, ok := tr.reg.Lookup("x")
	require.True(t, ok)
	err := b.Update(func(*bucket.Tx) error { panic("the caller's function") })
	require.Error(t, err)
	tr.reg.box.send(notice{crash: true})
	<-restarted.seen // remonitor has run
	close(g.open)
	require.NoError(t, <-created)

	ex := tr.rec.waitExit(t, b.ID())
	var pe *bucket.PanicError
	assert.ErrorAs(t, ex.Reason, &pe)
	evs := tr.rec.events()
	require.GreaterOrEqual(t, len(evs), 2)
	assert.IsType(t, events.Created{}, evs[0], "Created before Exited: %v", evs)
	assert.Len(t, tr.rec.exitsOf(b.ID()), 1)
}

// Once the names have switched, an in-memory Rename reports success even
// if ctx ends while it waits for the replaced bucket's end to be reported:
// it has happened.
func TestRenameSucceedsOnceTheNamesHaveSwitched(t *testing.T) {
	g := newGate(func(ev events.Event) bool {
		ex, ok := ev.(events.Exited)
		return ok && ex.Bucket == "b"
	})
	tr := newTreeWith(t, g.wrap, nil)
	a, err := tr.reg.Create(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, a.Put("k", []byte("from a")))
	_, err = tr.reg.Create(ctx, "b")
	require.NoError(t, err)

	short, cancel := context.WithCancel(ctx)
	renamed := make(chan error, 1)
	go func() { renamed <- tr.reg.Rename(short, "a", "b") }()
	<-g.held // the old b's Exited is held: Rename waits
	cancel()
	close(g.open)
	require.NoError(t, <-renamed)
	b, ok := tr.reg.Lookup("b")
	require.True(t, ok)
	v, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "from a", string(v))
	_, ok = tr.reg.Lookup("a")
	assert.False(t, ok)
}

// A registry that crashes more often than its supervisor's
// FailureThreshold allows is held back for FailureBackoff (15 seconds by
// default). A tree that stops meanwhile never runs it again: its Drainer
// (services.New adds it, as this test does) drains in its stead, so that
// every bucket, those that ended while it was held back included, gets
// its one Exited, and the event manager is released.
func TestDrainStandsInForARegistryHeldBackAfterCrashes(t *testing.T) {
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	reg := New(Config{Buckets: sup, Events: ev, StopTimeout: 2 * time.Second})
	backoff := make(chan struct{})
	var once sync.Once
	root := suture.New("test", suture.Spec{EventHook: func(e suture.Event) {
		if _, ok := e.(suture.EventBackoff); ok {
			once.Do(func() { close(backoff) })
		}
	}})
	root.Add(ev)
	root.Add(sup)
	root.Add(reg)
	root.Add(reg.Drainer())
	rec := newRecorder()
	sub, err := ev.Subscribe(events.SubscribeOptions{Mailbox: 1 << 10, Name: "recorder"}, rec.handle)
	require.NoError(t, err)
	treeCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := root.ServeBackground(treeCtx)

	var ids []uint64
	for i := range 20 {
		b, err := reg.Create(ctx, fmt.Sprintf("b%02d", i))
		require.NoError(t, err)
		ids = append(ids, b.ID())
	}
	for held := false; !held; {
		runs := reg.runs.Load()
		reg.box.send(notice{crash: true})
		require.Eventually(t, func() bool {
			select {
			case <-backoff:
				held = true
				return true
			default:
				return reg.runs.Load() > runs
			}
		}, waitFor, tick, "suture restarts the registry, or holds it back")
	}
	// Ended while the registry is held back: its notice waits in the mailbox.
	b, ok := reg.Lookup("b07")
	require.True(t, ok)
	b.Stop(errors.New("while the registry was held back"))
	runs := reg.runs.Load()

	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	<-sub.Done()

	assert.Equal(t, runs, reg.runs.Load(), "suture did not run the registry again: Drain stood in")
	for _, id := range ids {
		require.Len(t, rec.exitsOf(id), 1, "bucket %d has one Exited", id)
	}
	assert.EqualError(t, rec.exitsOf(b.ID())[0].Reason, "while the registry was held back")
	assert.ErrorIs(t, reg.Serve(ctx), suture.ErrDoNotRestart, "a drained registry does not serve again")
	reg.Drain() // again: returns at once
}
