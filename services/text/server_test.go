package text

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"
	"go.uber.org/goleak"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/faultnet"
	"github.com/kvproject/kv/services"
	"github.com/kvproject/kv/services/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a kv tree with a text server on 127.0.0.1:0.
type fixture struct {
	root *services.Root
	srv  *Server
	addr string
}

// tree serves a new kv tree until the end of the test.
func tree(t testing.TB) *services.Root {
	t.Helper()
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	t.Cleanup(func() { cancel(); <-errc })
	return root
}

// start serves a new tree and a server for cfg on it.
func start(t testing.TB, cfg Config) *fixture {
	t.Helper()
	return serve(t, tree(t), cfg)
}

// serve runs a server for cfg (Registry defaults to root's) on
// 127.0.0.1:0 until the end of the test, when it must stop cleanly.
func serve(t testing.TB, root *services.Root, cfg Config) *fixture {
	t.Helper()
	f, stop := serveStoppable(t, root, cfg)
	t.Cleanup(func() { assert.ErrorIs(t, stop(), context.Canceled) })
	return f
}

// client is one raw TCP connection.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func (f *fixture) dial(t *testing.T) *client {
	t.Helper()
	nc, err := net.Dial("tcp", f.addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *client) send(s string) {
	c.t.Helper()
	_, err := io.WriteString(c.nc, s)
	require.NoError(c.t, err)
}

// expect reads exactly len(want) bytes and compares them byte for byte.
func (c *client) expect(want string) {
	c.t.Helper()
	got := make([]byte, len(want))
	_, err := io.ReadFull(c.r, got)
	require.NoError(c.t, err, "waiting for %q", want)
	require.Equal(c.t, want, string(got))
}

// roundTrip sends a line and expects the exact reply.
func (c *client) roundTrip(line, want string) {
	c.t.Helper()
	c.send(line)
	c.expect(want)
}

// expectClosed reads until the server closes the connection; nothing more
// may arrive.
func (c *client) expectClosed() {
	c.t.Helper()
	rest, err := io.ReadAll(c.r)
	require.NoError(c.t, err)
	require.Empty(c.t, string(rest))
}

// The guide's "server interaction" section, byte for byte.
var guideExchange = []struct{ send, reply string }{
	{"UNKNOWN shopping\r\n", "UNKNOWN COMMAND\r\n"},
	{"GET shopping milk\r\n", "NOT FOUND\r\n"},
	{"CREATE shopping\r\n", "OK\r\n"},
	{"PUT shopping eggs 3\r\n", "OK\r\n"},
	{"GET shopping eggs\r\n", "3\r\nOK\r\n"},
	{"DELETE shopping eggs\r\n", "OK\r\n"},
	{"GET shopping eggs\r\n", "\r\nOK\r\n"},
}

func TestGuideExchange(t *testing.T) {
	f := start(t, Config{})
	c := f.dial(t)
	for _, step := range guideExchange {
		c.roundTrip(step.send, step.reply)
	}
}

func TestGuideExchangePipelined(t *testing.T) {
	f := start(t, Config{})
	c := f.dial(t)
	var req, want strings.Builder
	for _, step := range guideExchange {
		req.WriteString(step.send)
		want.WriteString(step.reply)
	}
	c.send(req.String())
	c.expect(want.String())
}

func TestParserCasesOverTheWire(t *testing.T) {
	f := start(t, Config{})
	c := f.dial(t)
	c.roundTrip("   CREATE    shopping   \r\n", "OK\r\n")
	c.roundTrip("PUT\tshopping  milk \t 1\n", "OK\r\n") // bare "\n" ends a line too
	c.roundTrip("GET shopping milk\r\n", "1\r\nOK\r\n")
	c.roundTrip("get shopping milk\r\n", "UNKNOWN COMMAND\r\n")
	c.roundTrip("GET shopping\r\n", "UNKNOWN COMMAND\r\n")
	c.roundTrip("PUT shopping milk 1 2\r\n", "UNKNOWN COMMAND\r\n")
	c.roundTrip("\r\n", "UNKNOWN COMMAND\r\n")
	c.roundTrip("  \t \r\n", "UNKNOWN COMMAND\r\n")
	c.roundTrip("DELETE shopping nothing\r\n", "OK\r\n") // absent key: still OK
	c.roundTrip("PUT nowhere k v\r\n", "NOT FOUND\r\n")
	c.roundTrip("DELETE nowhere k\r\n", "NOT FOUND\r\n")
	c.roundTrip("CREATE shopping\r\n", "OK\r\n") // idempotent
	c.roundTrip("GET shopping milk\r\n", "1\r\nOK\r\n")
	c.roundTrip("AUTH pw\r\n", "ERROR\r\n") // no password configured
}

