package resp

import (
	"bufio"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kvproject/kv/services"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// goroutinePerClient, set by KV_TEST_GOROUTINE_PER_CLIENT=1 (.ci/run sets
// it for a second run of this package), makes the tests' servers serve
// every client on a goroutine of its own, as on systems other than Linux.
var goroutinePerClient = os.Getenv("KV_TEST_GOROUTINE_PER_CLIENT") == "1"

// testServer is a kv tree with its RESP listener on a free loopback port.
type testServer struct {
	root *services.Root
	srv  *Server
	addr string
}

// start runs a tree and a listener for the test; the test's cleanup stops
// both and waits for them.
func start(t testing.TB, cfg Config) *testServer {
	t.Helper()
	root := services.New(services.Config{StopTimeout: 5 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg.Registry = root.Registry()
	cfg.Events = root.Events()
	cfg.GoroutinePerClient = cfg.GoroutinePerClient || goroutinePerClient
	if cfg.Listener == nil {
		cfg.Listener = ln
	} else {
		ln.Close()
	}
	srv := New(cfg)
	root.Add(srv)
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	<-srv.Ready()
	t.Cleanup(func() {
		cancel()
		<-errc
	})
	return &testServer{root: root, srv: srv, addr: srv.Addr().String()}
}

// client returns a go-redis client of ts, closed with the test. It speaks
// RESP2, as most tests assert RESP2's reply shapes (an array for HGETALL,
// read with Do(...).Slice()); resp3_test.go asks for RESP3 (Protocol: 3,
// go-redis's default, which clients built elsewhere in the tests use).
// Its read and write timeouts are 30 s, not go-redis's 3 s: a command of
// 50,000 fields takes half a second under -race on a loaded 2-core
// machine, and a sync waits for a shared disk; a command that hangs still
// fails.
func (ts *testServer) client(t testing.TB, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: ts.addr, MaxRetries: -1, DisableIdentity: false, Protocol: 2,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// smallSendBuffers is a listener whose connections have small socket send
// buffers: what a test sees the server keep for a client that does not
// read is then the server's own, not the kernel's.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err == nil {
		err = nc.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	return nc, err
}

// raw is a plain socket to ts, for inline commands and byte-exact replies.
type raw struct {
	t  testing.TB
	nc net.Conn
	rd *bufio.Reader
}

func (ts *testServer) raw(t testing.TB) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return &raw{t: t, nc: nc, rd: bufio.NewReader(nc)}
}

func (r *raw) send(s string) {
	r.t.Helper()
	_, err := r.nc.Write([]byte(s))
	require.NoError(r.t, err)
}

// line reads one reply line, without its \r\n.
func (r *raw) line() string {
	r.t.Helper()
	require.NoError(r.t, r.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	l, err := r.rd.ReadString('\n')
	require.NoError(r.t, err)
	return strings.TrimSuffix(l, "\r\n")
}

// expect reads one reply line for each of want, and requires them equal.
func (r *raw) expect(want ...string) {
	r.t.Helper()
	for _, w := range want {
		require.Equal(r.t, w, r.line())
	}
}

// closed reports whether the server closed the connection (reading until
// EOF, skipping anything sent before).
func (r *raw) closed() bool { return r.closedWithin(10 * time.Second) }

// closedWithin is closed, waiting at most d for the end.
func (r *raw) closedWithin(d time.Duration) bool {
	require.NoError(r.t, r.nc.SetReadDeadline(time.Now().Add(d)))
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

// requireClosedForWrites waits until writing to r fails because the server
// closed the connection (a reset, not a timeout). For a client that does
// not read: reading would tell later or never, since the kernel may drop a
// closed socket that still holds replies for a client whose window is
// shut, without a FIN.
func (r *raw) requireClosedForWrites() {
	r.t.Helper()
	require.NoError(r.t, r.nc.SetWriteDeadline(time.Now().Add(10*time.Second)))
	require.Eventually(r.t, func() bool {
		_, err := r.nc.Write([]byte("PING\r\n"))
		var ne net.Error
		return err != nil && !(errorsAs(err, &ne) && ne.Timeout())
	}, 10*time.Second, 10*time.Millisecond, "the server closed the connection")
}

// do looks a command up and runs it on c, as the connection's loop does.
func (c *conn) do(ctx context.Context, args [][]byte) {
	c.exec(ctx, c.s.lookup(args[0]), args)
}
