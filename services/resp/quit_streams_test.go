package resp

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// firstConnCloseHook is a listener whose first accepted connection runs
// onClose when the server closes it, before the socket is closed: the
// client's last replies are written, and the connection is still open.
// That connection is not a syscall.Conn, so it has a goroutine of its own
// in either serving mode; the later ones are the listener's own (the event
// loop takes them).
type firstConnCloseHook struct {
	net.Listener
	once    sync.Once
	onClose atomic.Pointer[func()] // set before the first connection closes
	// cutNext makes the first connection's next Write write half of what
	// it is given and fail with a timeout, as a write whose deadline
	// passes partway does.
	cutNext atomic.Bool
	closed  atomic.Bool // the first connection's socket is closed
	// closing is held while the first connection's socket is closed, so
	// that a test's write to it, made under closing once closed is
	// checked false, comes before that close: the close then finds those
	// bytes unread, and drops them (as the server does) rather than
	// resetting the connection, which the client would read as
	// ECONNRESET in place of what was written before.
	closing sync.Mutex
}

func (l *firstConnCloseHook) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	first := false
	l.once.Do(func() { first = true })
	if !first {
		return nc, nil
	}
	return &closeHookedConn{Conn: nc, l: l}, nil
}

type closeHookedConn struct {
	net.Conn
	l    *firstConnCloseHook
	once sync.Once
}

func (c *closeHookedConn) Write(b []byte) (int, error) {
	if c.l.cutNext.CompareAndSwap(true, false) {
		n, _ := c.Conn.Write(b[:len(b)/2])
		return n, os.ErrDeadlineExceeded
	}
	return c.Conn.Write(b)
}

func (c *closeHookedConn) Close() error {
	first := false
	c.once.Do(func() { first = true })
	if f := c.l.onClose.Load(); first && f != nil {
		(*f)() // a later Close, meanwhile, closes the socket at once
	}
	c.l.closing.Lock()
	defer c.l.closing.Unlock()
	c.l.closed.Store(true)
	// Not discardUnread: a Close from the subscription's goroutine would
	// wait for the client's goroutine's Read, parked with the fd's read
	// lock, which only this Close ends.
	discardUnreadNow(c.Conn)
	return c.Conn.Close()
}

// writeUnlessClosed writes b to the client's end r of the first
// connection unless the server has closed it, and reports whether it
// wrote: bytes that come to a closed socket make it reset the connection.
func (l *firstConnCloseHook) writeUnlessClosed(r *raw, b []byte) bool {
	l.closing.Lock()
	defer l.closing.Unlock()
	if l.closed.Load() {
		return false
	}
	_, _ = r.nc.Write(b)
	return true
}

// startHooked is start on a firstConnCloseHook listener.
func startHooked(t *testing.T, cfg Config) (*testServer, *firstConnCloseHook) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hooked := &firstConnCloseHook{Listener: ln}
	cfg.Listener = hooked
	return start(t, cfg), hooked
}

// serverConnOf returns the server's conn for the client r.
func serverConnOf(t *testing.T, ts *testServer, r *raw) *conn {
	t.Helper()
	for _, c := range ts.srv.clients() {
		if c.addr == r.nc.LocalAddr().String() {
			return c
		}
	}
	require.FailNow(t, "no such client")
	return nil
}

