package resp

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventWriteGate holds every subscription goroutine of a server, as the
// socket of a client that does not read would, where it is about to write
// an event's messages, holding the client's wmu (Config's
// testHookEventWrite), until open is called.
//
// A real socket does not hold deterministically: with the client reading
// nothing, the kernel still takes a little now and then (it compacts the
// client's receive queue, and the server's send buffer grows), so the
// subscription's goroutine went on delivering after its mailbox had
// overflowed, and the subscriber meant to be stuck was disconnected in
// about one run in eight under load.
type eventWriteGate struct {
	held     chan struct{} // closed once a write is held
	release  chan struct{}
	heldOnce sync.Once
	openOnce sync.Once
}

func newEventWriteGate() *eventWriteGate {
	return &eventWriteGate{held: make(chan struct{}), release: make(chan struct{})}
}

// hold is the hook: it waits until the gate is open.
func (g *eventWriteGate) hold() {
	g.heldOnce.Do(func() { close(g.held) })
	<-g.release
}

// open lets every held write go on, and every later one through.
func (g *eventWriteGate) open() { g.openOnce.Do(func() { close(g.release) }) }

// stuckRESP3Subscriber connects a RESP3 subscriber of channels (n names),
// on a server whose Config's testHookEventWrite is gate.hold, and creates
// buckets until its mailbox has lost an event: its subscription's
// goroutine is then held where it writes to the socket, holding its wmu,
// until the test opens the gate (at the latest when it ends, before the
// server stops).
func stuckRESP3Subscriber(t *testing.T, ts *testServer, gate *eventWriteGate, writer *redis.Client, channels string, n int) *raw {
	t.Helper()
	t.Cleanup(gate.open)
	sub := ts.raw(t)
	sub.hello3()
	sub.send("SUBSCRIBE " + channels + "\r\n")
	for i := 1; i <= n; i++ {
		sub.line() // >3
		sub.line()
		sub.line()
		sub.line()
		sub.line()
		require.Equal(t, fmt.Sprintf(":%d", i), sub.line())
	}
	ctx := context.Background()
	for round := 0; ts.root.Events().Stats().Dropped == 0; round++ {
		p := writer.Pipeline()
		for j := range 1000 {
			p.HSet(ctx, fmt.Sprintf("k%d-%d", round, j), "f", "v")
		}
		_, err := p.Exec(ctx)
		require.NoError(t, err)
	}
	select {
	case <-gate.held:
	default:
		require.FailNow(t, "the mailbox overflowed with no event write held")
	}
	require.Zero(t, ts.srv.kicked.Load(), "the subscriber was disconnected rather than stuck")
	return sub
}

// subscriptionEnded waits until one of the subs subscriptions that ts's
// event manager had has ended.
func subscriptionEnded(t *testing.T, ts *testServer, subs int) {
	t.Helper()
	require.Eventually(t, func() bool { return ts.root.Events().Stats().Subscribers == subs-1 },
		20*time.Second, time.Millisecond, "the subscription ended")
}

// A transaction that unsubscribes a RESP3 subscriber from its last name
// makes it a normal client for the rest of the transaction: a HELLO 2
// after it switches it back to RESP2, though its subscription's goroutine
// is stopped only once EXEC has released the transactions' lock.
func TestHelloInExecAfterLastUnsubscribe(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			r := ts.raw(t)
			r.hello3()
			r.send("SUBSCRIBE kv:created\r\n")
			r.expect(">3", "$9", "subscribe", "$10", "kv:created", ":1")
			r.send("MULTI\r\nUNSUBSCRIBE\r\nHELLO 2\r\nEXEC\r\n")
			r.expect("+OK", "+QUEUED", "+QUEUED", "*2", ">3", "$11", "unsubscribe", "$10", "kv:created", ":0")
			require.Equal(t, "*14", r.line(), "HELLO 2 after the last UNSUBSCRIBE of the same EXEC")
		})
	}
}

