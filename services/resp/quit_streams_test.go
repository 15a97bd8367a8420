package resp

import (
	"context"
	"io"
	"net"
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

func (c *closeHookedConn) Close() error {
	c.once.Do(func() {
		if f := c.l.onClose.Load(); f != nil {
			(*f)()
		}
	})
	return c.Conn.Close()
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
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			hooked := &firstConnCloseHook{Listener: ln}
			hook, written := signal()
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, Listener: hooked, testHookEventWrite: hook})
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
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			hooked := &firstConnCloseHook{Listener: ln}
			hook, written := signal()
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, Listener: hooked, testHookMonitorWrite: hook})
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
