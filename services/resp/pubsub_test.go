package resp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/events"
)

// next returns the next event message of ps, failing after 10 seconds.
func next(t *testing.T, ps *redis.PubSub) (channel string, m EventMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		msg, err := ps.Receive(ctx)
		require.NoError(t, err)
		switch msg := msg.(type) {
		case *redis.Message:
			require.NoError(t, json.Unmarshal([]byte(msg.Payload), &m))
			return msg.Channel, m
		case *redis.Subscription, *redis.Pong:
		default:
			t.Fatalf("unexpected %T %v", msg, msg)
		}
	}
}

func TestPubSubLifecycleEvents(t *testing.T) {
	ts := start(t, Config{EnableDebugCommand: true})
	ctx := context.Background()
	rc := ts.client(t)
	other := ts.client(t)

	ps := ts.client(t).Subscribe(ctx, ChannelCreated, ChannelExited)
	defer ps.Close()
	_, err := ps.ReceiveTimeout(ctx, 10*time.Second) // subscribe kv:created
	require.NoError(t, err)
	_, err = ps.ReceiveTimeout(ctx, 10*time.Second) // subscribe kv:exited
	require.NoError(t, err)
	pps := ts.client(t).PSubscribe(ctx, ChannelBucketPrefix+"cart*")
	defer pps.Close()
	_, err = pps.ReceiveTimeout(ctx, 10*time.Second)
	require.NoError(t, err)

	require.NoError(t, rc.HSet(ctx, "cart", "apples", "3").Err())
	ch, m := next(t, ps)
	assert.Equal(t, ChannelCreated, ch)
	assert.Equal(t, "created", m.Event)
	assert.Equal(t, "cart", m.Bucket)
	created := m
	ch, m = next(t, pps)
	assert.Equal(t, ChannelBucketPrefix+"cart", ch)
	assert.Equal(t, created, m)

	require.NoError(t, rc.HSet(ctx, "other", "k", "v").Err())
	_, m = next(t, ps)
	assert.Equal(t, "other", m.Bucket)

	// A name that is not valid UTF-8 arrives exact in bucket_base64.
	require.NoError(t, rc.HSet(ctx, "\xff\xfe", "k", "v").Err())
	_, m = next(t, ps)
	assert.Equal(t, "\ufffd\ufffd", m.Bucket)
	raw, err := base64.StdEncoding.DecodeString(m.BucketB64)
	require.NoError(t, err)
	assert.Equal(t, "\xff\xfe", string(raw))

	require.NoError(t, rc.Del(ctx, "cart").Err())
	ch, m = next(t, ps)
	assert.Equal(t, ChannelExited, ch)
	assert.Equal(t, EventMessage{Event: "exited", Bucket: "cart", BucketB64: "Y2FydA==", ID: created.ID, Seq: m.Seq, Reason: ReasonNormal}, m)
	_, m = next(t, pps)
	assert.Equal(t, "exited", m.Event)

	// A bucket crashed on purpose: Exited carries the panic, the bucket is
	// gone, the other bucket and every client carry on.
	require.NoError(t, rc.HSet(ctx, "cart", "pears", "2").Err())
	_, m = next(t, ps)
	assert.Equal(t, "created", m.Event)
	require.NoError(t, rc.Do(ctx, "DEBUG", "CRASH-BUCKET", "cart").Err())
	_, m = next(t, ps)
	assert.Equal(t, "exited", m.Event)
	assert.Equal(t, "cart", m.Bucket)
	assert.Equal(t, ReasonPanic, m.Reason)
	assert.Contains(t, m.Error, "DEBUG CRASH-BUCKET cart")
	assert.Equal(t, int64(0), other.Exists(ctx, "cart").Val())
	assert.Equal(t, "v", other.HGet(ctx, "other", "k").Val())
	assert.Equal(t, "PONG", rc.Ping(ctx).Val())
	require.NoError(t, ps.Ping(ctx))

	// Writing to the crashed name makes a new bucket.
	require.NoError(t, other.HSet(ctx, "cart", "plums", "1").Err())
	_, m = next(t, ps)
	assert.Equal(t, "created", m.Event)
	assert.NotEqual(t, created.ID, m.ID)

	// FLUSHALL deletes every bucket, each with its event.
	require.NoError(t, rc.FlushAll(ctx).Err())
	gone := map[string]string{}
	for range 3 {
		_, m = next(t, ps)
		assert.Equal(t, "exited", m.Event)
		name, err := base64.StdEncoding.DecodeString(m.BucketB64)
		require.NoError(t, err)
		gone[string(name)] = m.Reason
	}
	assert.Equal(t, map[string]string{"cart": ReasonNormal, "other": ReasonNormal, "\xff\xfe": ReasonNormal}, gone)

	// RENAME's source and UNLINK end their buckets normally too, as the
	// README's list of reasons says.
	require.NoError(t, rc.HSet(ctx, "src", "f", "v").Err())
	_, m = next(t, ps)
	assert.Equal(t, "created", m.Event)
	require.NoError(t, rc.Rename(ctx, "src", "dst").Err())
	require.NoError(t, rc.Unlink(ctx, "dst").Err())
	var events []string
	for range 3 {
		_, m = next(t, ps)
		events = append(events, m.Event+" "+m.Bucket+" "+m.Reason)
	}
	assert.ElementsMatch(t, []string{"exited src " + ReasonNormal, "created dst ", "exited dst " + ReasonNormal}, events)
}

