package resp

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// Both ways of serving clients, for the tests that must hold for each.
var servingModes = []struct {
	name               string
	goroutinePerClient bool
}{{"event loop", false}, {"goroutine per client", true}}

// loopClients is how many clients ts's event loop serves.
func loopClients(ts *testServer) int { return ts.srv.loop.Load().clients() }

// wantLoopClients waits until ts's event loop serves n clients, where
// there is an event loop (Linux, and not KV_TEST_GOROUTINE_PER_CLIENT).
func wantLoopClients(t *testing.T, ts *testServer, n int) {
	t.Helper()
	if ts.srv.loop.Load() == nil {
		return
	}
	require.Eventually(t, func() bool { return loopClients(ts) == n }, 10*time.Second, time.Millisecond,
		"the event loop serves %d clients, not %d", loopClients(ts), n)
}

func TestEventLoopServesClientsOnLinux(t *testing.T) {
	if runtime.GOOS != "linux" || goroutinePerClient {
		t.Skip("the event loop is Linux's, and on")
	}
	ts := start(t, Config{})
	rc := ts.client(t)
	require.NoError(t, rc.Ping(context.Background()).Err())
	wantLoopClients(t, ts, 1)
	info, err := rc.Info(context.Background(), "server", "clients").Result()
	require.NoError(t, err)
	assert.Contains(t, info, "multiplexing_api:epoll\r\n")
	assert.Contains(t, info, "event_loop_clients:1\r\n")

	gs := start(t, Config{GoroutinePerClient: true})
	info, err = gs.client(t).Info(context.Background(), "server", "clients").Result()
	require.NoError(t, err)
	assert.Contains(t, info, "multiplexing_api:goroutines\r\n")
	assert.Contains(t, info, "event_loop_clients:0\r\n")
}

// A client that subscribes in the middle of a pipeline leaves the event
// loop for a goroutine of its own: every reply comes in order, and the
// events reach it.
func TestSubscribeInAPipelineHandsTheClientOff(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			r := ts.raw(t)
			r.send("HSET h f v\r\n")
			assert.Equal(t, ":1", r.line())
			wantLoopClients(t, ts, 1)

			r.send("HGET h f\r\nSUBSCRIBE kv:created\r\nPING\r\n")
			assert.Equal(t, "$1", r.line())
			assert.Equal(t, "v", r.line())
			for _, want := range []string{"*3", "$9", "subscribe", "$10", "kv:created", ":1"} {
				assert.Equal(t, want, r.line())
			}
			for _, want := range []string{"*2", "$4", "pong", "$0", ""} {
				assert.Equal(t, want, r.line())
			}
			wantLoopClients(t, ts, 0)

			require.NoError(t, ts.client(t).HSet(context.Background(), "new", "f", "v").Err())
			for _, want := range []string{"*3", "$7", "message", "$10", "kv:created"} {
				assert.Equal(t, want, r.line())
			}
			r.line() // the message's length
			assert.Contains(t, r.line(), `"bucket":"new"`)
		})
	}
}

// Replies larger than the socket can take at once reach a client that
// reads them, in order, while it pipelines.
func TestLargePipelineRepliesArriveInOrder(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			value := strings.Repeat("x", 1000)
			require.NoError(t, ts.client(t).HSet(context.Background(), "h", "f", value).Err())
			r := ts.raw(t)
			const n = 5000 // 5 MB of replies, in one write of requests
			var req strings.Builder
			for i := range n {
				fmt.Fprintf(&req, "HGET h f\r\nECHO %d\r\n", i)
			}
			go func() { _, _ = r.nc.Write([]byte(req.String())) }()
			for i := range n {
				require.Equal(t, "$1000", r.line())
				require.Equal(t, value, r.line())
				require.Equal(t, fmt.Sprintf("$%d", len(fmt.Sprint(i))), r.line())
				require.Equal(t, fmt.Sprint(i), r.line())
			}
		})
	}
}