func TestOddBytes(t *testing.T) {
	f := start(t, Config{})
	c := f.dial(t)
	c.roundTrip("CREATE b\xff\x00\r\n", "OK\r\n")
	c.roundTrip("PUT b\xff\x00 k\x01 v\xfe\r\n", "OK\r\n")
	c.roundTrip("GET b\xff\x00 k\x01\r\n", "v\xfe\r\nOK\r\n")
	_, ok := f.root.Registry().Lookup("b\xff\x00")
	require.True(t, ok)
}

func TestErrorReplies(t *testing.T) {
	f := start(t, Config{})
	c := f.dial(t)
	// A bucket name longer than the registry allows.
	c.roundTrip("CREATE "+strings.Repeat("n", 4097)+"\r\n", "ERROR\r\n")
	// A value stored by another front end that one line cannot carry.
	b, err := f.root.Registry().Create(context.Background(), "b")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("two\r\nlines")))
	c.roundTrip("GET b k\r\n", "ERROR\r\n")
	c.roundTrip("PUT b k fine\r\n", "OK\r\n") // still usable
	c.roundTrip("GET b k\r\n", "fine\r\nOK\r\n")
}

func TestLongLine(t *testing.T) {
	f := start(t, Config{MaxLineBytes: 10000})
	c := f.dial(t)
	c.roundTrip("CREATE b\r\n", "OK\r\n")

	// Longer than the 4 KiB read buffer but within the limit: gathered.
	long := strings.Repeat("x", 9000)
	c.roundTrip("PUT b k "+long+"\r\n", "OK\r\n")
	c.roundTrip("GET b k\r\n", long+"\r\nOK\r\n")

	// Exactly at the limit (the "\r" counts, the "\n" does not), then one past.
	at := "PUT b k2 " + strings.Repeat("y", 10000-len("PUT b k2 ")-1) + "\r"
	require.Len(t, at, 10000)
	c.roundTrip(at+"\n", "OK\r\n")
	c.roundTrip("PUT b k3 "+strings.Repeat("z", 10000-len("PUT b k3 "))+"\r\n", "ERROR\r\n")

	// Far past it: ERROR, the line is discarded up to its end, and the
	// connection carries on with the next line.
	c.send("PUT b k4 " + strings.Repeat("w", 100000) + "\r\nGET b k\r\n")
	c.expect("ERROR\r\n" + long + "\r\nOK\r\n")
	c.roundTrip("GET b k4\r\n", "\r\nOK\r\n")
}

func TestLongLineSmallLimit(t *testing.T) {
	f := start(t, Config{MaxLineBytes: 16})
	c := f.dial(t)
	c.roundTrip("CREATE abcdefgh\r\n", "OK\r\n") // 16 bytes with the "\r"
	c.roundTrip("CREATE abcdefghi\r\n", "ERROR\r\n")
	c.roundTrip("GET abcdefgh k\r\n", "\r\nOK\r\n")
}

func TestAuth(t *testing.T) {
	f := start(t, Config{Password: "s3cret"})

	c := f.dial(t)
	c.roundTrip("CREATE b\r\n", "ERROR\r\n")
	c.roundTrip("UNKNOWN b\r\n", "ERROR\r\n")
	c.roundTrip("\r\n", "ERROR\r\n")
	c.roundTrip("AUTH\r\n", "ERROR\r\n")
	c.roundTrip("AUTH s3cret\r\n", "OK\r\n")
	c.roundTrip("CREATE b\r\n", "OK\r\n")
	c.roundTrip("UNKNOWN b\r\n", "UNKNOWN COMMAND\r\n")

	wrong := f.dial(t)
	wrong.roundTrip("AUTH s3cre\r\n", "ERROR\r\n")
	wrong.expectClosed()

	wrongAfter := f.dial(t)
	wrongAfter.roundTrip("AUTH s3cret\r\n", "OK\r\n")
	wrongAfter.roundTrip("AUTH nope\r\n", "ERROR\r\n")
	wrongAfter.expectClosed()

	c.roundTrip("GET b k\r\n", "\r\nOK\r\n") // untouched by the others
	_, ok := f.root.Registry().Lookup("b")
	require.True(t, ok)
}

