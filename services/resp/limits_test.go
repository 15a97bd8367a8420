package resp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/faultnet"
	"github.com/kvproject/kv/internal/testlog"
	"github.com/kvproject/kv/services"
)

func TestMaxClients(t *testing.T) {
	ts := start(t, Config{MaxClients: 2})
	a, b := ts.raw(t), ts.raw(t)
	a.send("PING\r\n")
	b.send("PING\r\n")
	assert.Equal(t, "+PONG", a.line())
	assert.Equal(t, "+PONG", b.line())
	c := ts.raw(t)
	assert.Equal(t, "-ERR max number of clients reached", c.line())
	assert.True(t, c.closed())
	a.send("PING\r\n")
	assert.Equal(t, "+PONG", a.line())
}

func TestRequestLimits(t *testing.T) {
	ts := start(t, Config{MaxBulkLen: 100, MaxArgs: 5, MaxRequestBytes: 4096})
	ctx := context.Background()
	rc := ts.client(t)
	require.NoError(t, rc.HSet(ctx, "keep", "f", "v").Err())

	r := ts.raw(t)
	// A complete command with a long argument: an error reply, the client
	// stays.
	r.send(fmt.Sprintf("*4\r\n$4\r\nHSET\r\n$1\r\nk\r\n$1\r\nf\r\n$101\r\n%s\r\n", strings.Repeat("x", 101)))
	assert.Equal(t, "-ERR Protocol error: argument longer than 100 bytes", r.line())
	r.send("*5\r\n$4\r\nHSET\r\n$1\r\nk\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n")
	assert.Equal(t, "-ERR wrong number of arguments for 'hset' command", r.line())
	r.send("*6\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n")
	assert.Equal(t, "-ERR Protocol error: too many arguments (the limit is 5)", r.line())
	r.send("PING\r\n")
	assert.Equal(t, "+PONG", r.line())
	assert.Equal(t, int64(0), rc.Exists(ctx, "k").Val())

	// A request that grows past MaxRequestBytes: an error, then closed.
	big := ts.raw(t)
	big.send("*3\r\n$4\r\nECHO\r\n$100000\r\n" + strings.Repeat("y", 8192))
	assert.Equal(t, "-ERR Protocol error: request too large", big.line())
	assert.True(t, big.closed())

	inline := start(t, Config{}).raw(t)
	inline.send(strings.Repeat("z", 70_000))
	assert.Equal(t, "-ERR Protocol error: too big inline request", inline.line())
	assert.True(t, inline.closed())

	// A count or a length line that never ends (Redis allows 64 KiB, as
	// for an inline request): an error, then closed, without buffering up
	// to MaxRequestBytes.
	for _, tc := range []struct{ request, reply string }{
		{"*" + strings.Repeat("1", 70_000), "-ERR Protocol error: too big mbulk count string"},
		{"*2\r\n$4\r\nECHO\r\n$" + strings.Repeat("1", 70_000), "-ERR Protocol error: too big bulk count string"},
	} {
		endless := start(t, Config{}).raw(t)
		endless.send(tc.request)
		assert.Equal(t, tc.reply, endless.line())
		assert.True(t, endless.closed())
	}

	// A malformed bulk length that makes redcon's parser panic.
	bad := ts.raw(t)
	bad.send("*1\r\n$-100\r\n")
	assert.Equal(t, "-ERR Protocol error: invalid bulk length", bad.line())
	assert.True(t, bad.closed())

	// Every other client and every byte of data are untouched.
	assert.Equal(t, "v", rc.HGet(ctx, "keep", "f").Val())
	r.send("PING\r\n")
	assert.Equal(t, "+PONG", r.line())
}