// A client that sends requests but does not read the replies is closed
// after WriteTimeout, and no other client waits for it meanwhile.
func TestClientThatDoesNotReadIsClosedAndBlocksNoOne(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, WriteTimeout: 300 * time.Millisecond})
			ctx := context.Background()
			// Served once the event loop has run the stuck client's
			// commands (64 MiB of replies, up to MaxReplyBytes, in one
			// wake-up): up to 0.9 s under the race detector once each
			// reply is copied once (3 to 5 s before), more on a loaded
			// machine; go-redis's default ReadTimeout is 3 s.
			rc := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
			require.NoError(t, rc.HSet(ctx, "big", "f", strings.Repeat("x", 1<<20)).Err())

			stuck := ts.raw(t)
			stuck.send(strings.Repeat("HGET big f\r\n", 64)) // 64 MiB of replies, never read
			// The others are served meanwhile.
			for i := range 20 {
				require.NoError(t, rc.HSet(ctx, "h", fmt.Sprint(i), i).Err())
			}
			// Closed once WriteTimeout has passed (reading the replies
			// would unblock it: the server's list of clients says it).
			addr := stuck.nc.LocalAddr().String()
			require.Eventually(t, func() bool {
				for _, c := range ts.srv.clients() {
					if c.addr == addr {
						return false
					}
				}
				return true
			}, 10*time.Second, 5*time.Millisecond)
			stuck.requireClosedForWrites()
			n, err := rc.HLen(ctx, "h").Result()
			require.NoError(t, err)
			assert.EqualValues(t, 20, n)
			assert.EqualValues(t, 1<<20, rc.HStrLen(ctx, "big", "f").Val())
		})
	}
}

// Writes to a durable store are answered on the event loop, once they
// are durable, in pipeline order.
func TestDurableWritesAreAnsweredOnTheLoop(t *testing.T) {
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncAlways})
	r := ds.raw(t)
	r.send("PING\r\n")
	assert.Equal(t, "+PONG", r.line())
	wantLoopClients(t, ds.testServer, 1)
	r.send("HSET h a 1\r\nHGET h a\r\nHSET h b 2\r\nHLEN h\r\n")
	for _, want := range []string{":1", "$1", "1", ":1", ":2"} {
		assert.Equal(t, want, r.line())
	}
	wantLoopClients(t, ds.testServer, 1)
}

// Stopping the server with clients on the event loop, one of them in the
// middle of a request and one blocked on its replies, closes them all.
func TestStopClosesTheEventLoopsClients(t *testing.T) {
	tree := start(t, Config{}) // for its registry and events
	require.NoError(t, tree.client(t).HSet(context.Background(), "big", "f", strings.Repeat("x", 1<<20)).Err())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(Config{Registry: tree.root.Registry(), Events: tree.root.Events(), GoroutinePerClient: goroutinePerClient,
		ShutdownTimeout: 300 * time.Millisecond})
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(ctx, ln) }()
	ts := &testServer{root: tree.root, srv: srv, addr: ln.Addr().String()}

	half := ts.raw(t)
	half.send("*2\r\n$4\r\nECHO\r\n$5\r\nhel")
	stuck := ts.raw(t)
	stuck.send(strings.Repeat("HGET big f\r\n", 32))
	idle := ts.raw(t)
	idle.send("PING\r\n")
	assert.Equal(t, "+PONG", idle.line())
	wantLoopClients(t, ts, 3)

	stop()
	select {
	case err := <-served:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop")
	}
	for _, r := range []*raw{half, idle} {
		require.NoError(t, r.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err := io.Copy(io.Discard, r.rd)
		require.NoError(t, err, "closed by the server")
	}
	stuck.requireClosedForWrites()
}

// A client that takes longer than IdleTimeout to read long replies is not
// idle: the idle clock restarts once it has taken them.
func TestIdleCountsFromTheLastReplyTaken(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			// Two seconds: from the server's last write, the client reads
			// what is left, waits idle/4 (below) and sends its PING, all
			// within idle; with a second, a loaded machine had 750 ms for
			// what is not the wait.
			idle := 2 * time.Second
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			// Small socket buffers on both sides: the idle clock restarts
			// when the server's last write returns, and the client must
			// have read the replies and sent its PING within idle of it.
			// With the kernel's buffers (megabytes on loopback) it still
			// had megabytes to read then, which a loaded machine took
			// longer than idle to (300 ms then).
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, IdleTimeout: idle, WriteTimeout: 10 * time.Second,
				Listener: smallSendBuffers{ln}})
			value := strings.Repeat("x", 1<<20)
			require.NoError(t, ts.client(t).HSet(context.Background(), "big", "f", value).Err())
			r := ts.raw(t)
			require.NoError(t, r.nc.(*net.TCPConn).SetReadBuffer(16<<10))
			r.send(strings.Repeat("HGET big f\r\n", 16))
			<-time.After(2 * idle) // the scenario: replies waiting longer than IdleTimeout
			for range 16 {
				require.Equal(t, "$1048576", r.line())
				require.Equal(t, value, r.line())
			}
			// Still connected two of the event loop's looks for idle
			// clients (idle/8 apart) after its replies were taken.
			require.False(t, r.closedWithin(idle/4), "closed once its replies were taken")
			r.send("PING\r\n")
			assert.Equal(t, "+PONG", r.line())
		})
	}
}