func TestConfigErrorsDoNotRestart(t *testing.T) {
	for _, cfg := range []Config{
		{}, // no registry
		{Registry: fakeRegistry{}, Password: "two words"}, // AUTH cannot carry it
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		err = New(cfg).ServeListener(context.Background(), ln)
		require.ErrorIs(t, err, suture.ErrDoNotRestart)
		require.ErrorIs(t, New(cfg).Serve(context.Background()), suture.ErrDoNotRestart)
	}
}

func TestServeListensOnAddr(t *testing.T) {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	rootErr := root.ServeBackground(ctx)
	srv := New(Config{Addr: "127.0.0.1:0", Registry: root.Registry()})
	assert.Equal(t, "kv text server", srv.String())
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ctx) }()
	require.Eventually(t, func() bool { return srv.Addr() != nil }, 10*time.Second, time.Millisecond)

	f := &fixture{root: root, srv: srv, addr: srv.Addr().String()}
	f.dial(t).roundTrip("CREATE b\r\n", "OK\r\n")

	// A second server cannot take the same address: an error to retry.
	busy := New(Config{Addr: srv.Addr().String(), Registry: root.Registry()})
	err := busy.Serve(ctx)
	require.Error(t, err)
	require.NotErrorIs(t, err, suture.ErrDoNotRestart)

	cancel()
	require.ErrorIs(t, <-srvErr, context.Canceled)
	require.Nil(t, srv.Addr())
	<-rootErr
}

func TestManyConnections(t *testing.T) {
	f := start(t, Config{})
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", f.addr)
			if !assert.NoError(t, err) {
				return
			}
			defer nc.Close()
			r := bufio.NewReader(nc)
			b := fmt.Sprintf("b%d", i)
			for j, step := range []struct{ send, reply string }{
				{"CREATE " + b, "OK"},
				{"CREATE shared", "OK"},
				{fmt.Sprintf("PUT %s k %d", b, i), "OK"},
				{fmt.Sprintf("PUT shared k%d %d", i, i), "OK"},
				{"GET " + b + " k", fmt.Sprint(i)},
				{"", "OK"},
			} {
				if step.send != "" {
					_, err := fmt.Fprintf(nc, "%s\r\n", step.send)
					if !assert.NoError(t, err) {
						return
					}
				}
				line, err := r.ReadString('\n')
				if !assert.NoError(t, err, "step %d", j) {
					return
				}
				assert.Equal(t, step.reply+"\r\n", line)
			}
		}()
	}
	wg.Wait()
	shared, ok := f.root.Registry().Lookup("shared")
	require.True(t, ok)
	n2, err := shared.Len()
	require.NoError(t, err)
	require.Equal(t, n, n2)
}

// panicky is a registry whose lookup of "boom" panics: a stand-in for a
// bug that crashes one connection's goroutine.
type panicky struct{ Registry }

func (p panicky) LookupCurrent(ctx context.Context, name string) (*bucket.Bucket, bool, error) {
	if name == "boom" {
		panic("lookup exploded")
	}
	return p.Registry.LookupCurrent(ctx, name)
}

type fakeRegistry struct{ Registry }