func TestPubSubCommands(t *testing.T) {
	ts := start(t, Config{})
	r := ts.raw(t)
	r.send("SUBSCRIBE kv:created kv:exited\r\n")
	for i, ch := range []string{"kv:created", "kv:exited"} {
		assert.Equal(t, "*3", r.line())
		r.line()
		assert.Equal(t, "subscribe", r.line())
		r.line()
		assert.Equal(t, ch, r.line())
		assert.Equal(t, fmt.Sprintf(":%d", i+1), r.line())
	}
	r.send("HGET a b\r\n")
	assert.Equal(t, "-ERR Can't execute 'hget': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", r.line())
	r.send("CLIENT ID\r\n") // named with its subcommand, as Redis 7 does
	assert.Equal(t, "-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", r.line())
	r.send("PING\r\n")
	assert.Equal(t, "*2", r.line())
	r.line()
	assert.Equal(t, "pong", r.line())
	r.line()
	assert.Equal(t, "", r.line())
	r.send("UNSUBSCRIBE\r\n")
	for i, ch := range []string{"kv:created", "kv:exited"} {
		assert.Equal(t, "*3", r.line())
		r.line()
		assert.Equal(t, "unsubscribe", r.line())
		r.line()
		assert.Equal(t, ch, r.line())
		assert.Equal(t, fmt.Sprintf(":%d", 1-i), r.line())
	}
	r.send("PING\r\n") // a normal client again
	assert.Equal(t, "+PONG", r.line())
}

// TestSlowSubscriberIsDisconnected checks the slow-subscriber rule: a
// subscriber that does not read is disconnected, and writers never wait.
func TestSlowSubscriberIsDisconnected(t *testing.T) {
	ts := start(t, Config{SubscriberMailbox: 4, WriteTimeout: 50 * time.Millisecond})
	ctx := context.Background()
	rc := ts.client(t)
	slow := ts.raw(t)
	slow.send("PSUBSCRIBE *\r\n")
	assert.Equal(t, "*3", slow.line())
	// Never read again; churn buckets until the server gives up on it.
	for i := 0; ts.srv.kicked.Load() == 0; i++ {
		require.Less(t, i, 1_000_000, "the slow subscriber was never disconnected")
		name := fmt.Sprintf("b%d-%s", i, string(make([]byte, 2000)))
		require.NoError(t, rc.HSet(ctx, name, "f", "v").Err())
		require.NoError(t, rc.Del(ctx, name).Err())
	}
	assert.True(t, slow.closed())
	info := rc.Info(ctx, "stats").Val()
	assert.Contains(t, info, "slow_subscribers_disconnected:1")
}