// The idle timeout is a second: each client's first command must come
// within it of its connection (a stall of the test's goroutine, on a
// loaded machine, could pass 50 ms).
func TestIdleTimeout(t *testing.T) {
	ts := start(t, Config{IdleTimeout: time.Second})
	sub := ts.raw(t)
	sub.send("SUBSCRIBE kv:created\r\n")
	assert.Equal(t, "*3", sub.line())
	for range 5 {
		sub.line()
	}
	r := ts.raw(t)
	r.send("PING\r\n")
	assert.Equal(t, "+PONG", r.line())
	assert.True(t, r.closed(), "an idle client is closed")

	// Subscribers are exempt: it has been idle longer than the timeout and
	// still gets its events.
	rc := ts.client(t)
	require.NoError(t, rc.HSet(context.Background(), "idle", "f", "v").Err())
	assert.Equal(t, "*3", sub.line())
	sub.line()
	assert.Equal(t, "message", sub.line())
}

// failingListener fails its Accept once fail is closed, as a broken
// listener would.
type failingListener struct {
	net.Listener
	fail chan struct{}
}

// ReplaceableByPlain lets a restart listen plain in its stead.
func (l *failingListener) ReplaceableByPlain() {}

func (l *failingListener) Accept() (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() { c, err := l.Listener.Accept(); res <- result{c, err} }()
	select {
	case r := <-res:
		return r.c, r.err
	case <-l.fail:
		l.Listener.Close()
		r := <-res
		if r.c != nil {
			r.c.Close()
		}
		return nil, errors.New("listener broke")
	}
}

func TestFailedListenerIsRestartedWithoutTouchingBuckets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fl := &failingListener{Listener: ln, fail: make(chan struct{})}
	ts := start(t, Config{Listener: fl})
	ctx := context.Background()
	rc := ts.client(t)
	require.NoError(t, rc.HSet(ctx, "survivor", "f", "v").Err())
	b, ok := ts.root.Registry().Lookup("survivor")
	require.True(t, ok)

	close(fl.fail)
	// Serve returns (its clients are closed with it); suture restarts it,
	// and it listens again on the same address.
	require.Eventually(t, func() bool {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			return false
		}
		defer nc.Close()
		if _, err := nc.Write([]byte("PING\r\n")); err != nil {
			return false
		}
		reply := make([]byte, 7)
		_, err = io.ReadFull(nc, reply)
		return err == nil && string(reply) == "+PONG\r\n"
	}, 10*time.Second, time.Millisecond)
	assert.Equal(t, ts.addr, ts.srv.Addr().String())
	fresh := ts.client(t)
	assert.Equal(t, "v", fresh.HGet(ctx, "survivor", "f").Val())
	again, ok := ts.root.Registry().Lookup("survivor")
	require.True(t, ok)
	assert.Same(t, b, again, "the bucket was not restarted")
}

func TestStopFinishesInFlightCommands(t *testing.T) {
	tree := start(t, Config{}) // for its registry and events
	rc := tree.client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "s", "f", "v").Err())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(Config{Registry: tree.root.Registry(), Events: tree.root.Events()})
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(sctx, ln) }()

	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	r := &raw{t: t, nc: nc, rd: bufio.NewReader(nc)}
	var b strings.Builder
	for range 5000 {
		b.WriteString("*3\r\n$4\r\nHGET\r\n$1\r\ns\r\n$1\r\nf\r\n")
	}
	go func() { _, _ = nc.Write([]byte(b.String())) }()
	assert.Equal(t, "$1", r.line())
	assert.Equal(t, "v", r.line())
	stop() // while the pipeline is in flight

	// Every reply that arrives is whole; then the server closes the client.
	replies := 1
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	for {
		l, err := r.rd.ReadString('\n')
		if err != nil {
			assert.Empty(t, l, "a reply was cut")
			break
		}
		require.Equal(t, "$1\r\n", l)
		l, err = r.rd.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "v\r\n", l)
		replies++
	}
	assert.LessOrEqual(t, replies, 5000)
	require.ErrorIs(t, <-served, context.Canceled)
}