func TestBadConnectionDoesNotTouchOthers(t *testing.T) {
	root := tree(t)
	f := serve(t, root, Config{Registry: panicky{root.Registry()}})

	good := f.dial(t)
	good.roundTrip("CREATE b\r\n", "OK\r\n")
	good.roundTrip("PUT b k 1\r\n", "OK\r\n")

	// One connection crashes its goroutine: it is closed, without a reply.
	bad := f.dial(t)
	bad.send("GET boom k\r\n")
	bad.expectClosed()

	// One sends half a line and vanishes; one sends garbage and a huge line.
	half := f.dial(t)
	half.send("PUT b k ")
	require.NoError(t, half.nc.Close())
	noisy := f.dial(t)
	noisy.roundTrip("\x00\x01\x02\r\n", "UNKNOWN COMMAND\r\n")
	noisy.roundTrip(strings.Repeat("A", DefaultMaxLineBytes+1)+"\r\n", "ERROR\r\n")

	// The good connection never noticed.
	good.roundTrip("GET b k\r\n", "1\r\nOK\r\n")
	good.roundTrip("PUT b k 2\r\n", "OK\r\n")
	f.dial(t).roundTrip("GET b k\r\n", "2\r\nOK\r\n")
}

func TestMaxConns(t *testing.T) {
	f := start(t, Config{MaxConns: 1})
	first := f.dial(t)
	first.roundTrip("CREATE b\r\n", "OK\r\n")
	second := f.dial(t)
	second.expect("ERROR\r\n")
	second.expectClosed()
	first.roundTrip("GET b k\r\n", "\r\nOK\r\n")
	require.NoError(t, first.nc.Close())
	// The slot frees once the first connection's goroutine has ended.
	require.Eventually(t, func() bool {
		nc, err := net.Dial("tcp", f.addr)
		if err != nil {
			return false
		}
		defer nc.Close()
		if _, err := io.WriteString(nc, "GET b k\r\n"); err != nil {
			return false
		}
		// A refused connection gets ERROR, a served one the empty value.
		line, err := bufio.NewReader(nc).ReadString('\n')
		return err == nil && line == "\r\n"
	}, 10*time.Second, 10*time.Millisecond)
}

// A connection refused at MaxConns that had already sent lines gets ERROR
// and then the end of the stream, not a reset (which may throw the ERROR
// away before the client reads it).
func TestMaxConnsRefusalEndsCleanly(t *testing.T) {
	f := start(t, Config{MaxConns: 1})
	f.dial(t).roundTrip("CREATE b\r\n", "OK\r\n")
	for range 20 {
		nc, err := net.Dial("tcp", f.addr)
		require.NoError(t, err)
		_, err = io.WriteString(nc, strings.Repeat("GET b k\r\n", 100))
		require.NoError(t, err)
		require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
		got, err := io.ReadAll(nc)
		nc.Close()
		require.NoError(t, err, "the refused connection ends with a FIN, not a reset")
		require.Equal(t, "ERROR\r\n", string(got))
	}
}

// A refused connection is not a client: while the server still drains
// what it had sent, it holds none of the MaxConns slots, so a client that
// comes once a served one has left is served.
func TestRefusedConnectionsHoldNoSlot(t *testing.T) {
	was := refuseDrainFor
	refuseDrainFor = time.Minute // the refused connection below stays in its drain
	t.Cleanup(func() { refuseDrainFor = was })
	root := tree(t)
	m := metrics.New(metrics.Config{})
	f := serve(t, root, Config{MaxConns: 1, Observer: m})
	connected := func(n int) func() bool {
		return func() bool {
			return testutil.GatherAndCompare(m.Prometheus(), strings.NewReader(fmt.Sprintf(`
# HELP kv_connected_clients Client connections open now, by protocol.
# TYPE kv_connected_clients gauge
kv_connected_clients{protocol="text"} %d
`, n)), "kv_connected_clients") == nil
		}
	}

	first := f.dial(t)
	first.roundTrip("CREATE b\r\n", "OK\r\n")
	refused := f.dial(t) // keeps its end open: the server drains it
	refused.expect("ERROR\r\n")
	require.NoError(t, first.nc.Close())
	require.Eventually(t, connected(0), 10*time.Second, time.Millisecond)

	// One slot, none in use: served, not refused.
	f.dial(t).roundTrip("GET b k\r\n", "\r\nOK\r\n")
}