// Stopping the server lets a client blocked on long replies take them all,
// and runs the commands it had sent after them.
func TestStopLetsABlockedClientFinish(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			tree := start(t, Config{})
			value := strings.Repeat("x", 1<<20)
			require.NoError(t, tree.client(t).HSet(context.Background(), "big", "f", value).Err())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			srv := New(Config{Registry: tree.root.Registry(), Events: tree.root.Events(), GoroutinePerClient: mode.goroutinePerClient})
			ctx, stop := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- srv.ServeListener(ctx, ln) }()
			r := (&testServer{root: tree.root, srv: srv, addr: ln.Addr().String()}).raw(t)
			r.send(strings.Repeat("HGET big f\r\n", 16) + "HSET big after v\r\n")
			require.Equal(t, "$1048576", r.line())
			stop() // while the server waits for the client to take the rest
			require.Equal(t, value, r.line())
			for i := range 15 {
				require.Equal(t, "$1048576", r.line(), "reply %d", i+2)
				require.Equal(t, value, r.line())
			}
			assert.Equal(t, ":1", r.line(), "HSET after the long replies")
			assert.True(t, r.closed())
			require.ErrorIs(t, <-served, context.Canceled)
			v, err := tree.client(t).HGet(context.Background(), "big", "after").Result()
			require.NoError(t, err)
			assert.Equal(t, "v", v)
		})
	}
}

// The commands a client sent before the stop run as they would have run
// before it: one that makes a key or deletes one included (they use their
// context, which the stop must not cancel under them while the registry
// and the buckets still serve).
func TestStopLetsInFlightCommandsCreateAndDelete(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			tree := start(t, Config{})
			ctx := context.Background()
			rc := tree.client(t)
			value := strings.Repeat("x", 1<<20)
			require.NoError(t, rc.HSet(ctx, "big", "f", value).Err())
			require.NoError(t, rc.HSet(ctx, "old", "f", "v").Err())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			srv := New(Config{Registry: tree.root.Registry(), Events: tree.root.Events(), GoroutinePerClient: mode.goroutinePerClient})
			sctx, stop := context.WithCancel(ctx)
			served := make(chan error, 1)
			go func() { served <- srv.ServeListener(sctx, ln) }()
			r := (&testServer{root: tree.root, srv: srv, addr: ln.Addr().String()}).raw(t)
			// Sent before the stop, held up behind replies the client has
			// not read yet.
			r.send(strings.Repeat("HGET big f\r\n", 16) + "HSET new f v\r\nDEL old\r\n")
			require.Equal(t, "$1048576", r.line())
			stop()
			require.Equal(t, value, r.line())
			for range 15 {
				require.Equal(t, "$1048576", r.line())
				require.Equal(t, value, r.line())
			}
			assert.Equal(t, ":1", r.line(), "HSET of a new key, sent before the stop")
			assert.Equal(t, ":1", r.line(), "DEL, sent before the stop")
			assert.True(t, r.closed())
			require.ErrorIs(t, <-served, context.Canceled)
			assert.Equal(t, "v", rc.HGet(ctx, "new", "f").Val())
			assert.EqualValues(t, 0, rc.Exists(ctx, "old").Val())
		})
	}
}

// serveOn serves a second RESP listener of tree's, on reg (a wrapper of
// tree's registry), for the test.
func serveOn(t *testing.T, tree *testServer, reg Registry, goroutinePerClient bool) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(Config{Registry: reg, Events: tree.root.Events(), GoroutinePerClient: goroutinePerClient})
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() { stop(); <-served })
	return &testServer{root: tree.root, srv: srv, addr: ln.Addr().String()}
}

// heldFlush is a registry whose FlushAllNoWait waits, once it has begun,
// for a send on release.
type heldFlush struct {
	Registry
	begun   chan struct{}
	release chan struct{}
}

func (h heldFlush) FlushAllNoWait(ctx context.Context) (func(context.Context) error, error) {
	h.begun <- struct{}{}
	<-h.release
	return h.Registry.FlushAllNoWait(ctx)
}