// Before AUTH, a request may be only so large: a stranger must not make
// the server buffer MaxRequestBytes. Once authenticated, the same request
// is bound by MaxRequestBytes alone.
func TestUnauthenticatedRequestsAreSmall(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, Password: "secret"})
			r := ts.raw(t)
			head := "*2\r\n$4\r\nECHO\r\n$50000000\r\n"
			r.send(head + strings.Repeat("y", maxUnauthRequest-len(head)))
			assert.Equal(t, "-ERR Protocol error: unauthenticated request too large", r.line())
			assert.True(t, r.closed())

			a := ts.raw(t)
			a.send("AUTH secret\r\n")
			assert.Equal(t, "+OK", a.line())
			v := strings.Repeat("v", 2*maxUnauthRequest)
			a.send(fmt.Sprintf("*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n", len(v), v))
			assert.Equal(t, fmt.Sprintf("$%d", len(v)), a.line())
			assert.Equal(t, v, a.line())
		})
	}
}

// Redis reads every request that does not start with '*' as an inline
// command, one that starts with '$' too (redcon reads it as Tile38's).
func TestDollarLineIsAnInlineCommand(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			r := start(t, Config{GoroutinePerClient: mode.goroutinePerClient}).raw(t)
			r.send("$5\r\nhullo\r\n$ECHO x\r\nPING\r\n")
			assert.Equal(t, "-ERR unknown command '$5', with args beginning with: ", r.line())
			assert.Equal(t, "-ERR unknown command 'hullo', with args beginning with: ", r.line())
			assert.Equal(t, "-ERR unknown command '$ECHO', with args beginning with: 'x' ", r.line())
			assert.Equal(t, "+PONG", r.line())
		})
	}
}

// A bulk length over Redis's proto-max-bulk-len (512 MiB) is a protocol
// error as soon as its line is read, as in Redis, where kv waited for the
// data (up to MaxRequestBytes).
func TestBulkLengthOverRedisLimit(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			for _, l := range []string{"536870913", "99999999999", "99999999999999999999"} {
				r := ts.raw(t)
				r.send("*2\r\n$4\r\nECHO\r\n$" + l + "\r\n")
				assert.Equal(t, "-ERR Protocol error: invalid bulk length", r.line(), l)
				assert.True(t, r.closed(), l)
			}
			r := ts.raw(t)
			r.send("*2\r\n$4\r\nECHO\r\n$536870912\r\nabc")
			r.send("PING\r\n")
			assert.False(t, r.closedWithin(100*time.Millisecond), "512 MiB is allowed: the data is awaited")
		})
	}
}

// Redis skips a multibulk count line with a negative count as an empty
// request, and the connection goes on; a count that is not a number to
// Redis's string2ll ("-0" among them) is a protocol error, and the
// connection closes.
func TestNegativeMultibulkCount(t *testing.T) {
	const invalid = "-ERR Protocol error: invalid multibulk length"
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			for _, tc := range []struct {
				name, req string
				want      []string
				closed    bool
			}{
				{"-1", "*-1\r\nPING\r\n", []string{"+PONG"}, false},
				{"-5 then a multibulk request", "*-5\r\n*1\r\n$4\r\nPING\r\n", []string{"+PONG"}, false},
				{"min int64", "*-9223372036854775808\r\nPING\r\n", []string{"+PONG"}, false},
				{"several, and a zero", "*-1\r\n*-20\r\n*0\r\nECHO x\r\n", []string{"$1", "x"}, false},
				{"-0", "*-0\r\nPING\r\n", []string{invalid}, true},
				{"-00", "*-00\r\nPING\r\n", []string{invalid}, true},
				{"-01", "*-01\r\nPING\r\n", []string{invalid}, true},
				{"below min int64", "*-9223372036854775809\r\nPING\r\n", []string{invalid}, true},
				{"no digits", "*-\r\nPING\r\n", []string{invalid}, true},
				{"not a number", "*-1x\r\nPING\r\n", []string{invalid}, true},
				{"no \\r", "*-1\nPING\r\n", []string{invalid}, true},
				{"after a command", "PING\r\n*-3\r\nPING\r\n", []string{"+PONG", "+PONG"}, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := ts.raw(t)
					r.send(tc.req)
					for _, w := range tc.want {
						assert.Equal(t, w, r.line())
					}
					if tc.closed {
						assert.True(t, r.closed())
						return
					}
					r.send("PING\r\n")
					assert.Equal(t, "+PONG", r.line(), "the connection stays open")
				})
			}
		})
	}
}

