package registry

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

// panicOnExit is a Publisher that panics once, at the Exited of bucket.
type panicOnExit struct {
	Publisher
	bucket string
	once   sync.Once
}

func (p *panicOnExit) Publish(ev events.Event) {
	if ex, ok := ev.(events.Exited); ok && ex.Bucket == p.bucket {
		p.once.Do(func() { panic("the host's publisher failed") })
	}
	p.Publisher.Publish(ev)
}

// A host's Publisher that panics at a bucket's Exited crashes the loop
// (suture restarts it), but the Delete waiting for that bucket returns:
// the bucket was out of the tables already, and nothing would have closed
// its wait later.
func TestDeleteReturnsWhenPublishingItsExitedPanics(t *testing.T) {
	tr := newTreeWith(t, func(m *events.Manager) Publisher { return &panicOnExit{Publisher: m, bucket: "p"} }, nil)
	_, err := tr.reg.Create(ctx, "p")
	require.NoError(t, err)
	dctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	require.NoError(t, tr.reg.Delete(dctx, "p"))
	_, ok := tr.reg.Lookup("p")
	assert.False(t, ok)
}