// A RESP3 subscriber whose event write is stuck (its client does not
// read) sends a transaction that unsubscribes it from its last channel:
// its EXEC, which holds every other client's writes back, must not wait
// for the event being written to it (for up to WriteTimeout: 30 s by
// default). Once the write goes on, it is disconnected for the events its
// full mailbox lost (unsubscribing does not make that loss silent), and
// nothing it sent after runs (a write among them would be applied and
// never acknowledged), as Redis runs nothing more of a client it has
// decided to close.
func TestRESP3SubscriberUnsubscribingInATransactionDoesNotStallWriters(t *testing.T) {
	gate := newEventWriteGate()
	ts := start(t, Config{testHookEventWrite: gate.hold})
	ctx := context.Background()
	writer := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
	sub := stuckRESP3Subscriber(t, ts, gate, writer, "kv:created", 1)
	subs := ts.root.Events().Stats().Subscribers
	sub.send("MULTI\r\nUNSUBSCRIBE\r\nEXEC\r\nHSET after f v\r\n")

	// A hang, not a speed: with the stall, these wait until the gate
	// opens. The channel's count falls when the EXEC runs.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		n, err := writer.PubSubNumSub(wctx, "kv:created").Result()
		require.NoError(t, err)
		return n["kv:created"] == 0
	}, 20*time.Second, time.Millisecond, "the EXEC ran")
	require.NoError(t, writer.HSet(wctx, "other", "f", "v").Err(), "writers wait for a subscriber that does not read")
	require.NoError(t, writer.Ping(wctx).Err())

	// The disconnection is EXEC's doing, not the next event's: the
	// subscription ends before the gate opens, and its goroutine then
	// delivers nothing more.
	subscriptionEnded(t, ts, subs)
	gate.open()
	require.True(t, sub.closed(), "disconnected once its write goes on, for the events it lost")
	require.Eventually(t, func() bool {
		for _, c := range ts.srv.clients() {
			if c.addr == sub.nc.LocalAddr().String() {
				return false
			}
		}
		return true
	}, 20*time.Second, time.Millisecond, "the subscriber's connection ended")
	assert.EqualValues(t, 1, ts.srv.kicked.Load(), "counted as a slow subscriber disconnected")
	assert.Zero(t, writer.Exists(ctx, "after").Val(), "a write sent after the EXEC that disconnected it ran")
}

// Nothing else a stuck RESP3 subscriber may run, in a transaction (under
// the exclusive lock) or alone (under the shared lock, while another
// client's EXEC waits for the exclusive one), waits for its stuck event
// write: no other client's writes wait.
func TestStuckRESP3SubscriberHoldsNoOneBack(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			gate := newEventWriteGate()
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, testHookEventWrite: gate.hold})
			ctx := context.Background()
			writer := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
			other := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
			sub := stuckRESP3Subscriber(t, ts, gate, writer, "kv:created kv:exited", 2)
			// A transaction (not the last name: EXEC's reply is flushed
			// under wmu, once EXEC has released the lock), then the same
			// commands alone, each under the shared lock. One write: the
			// client's goroutine runs all it has read before it writes
			// their replies, and that write waits for wmu (held by the
			// subscription's goroutine); what came in a later read would
			// run only once the gate opens.
			sub.send("MULTI\r\nPING\r\nHELLO 3\r\nCLIENT SETNAME stuck\r\nCLIENT LIST\r\nINFO\r\n" +
				"PUBSUB NUMSUB kv:created\r\nHSET mine f v\r\nUNSUBSCRIBE kv:created\r\nPUNSUBSCRIBE\r\n" +
				"PING\r\nEXEC\r\n" +
				"HELLO 3\r\nHSET mine2 f v\r\nCLIENT LIST\r\nPUBSUB CHANNELS\r\nWATCH w\r\nUNWATCH\r\n")
			// Once they have run, nothing they left behind holds a lock.
			require.Eventually(t, func() bool { return writer.Exists(ctx, "mine2").Val() == 1 }, 20*time.Second, time.Millisecond)
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			for i := range 50 {
				_, err := other.TxPipelined(wctx, func(p redis.Pipeliner) error {
					p.HSet(wctx, fmt.Sprintf("tx%d", i), "f", "v")
					return nil
				})
				require.NoError(t, err, "an EXEC waits for a subscriber that does not read")
				require.NoError(t, writer.HSet(wctx, "other", "f", "v").Err(), "writers wait for a subscriber that does not read")
			}
			gate.open()
			assert.True(t, sub.closed(), "disconnected once its write goes on, for the events it lost")
		})
	}
}

// RESET ends a subscription as the last UNSUBSCRIBE does: a subscriber
// whose mailbox overflowed is disconnected rather than going on as a
// normal client that missed events.
func TestResetAfterOverflowIsDisconnected(t *testing.T) {
	gate := newEventWriteGate()
	ts := start(t, Config{testHookEventWrite: gate.hold})
	writer := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
	sub := stuckRESP3Subscriber(t, ts, gate, writer, "kv:created", 1)
	subs := ts.root.Events().Stats().Subscribers
	sub.send("RESET\r\nPING\r\n")
	subscriptionEnded(t, ts, subs) // RESET's doing, not the next event's
	gate.open()
	assert.True(t, sub.closed(), "a subscriber that lost events goes on after RESET")
}
