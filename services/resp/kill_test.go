package resp

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/store"
)

// clientID asks r for its client ID.
func (r *raw) clientID() string {
	r.t.Helper()
	r.send("CLIENT ID\r\n")
	return strings.TrimPrefix(r.line(), ":")
}

// CLIENT KILL closes the clients it names, in its old form (an address:
// OK or no such client) and its new one (filters: how many), spares the
// caller unless told otherwise, and leaves every other client alone.
func TestClientKill(t *testing.T) {
	ts := start(t, Config{})
	a, b := ts.raw(t), ts.raw(t)
	bid := b.clientID()
	a.send("CLIENT KILL ID " + bid + "\r\n")
	a.expect(":1")
	assert.True(t, b.closed(), "killed by ID")
	a.send("CLIENT KILL ID " + bid + "\r\n")
	a.expect(":0")

	c := ts.raw(t)
	c.clientID() // the server has it
	addr := c.nc.LocalAddr().String()
	a.send("CLIENT KILL " + addr + "\r\n")
	a.expect("+OK")
	assert.True(t, c.closed(), "killed by address, the old form")
	a.send("CLIENT KILL " + addr + "\r\n")
	a.expect("-ERR No such client")

	aid := a.clientID()
	a.send("CLIENT KILL ID " + aid + "\r\n")
	a.expect(":0") // SKIPME yes by default

	// A subscriber (served on a goroutine of its own, also on the event
	// loop) by TYPE; a normal client is left alone.
	sub, normal := ts.raw(t), ts.raw(t)
	sub.send("SUBSCRIBE kv:created\r\n")
	sub.expect("*3", "$9", "subscribe", "$10", "kv:created", ":1")
	normal.clientID()
	a.send("CLIENT KILL TYPE pubsub\r\n")
	a.expect(":1")
	assert.True(t, sub.closed(), "killed by TYPE pubsub")
	normal.send("PING\r\n")
	normal.expect("+PONG")
	a.send("CLIENT KILL TYPE master\r\n")
	a.expect(":0")

	// Every other client of this listener, by LADDR and USER.
	a.send("CLIENT KILL LADDR " + ts.addr + " USER default TYPE normal\r\n")
	a.expect(":1")
	assert.True(t, normal.closed())

	for _, tc := range []struct{ cmd, want string }{
		{"CLIENT KILL", "-ERR wrong number of arguments for 'client|kill' command"},
		{"CLIENT KILL ID x", "-ERR client-id should be greater than 0"},
		{"CLIENT KILL ID 0", "-ERR client-id should be greater than 0"},
		{"CLIENT KILL TYPE foo", "-ERR Unknown client type 'foo'"},
		{"CLIENT KILL SKIPME maybe", "-ERR syntax error"},
		{"CLIENT KILL FOO bar", "-ERR syntax error"},
		{"CLIENT KILL ID 5 SKIPME", "-ERR syntax error"},
		{"CLIENT KILL USER nobody", "-ERR No such user 'nobody'"},
		{"CLIENT KILL ID", "-ERR No such client"}, // the old form: an address
	} {
		a.send(tc.cmd + "\r\n")
		assert.Equal(t, tc.want, a.line(), tc.cmd)
	}

	// A client that kills itself gets its reply, then is closed.
	a.send("CLIENT KILL ID " + aid + " SKIPME no\r\n")
	a.expect(":1")
	assert.True(t, a.closed())
}

// CLIENT KILL among busy clients: writers pipelining on the event loop,
// subscribers on goroutines of their own, killed again and again while
// they work. The server goes on serving, no command panics, and every
// write a client saw acknowledged is there.
func TestClientKillAmongBusyClients(t *testing.T) {
	logs := new(panics)
	ts := start(t, Config{Logger: slog.New(logs)})
	ctx := context.Background()
	const writers, rounds = 8, 40
	var wg sync.WaitGroup
	acked := make([]map[string]string, writers)
	stop := make(chan struct{})
	var connected sync.WaitGroup // every writer has a connection to kill
	connected.Add(writers)
	for w := range writers {
		acked[w] = map[string]string{}
		rc := ts.client(t)
		wg.Go(func() {
			first := true
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, field, value := fmt.Sprintf("w%d", w), fmt.Sprintf("f%d", i%50), strconv.Itoa(i)
				pipe := rc.Pipeline()
				pipe.HSet(ctx, key, field, value)
				pipe.HGet(ctx, key, field)
				if _, err := pipe.Exec(ctx); err == nil {
					acked[w][field] = value
				}
				if first {
					first = false
					connected.Done()
				}
			}
		})
	}
	for range 4 {
		rc := ts.client(t)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ps := rc.Subscribe(ctx, "kv:created")
				_, _ = ps.Receive(ctx)
				_ = ps.Close()
			}
		})
	}
	connected.Wait()
	killer := ts.raw(t)
	killed := 0
	for range rounds {
		killer.send("CLIENT KILL SKIPME yes\r\n")
		line := killer.line()
		n, err := strconv.Atoi(strings.TrimPrefix(line, ":"))
		require.NoError(t, err, line)
		killed += n
		killer.send("CLIENT KILL TYPE pubsub\r\n")
		killer.line()
	}
	close(stop)
	wg.Wait()
	assert.Positive(t, killed)
	assert.Empty(t, logs.String())

	rc := ts.client(t)
	for w := range writers {
		got, err := rc.HGetAll(ctx, fmt.Sprintf("w%d", w)).Result()
		require.NoError(t, err)
		for f, v := range acked[w] {
			// A later write of the field may have landed without its
			// acknowledgement reaching the writer: it is never older.
			gv, err := strconv.Atoi(got[f])
			require.NoError(t, err, "w%d %s", w, f)
			want, _ := strconv.Atoi(v)
			assert.GreaterOrEqual(t, gv, want, "w%d %s", w, f)
		}
	}
}