// The idle timeout is a second: the client's first line must come within
// it of its connection (a stall of the test's goroutine, on a loaded
// machine, could pass 50 ms).
func TestIdleTimeout(t *testing.T) {
	f := start(t, Config{IdleTimeout: time.Second})
	c := f.dial(t)
	c.roundTrip("CREATE b\r\n", "OK\r\n")
	c.expectClosed() // blocks until the server gives up on the silent client
}

func TestStopClosesConnections(t *testing.T) {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	rootErr := root.ServeBackground(ctx)
	srvCtx, stop := context.WithCancel(ctx)
	srv := New(Config{Registry: root.Registry()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.ServeListener(srvCtx, ln) }()

	f := &fixture{root: root, srv: srv, addr: ln.Addr().String()}
	conns := []*client{f.dial(t), f.dial(t), f.dial(t)}
	for _, c := range conns {
		c.roundTrip("CREATE b\r\n", "OK\r\n")
	}
	stop()
	require.ErrorIs(t, <-srvErr, context.Canceled) // returns after every goroutine ended
	for _, c := range conns {
		c.expectClosed()
	}
	_, err = net.Dial("tcp", f.addr)
	require.Error(t, err)
	cancel()
	<-rootErr
}

func TestMetrics(t *testing.T) {
	root := tree(t)
	m := metrics.New(metrics.Config{Tree: root.Registry(), Events: root.Events()})
	f := serve(t, root, Config{Observer: m, MaxLineBytes: 32})

	c := f.dial(t)
	for _, step := range guideExchange {
		c.roundTrip(step.send, step.reply)
	}
	c.roundTrip(strings.Repeat("x", 40)+"\r\n", "ERROR\r\n")
	want := `
# HELP kv_commands_total Commands served, by protocol, command and result (ok or error).
# TYPE kv_commands_total counter
kv_commands_total{command="create",protocol="text",result="error"} 0
kv_commands_total{command="create",protocol="text",result="ok"} 1
kv_commands_total{command="delete",protocol="text",result="error"} 0
kv_commands_total{command="delete",protocol="text",result="ok"} 1
kv_commands_total{command="get",protocol="text",result="error"} 1
kv_commands_total{command="get",protocol="text",result="ok"} 2
kv_commands_total{command="put",protocol="text",result="error"} 0
kv_commands_total{command="put",protocol="text",result="ok"} 1
kv_commands_total{command="too_long",protocol="text",result="error"} 1
kv_commands_total{command="too_long",protocol="text",result="ok"} 0
kv_commands_total{command="unknown",protocol="text",result="error"} 1
kv_commands_total{command="unknown",protocol="text",result="ok"} 0
# HELP kv_connected_clients Client connections open now, by protocol.
# TYPE kv_connected_clients gauge
kv_connected_clients{protocol="text"} 1
`
	require.NoError(t, testutil.GatherAndCompare(m.Prometheus(), strings.NewReader(want),
		"kv_commands_total", "kv_connected_clients"))
	require.NoError(t, c.nc.Close())
	require.Eventually(t, func() bool {
		return testutil.GatherAndCompare(m.Prometheus(), strings.NewReader(`
# HELP kv_connected_clients Client connections open now, by protocol.
# TYPE kv_connected_clients gauge
kv_connected_clients{protocol="text"} 0
`), "kv_connected_clients") == nil
	}, 10*time.Second, time.Millisecond)
}

// breakingListener fails its Accept once broken is closed.
type breakingListener struct {
	net.Listener
	broken chan struct{}
}

// ReplaceableByPlain lets a restart listen plain in its stead.
func (l *breakingListener) ReplaceableByPlain() {}

func (l *breakingListener) Accept() (net.Conn, error) {
	<-l.broken
	return nil, fmt.Errorf("listener broke")
}

func TestServeTakesListenerThenListensAgain(t *testing.T) {
	root := tree(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	bl := &breakingListener{Listener: ln, broken: make(chan struct{})}
	srv := New(Config{Listener: bl, Registry: root.Registry()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	first := make(chan error, 1)
	go func() { first <- srv.Serve(ctx) }()
	require.Eventually(t, func() bool { return srv.Addr() != nil }, 10*time.Second, time.Millisecond)
	require.Equal(t, ln.Addr().String(), srv.Addr().String())
	close(bl.broken)
	err = <-first
	require.ErrorContains(t, err, "listener broke")
	require.NotErrorIs(t, err, suture.ErrDoNotRestart) // suture serves it again

	second := make(chan error, 1)
	go func() { second <- srv.Serve(ctx) }()
	require.Eventually(t, func() bool { return srv.Addr() != nil }, 10*time.Second, time.Millisecond)
	require.Equal(t, ln.Addr().String(), srv.Addr().String(), "the same address again")
	f := &fixture{root: root, srv: srv, addr: srv.Addr().String()}
	f.dial(t).roundTrip("CREATE b\r\n", "OK\r\n")
	cancel()
	require.ErrorIs(t, <-second, context.Canceled)
}

// A reply leaves before the server waits for more: a partial next line
// does not hold it (its client may wait for the reply before it sends the
// rest).
func TestReplyIsNotHeldBehindAPartialLine(t *testing.T) {
	f := start(t, Config{})
	nc, err := net.Dial("tcp", f.addr)
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.Write([]byte("CREATE shopping\r\nGET shop"))
	require.NoError(t, err)
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	rd := bufio.NewReader(nc)
	line, err := rd.ReadString('\n')
	require.NoError(t, err, "no reply to CREATE while the next line is incomplete")
	require.Equal(t, "OK\r\n", line)
	_, err = nc.Write([]byte("ping milk\r\n"))
	require.NoError(t, err)
	line, err = rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "\r\n", line) // GET shopping milk: no value
}

// A command whose bucket ends between its lookup and its use (a crash)
// follows the name: with a store, to the same pairs, loaded back; it does
// not answer NOT FOUND for a bucket that exists.
func TestCommandFollowsABucketThatEndedUnderIt(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{Fsync: services.FsyncAlways})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, data.Close()) })
	root := services.New(services.Config{DataDir: data})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	t.Cleanup(func() { cancel(); <-errc })

	var crashes atomic.Int32
	f := serve(t, root, Config{testHookLookup: func(b *bucket.Bucket) {
		if crashes.Add(-1) >= 0 {
			b.Stop(errors.New("crashed under the command"))
		}
	}})
	c := f.dial(t)
	c.send("CREATE shopping\r\nPUT shopping milk 1\r\n")
	c.expect("OK\r\nOK\r\n")
	for _, step := range []struct{ send, reply string }{
		{"GET shopping milk\r\n", "1\r\nOK\r\n"},
		{"PUT shopping eggs 3\r\n", "OK\r\n"},
		{"DELETE shopping milk\r\n", "OK\r\n"},
		{"GET shopping eggs\r\n", "3\r\nOK\r\n"},
	} {
		crashes.Store(1)
		c.send(step.send)
		c.expect(step.reply)
	}
}