// A FLUSHALL waits for every bucket to end (half a second for 100,000):
// the other clients are served meanwhile, whether it is sent alone, in a
// pipeline, or in a transaction (EXEC runs it, as Redis runs a
// transaction, with the others waiting).
func TestFlushAllHoldsNoOtherClientUp(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			tree := start(t, Config{})
			held := heldFlush{Registry: tree.root.Registry(), begun: make(chan struct{}), release: make(chan struct{})}
			ts := serveOn(t, tree, held, mode.goroutinePerClient)

			flusher, other := ts.raw(t), ts.raw(t)
			other.send("HSET kept f v\r\n")
			other.expect(":1")
			for _, cmds := range []struct {
				send    string
				replies []string
			}{
				{"FLUSHALL\r\n", []string{"+OK"}},
				{"PING\r\nFLUSHDB ASYNC\r\nPING\r\n", []string{"+PONG", "+OK", "+PONG"}},
			} {
				flusher.send(cmds.send)
				<-held.begun
				other.send("PING\r\nHGET kept f\r\n")
				other.expect("+PONG", "$1", "v") // while the flush waits
				held.release <- struct{}{}
				flusher.expect(cmds.replies...)
				other.send("HSET kept f v\r\n")
				other.expect(":1")
			}
			wantLoopClients(t, ts, 1) // the other client: the flusher has a goroutine of its own

			tx := ts.raw(t)
			tx.send("MULTI\r\nFLUSHALL\r\nEXEC\r\n")
			<-held.begun
			held.release <- struct{}{}
			tx.expect("+OK", "+QUEUED", "*1", "+OK")
			other.send("EXISTS kept\r\n")
			other.expect(":0")
		})
	}
}

// heldForget is a registry whose FlushAllNoWait's wait, once it has begun
// (the flush done, the buckets not yet forgotten), waits until release is
// closed.
type heldForget struct {
	Registry
	begun   chan struct{}
	release chan struct{}
}

func (h heldForget) FlushAllNoWait(ctx context.Context) (func(context.Context) error, error) {
	wait, err := h.Registry.FlushAllNoWait(ctx)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		h.begun <- struct{}{}
		<-h.release
		return wait(ctx)
	}, nil
}

// While a FLUSHALL waits for the registry to forget its buckets (half a
// second for 100,000), the flush is done and transactions run: an EXEC,
// which takes the transactions' lock alone, does not wait for it, nor,
// behind the EXEC, does every other client (a waiting writer holds new
// readers back: holding the read lock through the wait stalled them all).
func TestTransactionsRunWhileFlushAllWaitsForTheBuckets(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			tree := start(t, Config{})
			held := heldForget{Registry: tree.root.Registry(), begun: make(chan struct{}), release: make(chan struct{})}
			ts := serveOn(t, tree, held, mode.goroutinePerClient)
			release := sync.OnceFunc(func() { close(held.release) })
			t.Cleanup(release) // before the server's stop, on a failure

			flusher, tx, other := ts.raw(t), ts.raw(t), ts.raw(t)
			flusher.send("HSET gone f v\r\n")
			flusher.expect(":1")
			flusher.send("FLUSHALL\r\n")
			<-held.begun
			tx.send("MULTI\r\nHSET new f v\r\nEXISTS gone\r\nEXEC\r\n")
			tx.expect("+OK", "+QUEUED", "+QUEUED", "*2", ":1", ":0")
			other.send("PING\r\nHGET new f\r\n")
			other.expect("+PONG", "$1", "v")
			release()
			flusher.expect("+OK")
			flusher.send("EXISTS new gone\r\n")
			flusher.expect(":1")
		})
	}
}

// The commands the README says leave the event loop do: each moves its
// client to a goroutine of its own (a subscription, MONITOR, SAVE,
// SHUTDOWN: ABORT, which stops nothing, shows it), or may
// run for long (FLUSHALL, FLUSHDB, MEMORY, WAITAOF), whatever it answers;
// a command that takes long otherwise, HGETALL, stays on the loop.
func TestCommandsThatLeaveTheLoop(t *testing.T) {
	if runtime.GOOS != "linux" || goroutinePerClient {
		t.Skip("the event loop is Linux's, and on")
	}
	for _, tc := range []struct {
		cmd   string
		leave bool
	}{
		{"SUBSCRIBE kv:created", true}, {"PSUBSCRIBE kv:*", true}, {"MONITOR", true}, {"SAVE", true},
		{"SHUTDOWN ABORT", true}, {"FLUSHALL", true}, {"FLUSHDB", true}, {"MEMORY USAGE h", true}, {"WAITAOF 0 0 0", true},
		{"HGETALL h", false},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			ts := start(t, Config{})
			r := ts.raw(t)
			r.send("PING\r\n")
			require.Equal(t, "+PONG", r.line())
			wantLoopClients(t, ts, 1)
			r.send(tc.cmd + "\r\n")
			r.line() // its answer, or the first line of it
			if tc.leave {
				wantLoopClients(t, ts, 0)
			} else {
				assert.Equal(t, 1, loopClients(ts))
			}
		})
	}
}