// parseCommand waits for the rest of a negative count line, as for any
// other, and skips it once whole.
func TestParseNegativeCount(t *testing.T) {
	for _, tc := range []struct {
		in       string
		complete bool
		left     string
		err      error
	}{
		{"*-", false, "*-", nil},
		{"*-1", false, "*-1", nil},
		{"*-1\r", false, "*-1\r", nil},
		{"*-1\r\n", true, "", nil},
		{"*-12\r\nPING\r\n", true, "PING\r\n", nil},
		{"*-0\r\n", false, "*-0\r\n", errInvalidMultibulkLength},
		{"*-" + strings.Repeat("1", 30), false, "*-" + strings.Repeat("1", 30), nil},
	} {
		complete, args, left, err := parseCommand([]byte(tc.in), nil)
		assert.Equal(t, tc.complete, complete, "%q", tc.in)
		assert.Empty(t, args, "%q", tc.in)
		assert.Equal(t, tc.left, string(left), "%q", tc.in)
		assert.Equal(t, tc.err, err, "%q", tc.in)
	}
}

// A web page can make its visitor's browser send an HTTP request to kv's
// port ("no-cors" POST, text/plain body): its request line and headers are
// inline commands, and the body's lines would run. As Redis does, a command
// named POST or Host: closes the connection without a reply, before the
// body is reached, with or without a password.
func TestHTTPRequestClosesTheConnection(t *testing.T) {
	for _, tc := range []struct{ name, req string }{
		{"post", "POST / HTTP/1.1\r\nHost: 127.0.0.1:6380\r\n"},
		{"post lower case", "post /x HTTP/1.0\r\n"},
		{"get then host", "GET / HTTP/1.1\r\nhOsT: 127.0.0.1\r\n"},
		{"multibulk", "*2\r\n$4\r\nPOST\r\n$1\r\n/\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, Config{})
			r := ts.raw(t)
			r.send(tc.req + "Content-Type: text/plain\r\n\r\nHSET pwned k v\r\n")
			require.True(t, r.closed())
			n, err := ts.client(t).Exists(context.Background(), "pwned").Result()
			require.NoError(t, err)
			require.Zero(t, n, "the request's body ran as commands")
		})
	}
	// A name that only starts so is an unknown command, as usual.
	ts := start(t, Config{})
	r := ts.raw(t)
	r.send("POSTS x\r\n")
	require.Equal(t, "-ERR unknown command 'POSTS', with args beginning with: 'x' ", r.line())
}

// A request that arrives in many pieces is not parsed again from its start
// at each piece. It was: a command of n arguments sent one argument at a
// time cost O(n²) argument parses, and as many growing argument vectors,
// on the event loop, which serves every other client meanwhile (a 14 MB
// request trickled a byte every 20 ms held other clients' PINGs for 0.45 s
// each). The work is measured in bytes allocated, which grew with it.
func TestRequestInPiecesIsNotParsedAgainAtEachPiece(t *testing.T) {
	s, ctx := commandLayer(t, Config{})
	c := newConn(s, discardConn{})
	defer c.close()
	const n = 4000
	pieces := []string{fmt.Sprintf("*%d\r\n$5\r\nHMGET\r\n$1\r\nh\r\n", n+2)}
	for i := range n {
		pieces = append(pieces, fmt.Sprintf("$%d\r\n%d\r\n", len(fmt.Sprint(i)), i))
	}
	// The last argument in two pieces, and its line in two as well.
	last := pieces[len(pieces)-1]
	pieces = append(pieces[:len(pieces)-1], last[:1], last[1:3], last[3:])
	feed := func(b string) {
		for len(b) > 0 {
			require.True(t, c.makeRoom())
			k := copy(c.buf[c.end:], b)
			c.end += k
			b = b[k:]
			require.Equal(t, stepRead, c.runBuffered(ctx))
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, p := range pieces {
		feed(p)
	}
	runtime.ReadMemStats(&after)
	require.True(t, bytes.HasPrefix(c.out, []byte(fmt.Sprintf("*%d\r\n$-1\r\n", n))), "%.40q", c.out)
	require.Equal(t, c.start, c.end, "the request was run whole")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20),
		"bytes allocated to parse a request of %d arguments sent one by one", n)

	// Still a client as before.
	c.out = c.out[:0]
	feed("*1\r\n$4\r\nPI")
	feed("NG\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n")
	assert.Equal(t, "+PONG\r\n$2\r\nhi\r\n", string(c.out))
}