// serveStoppable runs a server for cfg (Registry defaults to root's) on
// 127.0.0.1:0 until stop is called, at the latest when the test ends; stop
// returns ServeListener's error.
func serveStoppable(t testing.TB, root *services.Root, cfg Config) (f *fixture, stop func() error) {
	t.Helper()
	if cfg.Registry == nil {
		cfg.Registry = root.Registry()
	}
	srv := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.ServeListener(ctx, ln) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() { cancel(); result = <-srvErr })
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return &fixture{root: root, srv: srv, addr: ln.Addr().String()}, stop
}

// stopWithLinesInFlight serves a tree, creates bucket b, sends lines
// (PUTs to b, say) and stops the server while the first of them is in
// flight. It returns the tree and all the client read until the server
// closed the connection, which must end cleanly (a FIN, not a reset).
func stopWithLinesInFlight(t *testing.T, lines string) (*services.Root, string) {
	t.Helper()
	root := tree(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var block atomic.Bool
	f, stop := serveStoppable(t, root, Config{testHookLookup: func(*bucket.Bucket) {
		if block.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
	}})
	c := f.dial(t)
	c.roundTrip("CREATE b\r\n", "OK\r\n")
	block.Store(true)
	c.send(lines)
	<-entered // the first line is in flight

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	require.Eventually(t, func() bool { // the listener is closed: the stop has begun
		nc, err := net.Dial("tcp", f.addr)
		if err == nil {
			nc.Close()
		}
		return err != nil
	}, 10*time.Second, time.Millisecond)
	close(release)
	require.ErrorIs(t, <-stopped, context.Canceled)

	require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	got, err := io.ReadAll(c.r)
	require.NoError(t, err, "the connection ends with a FIN, not a reset")
	return root, string(got)
}

// A stop lets a client's command in flight, and the lines it had already
// sent, finish and be answered, before the connection closes.
func TestStopAnswersTheCommandsInFlight(t *testing.T) {
	// One write: the three lines reach the server's buffer together.
	root, got := stopWithLinesInFlight(t, "PUT b k1 v\r\nCREATE c\r\nPUT b k2 v\r\n")
	require.Equal(t, "OK\r\nOK\r\nOK\r\n", got, "each line sent before the stop is carried out and answered")
	b, ok := root.Registry().Lookup("b")
	require.True(t, ok)
	for _, k := range []string{"k1", "k2"} {
		v, err := b.Get(k)
		require.NoError(t, err)
		require.Equal(t, "v", string(v))
	}
	_, ok = root.Registry().Lookup("c")
	require.True(t, ok)
}

// A command still running after ShutdownTimeout sees its context
// cancelled and its connection closed: the stop is bounded.
func TestStopGivesUpAfterShutdownTimeout(t *testing.T) {
	root := tree(t)
	entered := make(chan struct{})
	var once sync.Once
	reg := stuckRegistry{Registry: root.Registry(), entered: func() { once.Do(func() { close(entered) }) }}
	srv := New(Config{Registry: reg, ShutdownTimeout: 50 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.ServeListener(ctx, ln) }()
	f := &fixture{root: root, srv: srv, addr: ln.Addr().String()}
	c := f.dial(t)
	c.send("CREATE b\r\n")
	<-entered
	cancel()
	require.ErrorIs(t, <-srvErr, context.Canceled)
	require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadAll(c.r) // closed, with or without its ERROR reply
	require.NoError(t, err)
}

// stuckRegistry's Create waits for its context to end.
type stuckRegistry struct {
	Registry
	entered func()
}

func (r stuckRegistry) Create(ctx context.Context, name string) (*bucket.Bucket, error) {
	r.entered()
	<-ctx.Done()
	return nil, ctx.Err()
}

// A web page can make its visitor's browser send an HTTP request to the
// line protocol's port (a "no-cors" POST with a text/plain body); the
// connection is closed at its request line or Host header, so the body's
// lines never run. Redis does the same.
func TestHTTPRequestClosesTheConnection(t *testing.T) {
	for _, first := range []string{
		"POST / HTTP/1.1\r\n",
		"post /x HTTP/1.0\r\n",
		"GET / HTTP/1.1\r\nHost: 127.0.0.1:4040\r\n",
		"  HOST:\t127.0.0.1\r\n",
	} {
		t.Run(strings.TrimSpace(first), func(t *testing.T) {
			f := start(t, Config{})
			c := f.dial(t)
			c.send(first + "Content-Type: text/plain\r\n\r\nCREATE pwned\r\nPUT pwned k v\r\n")
			require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
			got, err := io.ReadAll(c.r)
			require.NoError(t, err)
			require.NotContains(t, string(got), "OK")
			_, created := f.root.Registry().Lookup("pwned")
			require.False(t, created, "the request's body ran as commands")
		})
	}
	// Words that only start like those are commands as usual.
	f := start(t, Config{})
	c := f.dial(t)
	c.roundTrip("POSTS a b\r\n", "UNKNOWN COMMAND\r\n")
	c.roundTrip("CREATE Host:\r\n", "OK\r\n")
}

// panickyCreate is a registry whose Create of "boom" panics: a stand-in
// for a bug that crashes a command while it holds the registry's TxLock.
type panickyCreate struct{ Registry }

func (p panickyCreate) Create(ctx context.Context, name string) (*bucket.Bucket, error) {
	if name == "boom" {
		panic("create exploded")
	}
	return p.Registry.Create(ctx, name)
}

// A command that crashes under the TxLock ends its connection only: the
// lock is released, so that a Redis EXEC, which takes it alone, does not
// wait for ever for a connection that is gone (and every client of every
// front end behind it).
func TestCrashedCommandReleasesTxLock(t *testing.T) {
	root := tree(t)
	f := serve(t, root, Config{Registry: panickyCreate{root.Registry()}})
	bad := f.dial(t)
	bad.send("CREATE boom\r\n")
	bad.expectClosed()
	tx := root.Registry().TxLock()
	require.Eventually(t, func() bool {
		if !tx.TryLock() {
			return false
		}
		tx.Unlock()
		return true
	}, 10*time.Second, 10*time.Millisecond, "the crashed command still holds the TxLock")
	f.dial(t).roundTrip("CREATE b\r\n", "OK\r\n")
}

// A wrong password closes the connection after its ERROR with the end of
// the stream, not a reset, even when the client had sent more lines behind
// AUTH than the server had read: a socket closed with unread data makes
// the kernel reset the connection, and the reset may throw the ERROR away
// before the client reads it.
func TestWrongPasswordEndsCleanly(t *testing.T) {
	f := start(t, Config{Password: "pw"})
	for range 5 {
		c := f.dial(t)
		c.send("AUTH nope\r\n" + strings.Repeat("GET b k\r\n", 2000))
		require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
		got, err := io.ReadAll(c.r)
		require.NoError(t, err, "the connection ends with a FIN, not a reset")
		require.Equal(t, "ERROR\r\n", string(got))
	}
}

// A stop answers the lines a pipelining client had sent and the server
// had read, then ends the stream with a FIN, not a reset, even though
// more lines wait unread in the socket: each acknowledged PUT is stored,
// and its OK reaches the client.
func TestStopEndsCleanlyBehindUnreadLines(t *testing.T) {
	var req strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&req, "PUT b k%d v\r\n", i)
	}
	root, got := stopWithLinesInFlight(t, req.String()) // far more than the server reads at a time
	n := strings.Count(got, "OK\r\n")
	require.Equal(t, strings.Repeat("OK\r\n", n), got)
	require.Positive(t, n)
	b, ok := root.Registry().Lookup("b")
	require.True(t, ok)
	stored, err := b.Len()
	require.NoError(t, err)
	require.Equal(t, n, stored, "each PUT acknowledged, and only those, is stored")
}