// A subscriber whose mailbox overflows is disconnected even when the
// events it lost were the last ones published: it must not read on the
// events before them and stay, unaware of its gap, until another event
// comes (which may be never).
func TestSubscriberThatLostTheLastEventsIsDisconnected(t *testing.T) {
	ts := start(t, Config{SubscriberMailbox: 4, WriteTimeout: time.Minute})
	ctx := context.Background()
	rc := ts.client(t)
	slow := ts.raw(t)
	slow.send("PSUBSCRIBE *\r\n")
	assert.Equal(t, "*3", slow.line())
	// Not read for now: its socket fills up, its mailbox then, and the
	// next event is lost. Nothing is published after that.
	for i := 0; ts.root.Events().Stats().Dropped == 0; i++ {
		require.Less(t, i, 100_000, "no event was lost")
		name := fmt.Sprintf("b%d-%s", i, strings.Repeat("n", 4000))
		require.NoError(t, rc.HSet(ctx, name, "f", "v").Err())
		require.NoError(t, rc.Del(ctx, name).Err())
	}
	// It reads now: it gets the events before the lost one, and then its
	// connection ends.
	assert.True(t, slow.closed(), "the subscriber that lost an event is still connected")
	assert.EqualValues(t, 1, ts.srv.kicked.Load())
}

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
func TestSubscriberThatLostAnEventBeforeSubscribeReturnedIsDisconnected(t *testing.T) {
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
	assert.True(t, r.closed(), "the subscriber that lost an event is still connected")
	assert.EqualValues(t, 1, srv.kicked.Load())
}

// What a client subscribes to is kept for it, bounded as WATCH is: past
// MaxRequestBytes of names, SUBSCRIBE and PSUBSCRIBE answer an error, the
// names before stay subscribed, and an UNSUBSCRIBE makes room again.
func TestSubscriptionsAreBoundedInBytes(t *testing.T) {
	const limit = 64 << 10
	ts := start(t, Config{MaxRequestBytes: limit})
	r := ts.raw(t)
	const tooMany = "-ERR too many subscriptions: their names pass 65536 bytes"
	subscribe := func(cmd string, from, n int) (subscribed int, refused bool) {
		t.Helper()
		var req strings.Builder
		fmt.Fprintf(&req, "*%d\r\n$%d\r\n%s\r\n", n+1, len(cmd), cmd)
		for i := from; i < from+n; i++ {
			name := fmt.Sprintf("channel-%012d", i)
			fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(name), name)
		}
		r.send(req.String())
		for range n {
			line := r.line()
			if line == tooMany {
				return subscribed, true
			}
			require.Equal(t, "*3", line)
			r.line() // $9
			r.line() // subscribe
			r.line() // $20
			r.line() // the name
			r.line() // the count
			subscribed++
		}
		return subscribed, false
	}
	total := 0
	for from := 0; ; from += 500 {
		n, refused := subscribe("SUBSCRIBE", from, 500)
		total += n
		if refused {
			break
		}
		require.Less(t, total, 10_000, "never refused")
	}
	assert.Equal(t, limit/(20+subscribedNameSize), total, "as many names as fit")
	_, refused := subscribe("PSUBSCRIBE", 1_000_000, 1)
	assert.True(t, refused, "patterns count too")

	// Room again after UNSUBSCRIBE; the client still gets events.
	r.send("UNSUBSCRIBE channel-000000000000\r\n")
	r.expect("*3", "$11", "unsubscribe", "$20", "channel-000000000000", ":"+strconv.Itoa(total-1))
	r.send("SUBSCRIBE kv:created\r\n")
	r.expect("*3", "$9", "subscribe", "$10", "kv:created", ":"+strconv.Itoa(total))
	require.NoError(t, ts.client(t).HSet(context.Background(), "new", "f", "v").Err())
	r.expect("*3", "$7", "message", "$10", "kv:created")
}