// requireNothingAfter reads r to its end and requires nothing there.
func requireNothingAfter(t *testing.T, r *raw, what string) {
	t.Helper()
	require.NoError(t, r.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	rest, err := io.ReadAll(r.rd)
	require.NoError(t, err, "the connection is closed")
	assert.Empty(t, string(rest), "written after "+what)
}

// signal returns a hook that signals, without waiting, on a channel of
// one.
func signal() (hook func(), signalled chan struct{}) {
	signalled = make(chan struct{}, 1)
	return func() {
		select {
		case signalled <- struct{}{}:
		default:
		}
	}, signalled
}

// quitAlone sends QUIT on the first connection, r, whose server conn is
// c, once it is subscribed or monitoring: once its +OK is written and
// before its socket is closed, send makes an event or a MONITOR line
// come, and written waits until the subscription's or monitor's goroutine
// is about to write it (holding wmu). The +OK must come alone, as in
// Redis, which closes a client after the reply to its QUIT (its flag
// CLIENT_CLOSE_AFTER_REPLY drops what would be written to it later).
func quitAlone(t *testing.T, hooked *firstConnCloseHook, r *raw, c *conn, send func() error, written chan struct{}) {
	t.Helper()
	sent := make(chan error, 1)
	onClose := func() {
		err := send()
		if err == nil {
			<-written
			// wmu is held by the write under way, until it ends.
			c.wmu.Lock()
			//lint:ignore SA2001 the empty section waits for that write
			c.wmu.Unlock()
		}
		sent <- err
	}
	hooked.onClose.Store(&onClose)
	r.send("QUIT\r\n")
	r.expect("+OK")
	requireNothingAfter(t, r, "QUIT's +OK")
	require.NoError(t, <-sent)
}

// A subscriber's QUIT gets its +OK alone: an event that comes once the
// +OK is written, before the socket is closed, is not written after it.
func TestSubscriberQuitGetsItsOKAlone(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			hook, written := signal()
			ts, hooked := startHooked(t, Config{GoroutinePerClient: mode.goroutinePerClient, testHookEventWrite: hook})
			sub := ts.raw(t) // the first connection
			writer := ts.client(t)
			sub.send("SUBSCRIBE kv:created\r\n")
			sub.expect("*3", "$9", "subscribe", "$10", "kv:created", ":1")
			quitAlone(t, hooked, sub, serverConnOf(t, ts, sub), func() error {
				return writer.HSet(context.Background(), "after-quit", "f", "v").Err()
			}, written)
		})
	}
}

// So does a monitor's, with another client's command run once the +OK is
// written (TestMonitorQuitGetsItsOKAlone runs none).
func TestMonitorQuitGetsItsOKAloneAmongOtherClients(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			hook, written := signal()
			ts, hooked := startHooked(t, Config{GoroutinePerClient: mode.goroutinePerClient, testHookMonitorWrite: hook})
			mon := ts.raw(t) // the first connection
			writer := ts.client(t)
			require.NoError(t, writer.Ping(context.Background()).Err()) // connected before MONITOR
			monitorOf(mon)
			quitAlone(t, hooked, mon, serverConnOf(t, ts, mon), func() error {
				return writer.Ping(context.Background()).Err()
			}, written)
		})
	}
}

// Nothing is written to a subscriber after an event whose write failed
// partway (its deadline passed): its own replies, which the client's
// goroutine writes until the subscription's goroutine, disconnecting it,
// has closed its socket, would read as the rest of the cut message.
func TestNothingFollowsAnEventCutByAFailedWrite(t *testing.T) {
	ts, hooked := startHooked(t, Config{Observer: discardObserver{}}) // commandstats count
	ctx := context.Background()
	sub := ts.raw(t) // the first connection
	rc := ts.client(t)
	sub.hello3() // RESP3: a subscriber runs any command
	sub.send("SUBSCRIBE kv:created\r\n")
	sub.expect(">3", "$9", "subscribe", "$10", "kv:created", ":1")
	ran := make(chan error, 1)
	onClose := func() {
		// The subscription's goroutine, disconnecting the subscriber,
		// closes its socket: first, a PING runs and its reply is
		// flushed, then a HSET, which is read only once that flush is
		// done (or the client's goroutine, its flush refused, closes the
		// socket at once).
		ran <- func() error {
			if _, err := sub.nc.Write([]byte("PING\r\n")); err != nil {
				return err
			}
			for !hooked.closed.Load() && !strings.Contains(rc.Info(ctx, "commandstats").Val(), "cmdstat_ping:") {
			}
			if hooked.writeUnlessClosed(sub, []byte("HSET marker f v\r\n")) {
				for !hooked.closed.Load() && rc.Exists(ctx, "marker").Val() == 0 {
				}
			}
			return nil
		}()
	}
	hooked.onClose.Store(&onClose)
	hooked.cutNext.Store(true)
	require.NoError(t, rc.HSet(ctx, "cut", "f", "v").Err()) // its Created is cut
	require.NoError(t, sub.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	rest, err := io.ReadAll(sub.rd)
	require.NoError(t, err, "the connection is closed")
	require.NoError(t, <-ran)
	assert.True(t, strings.HasPrefix(string(rest), ">3\r\n$7\r\nmessage\r\n"), "half an event: %q", rest)
	assert.NotContains(t, string(rest), "PONG", "a reply after the cut event")
	assert.NotContains(t, string(rest), "\r\n:1\r\n", "a reply after the cut event")
	assert.EqualValues(t, 1, ts.srv.kicked.Load(), "disconnected for not reading in time")
}