// Tokens split as the guide's String.split/1 splits them: on Unicode white
// space, but not on the non-breaking kinds (U+00A0, U+2007, U+202F), which
// French text puts inside values ("10 €").
func TestNonBreakingSpaceIsPartOfAToken(t *testing.T) {
	f := start(t, Config{})
	c := f.dial(t)
	c.roundTrip("CREATE b\r\n", "OK\r\n")
	c.roundTrip("PUT b prix 10\u00a0\u20ac\r\n", "OK\r\n")
	c.roundTrip("GET b prix\r\n", "10\u00a0\u20ac\r\nOK\r\n")
	// Not PUT b k x: a key holding a non-breaking space and no value.
	c.roundTrip("PUT b k\u00a0x\r\n", "UNKNOWN COMMAND\r\n")
	c.roundTrip("GET b k\r\n", "\r\nOK\r\n")
}

// Running out of file descriptors passes: the server waits and accepts
// again, as net/http does, and its clients carry on.
func TestOutOfDescriptorsKeepsTheClients(t *testing.T) {
	root := tree(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	xl := &faultnet.Exhausted{Listener: ln}
	srv := New(Config{Registry: root.Registry()})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(ctx, xl) }()
	defer func() {
		cancel()
		require.ErrorIs(t, <-served, context.Canceled)
	}()
	f := &fixture{root: root, srv: srv, addr: ln.Addr().String()}
	first := f.dial(t)
	first.roundTrip("CREATE b\r\n", "OK\r\n")

	xl.Fail.Store(3)
	late := f.dial(t) // accepted once the descriptors are back
	late.roundTrip("PUT b k v\r\n", "OK\r\n")
	first.roundTrip("GET b k\r\n", "v\r\nOK\r\n")
	select {
	case err := <-served:
		t.Fatalf("the server returned: %v", err)
	default:
	}
}