// The killer kills itself (and the others) with SKIPME no, with more
// commands pipelined behind: its reply comes, the rest does not run.
func TestClientKillSelfPipelined(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	other := ts.raw(t)
	other.clientID()
	k := ts.raw(t)
	k.send("CLIENT KILL SKIPME no\r\nHSET selfafter f 1\r\nPING\r\n")
	k.expect(":2")
	assert.True(t, k.closed())
	assert.True(t, other.closed())
	rc := ts.client(t)
	n, err := rc.Exists(ctx, "selfafter").Result()
	require.NoError(t, err)
	assert.Zero(t, n)
}

// A client that does not read its replies (blocked) is closed by the kill,
// not after WriteTimeout (a minute here).
func TestClientKillSlowReader(t *testing.T) {
	ts := start(t, Config{WriteTimeout: time.Minute})
	ctx := context.Background()
	rc := ts.client(t)
	require.NoError(t, rc.HSet(ctx, "h", "big", strings.Repeat("v", 64<<10)).Err())
	slow := ts.raw(t)
	id := slow.clientID()
	slow.send(strings.Repeat("HGET h big\r\n", 256)) // 16 MiB of replies, unread
	k := ts.raw(t)
	k.send("CLIENT KILL ID " + id + "\r\n")
	k.expect(":1")
	slow.requireClosedForWrites()
}

// A client in MULTI: closed, its transaction never runs.
func TestClientKillInMulti(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	v := ts.raw(t)
	id := v.clientID()
	v.send("MULTI\r\nHSET m f 1\r\n")
	v.expect("+OK", "+QUEUED")
	k := ts.raw(t)
	k.send("CLIENT KILL ID " + id + "\r\n")
	k.expect(":1")
	assert.True(t, v.closed())
	n, err := ts.client(t).Exists(ctx, "m").Result()
	require.NoError(t, err)
	assert.Zero(t, n)
}

// A client whose write waits for a stalled disk: closed while the disk
// stalls (its socket), its write kept; the server stops cleanly after.
func TestClientKillWaitingForDisk(t *testing.T) {
	faults := &store.Faults{}
	ds := startDurable(t, t.TempDir(), faultyAlways(faults))
	ctx := context.Background()
	k := ds.raw(t)
	k.send("SAVE\r\n") // a goroutine of its own, under the loop
	k.expect("+OK")
	v := ds.raw(t)
	id := v.clientID()
	resume := faults.Stall()
	defer resume()
	v.send("HSET d f 1\r\n")
	require.Eventually(t, func() bool {
		k.send("HEXISTS d f\r\n")
		return k.line() == ":1"
	}, 10*time.Second, time.Millisecond)
	k.send("CLIENT KILL ID " + id + "\r\n")
	k.expect(":1")
	assert.True(t, v.closed(), "closed while the disk stalls")
	resume()
	assert.Equal(t, "1", ds.client(t).HGet(ctx, "d", "f").Val())
	k.send("CLIENT LIST ID " + id + "\r\n")
	k.expect("$0", "")
}

// CLIENT HELP lists KILL, as Redis 7's does ("KILL <ip:port>", "KILL
// <option> <value> [...]").
func TestClientHelpListsKill(t *testing.T) {
	ts := start(t, Config{})
	lines, err := ts.client(t).Do(context.Background(), "CLIENT", "HELP").StringSlice()
	require.NoError(t, err)
	found := false
	for _, l := range lines {
		if strings.HasPrefix(l, "KILL") {
			found = true
		}
	}
	assert.True(t, found, "CLIENT HELP: %q", lines)
}

// A subscriber whose mailbox overflowed while it was stuck on a full
// socket (the usual reason an operator kills it) is not counted as a slow
// subscriber once CLIENT KILL has closed it: the kill came first. From
// review: the write that the kill failed returned, the subscription's
// goroutine took the next event, saw the mailbox's drops and kicked the
// killed client as slow.
func TestKilledSubscriberWithDropsIsNotKicked(t *testing.T) {
	s, _ := commandLayer(t, Config{})
	mgr := events.New(events.Options{})
	block := make(chan struct{})
	sub, err := mgr.Subscribe(events.SubscribeOptions{Mailbox: 1}, func(events.Event) { <-block })
	require.NoError(t, err)
	defer func() { sub.Close(); close(block); <-sub.Done() }()
	require.Eventually(t, func() bool {
		mgr.Publish(events.Created{Bucket: "b"})
		return sub.Dropped() > 0
	}, 10*time.Second, time.Millisecond)

	c := newConn(s, discardConn{})
	p := &subscriber{c: c, channels: map[string]uint64{}, patterns: map[string]uint64{}}
	p.sub.Store(sub)
	c.killed.Store(true) // CLIENT KILL closed it
	p.deliver(events.Created{Bucket: "b", Seq: 1})
	assert.Zero(t, s.kicked.Load(), "a killed subscriber counted as slow")
}