// A client closed by the server with more sent behind (a protocol error
// followed by more commands) sees its connection end, not reset: the
// server drops what it left unread before it closes (a socket closed with
// unread data is reset, and a reset can cost the client the replies it
// has not read yet).
func TestClosedWithUnreadInputEndsCleanly(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			r := ts.raw(t)
			r.send("*1\r\n$-100\r\n" + strings.Repeat("PING\r\n", 10_000))
			assert.Equal(t, "-ERR Protocol error: invalid bulk length", r.line())
			require.NoError(t, r.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
			_, err := io.Copy(io.Discard, r.rd)
			require.NoError(t, err, "the connection ended with a reset")
		})
	}
}

// Running out of file descriptors passes: the server waits and accepts
// again, as net/http does. Returning would have suture restart it, and
// the restart closes every client, those that hold the descriptors with
// the rest.
func TestOutOfDescriptorsKeepsTheClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	xl := &faultnet.Exhausted{Listener: ln}
	ts := start(t, Config{Listener: xl})
	ctx := context.Background()
	rc := ts.client(t, func(o *redis.Options) { o.PoolSize = 1 })
	id, err := rc.ClientID(ctx).Result()
	require.NoError(t, err)

	xl.Fail.Store(3)
	late := ts.raw(t) // accepted once the descriptors are back
	late.send("PING\r\n")
	assert.Equal(t, "+PONG", late.line())
	again, err := rc.ClientID(ctx).Result()
	require.NoError(t, err, "the first client's connection is still open")
	assert.Equal(t, id, again, "on the same connection")
	assert.Equal(t, ts.addr, ts.srv.Addr().String())
}

// A listener of a kind kv cannot open again (TLS, say) that fails leaves
// the front end down for good, rather than serving its clients without
// the wrapper; suture drops such a service without a word, so the server
// logs why.
func TestAWrappedListenerThatFailsStaysDownAndSaysWhy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fl := &failingListener{Listener: ln, fail: make(chan struct{})}
	var logs testlog.Buffer
	ts := start(t, Config{Listener: struct{ net.Listener }{fl}, Logger: logs.Logger(slog.LevelInfo)})
	close(fl.fail)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "resp: cannot listen again; not restarting")
	}, 10*time.Second, time.Millisecond)
	assert.Contains(t, logs.String(), "only its maker can open again")
	assert.Nil(t, ts.srv.Addr(), "nothing listens")
	_, err = net.Dial("tcp", ts.addr)
	assert.Error(t, err, "not even in clear text")
}

// The server says in its log when it has stopped, as the other front ends
// do: an operator reading a daemon's stop sees each front end end.
func TestServerLogsItsStop(t *testing.T) {
	var logs testlog.Buffer
	root := services.New(services.Config{StopTimeout: 5 * time.Second})
	srv := New(Config{Registry: root.Registry(), Events: root.Events(), Addr: "127.0.0.1:0",
		Logger: logs.Logger(slog.LevelInfo), GoroutinePerClient: goroutinePerClient})
	root.Add(srv)
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	<-srv.Ready()
	addr := srv.Addr().String()
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "resp: listening") },
		10*time.Second, time.Millisecond)
	assert.NotContains(t, logs.String(), "resp: stopped")
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	assert.Contains(t, logs.String(), `msg="resp: stopped" addr=`+addr)
}
