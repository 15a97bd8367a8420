package resp

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/events"
)

// lateReturnEvents is the tree's event manager, with Subscribe returning
// only once the new subscription's goroutine has delivered what was
// published meanwhile, one event of it lost to the full mailbox: what the
// real manager does when the subscription's goroutine runs before
// Subscribe's caller does (the window the atomic pointer is for).
type lateReturnEvents struct{ m *events.Manager }

func (w lateReturnEvents) Subscribe(opts events.SubscribeOptions, fn func(events.Event)) (*events.Subscription, error) {
	taken := make(chan struct{})
	hold := make(chan struct{})
	delivered := make(chan struct{}, 16)
	first := true
	sub, err := w.m.Subscribe(opts, func(ev events.Event) {
		if first {
			first = false
			close(taken)
			<-hold
		}
		fn(ev)
		delivered <- struct{}{}
	})
	if err != nil {
		return nil, err
	}
	w.m.Publish(&events.Created{Bucket: "e1"})
	<-taken                                    // e1 is being delivered: the mailbox is empty
	w.m.Publish(&events.Created{Bucket: "e2"}) // fills the mailbox of 1
	w.m.Publish(&events.Created{Bucket: "e3"}) // lost
	if sub.Dropped() != 1 {
		panic("no event lost")
	}
	close(hold)
	<-delivered
	<-delivered
	return sub, nil
}

// A subscriber that lost an event before Subscribe returned, and then
// nothing more is published, must still be disconnected.
func TestRev2SubscriberLostEventBeforeSubscribeReturned(t *testing.T) {
	tree := start(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(Config{Registry: tree.root.Registry(), Events: lateReturnEvents{tree.root.Events()},
		SubscriberMailbox: 1, GoroutinePerClient: goroutinePerClient})
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(ctx, ln) }()
	defer func() { stop(); <-served }()
	r := (&testServer{root: tree.root, srv: srv, addr: ln.Addr().String()}).raw(t)
	r.send("PSUBSCRIBE *\r\n")
	// Whether its reply came first or not, its connection ends.
	assert.True(t, closedWithin(r, 2*time.Second), "the subscriber that lost an event is still connected")
	assert.EqualValues(t, 1, srv.kicked.Load())
}

func closedWithin(r *raw, d time.Duration) bool {
	_ = r.nc.SetReadDeadline(time.Now().Add(d))
	for {
		if _, err := r.rd.ReadByte(); err != nil {
			var ne net.Error
			if errorsAs(err, &ne) && ne.Timeout() {
				return false
			}
			return true
		}
	}
}
