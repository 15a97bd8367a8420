//go:build linux

package resp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// stuckRESP3Subscriber connects a RESP3 subscriber of channels that does
// not read, and creates buckets until its mailbox has lost an event: its
// subscription's goroutine is then stuck in a write to its socket,
// holding its wmu.
//
// It fills the socket first, a few events at a time, until the server can
// write no more to it, and only then overflows the mailbox. A mailbox
// that overflows while the subscription's goroutine is only slow (a burst
// of creates on a loaded machine) has the subscriber disconnected at the
// next event that goroutine delivers, not stuck: then the commands the
// tests send it never ran (TestStuckRESP3SubscriberHoldsNoOneBack failed
// about once in eight runs beside other work).
func stuckRESP3Subscriber(t *testing.T, ts *testServer, writer *redis.Client, channels string, n int) *raw {
	t.Helper()
	nc := dialSmallReceiveBuffer(t, ts.addr, 4096)
	sub := &raw{t: t, nc: nc, rd: bufio.NewReader(nc)}
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
	server := serverSocket(t, nc)
	create := func(round, n int) {
		p := writer.Pipeline()
		for j := range n {
			p.HSet(ctx, fmt.Sprintf("k%d-%d", round, j), "f", "v")
		}
		_, err := p.Exec(ctx)
		require.NoError(t, err)
	}
	round := 0
	for ; canWrite(t, server); round++ {
		create(round, 10)
	}
	require.Zero(t, ts.root.Events().Stats().Dropped, "events lost before the socket was full")
	for ; ts.root.Events().Stats().Dropped == 0; round++ {
		create(round, 1000)
	}
	require.Zero(t, ts.srv.kicked.Load(), "the subscriber was disconnected rather than stuck")
	return sub
}

// drainBound bounds how long a stuck subscriber that starts reading takes
// to see its disconnection: it reads what its socket held first, which
// the kernel's grown send buffer made 2.8 MB here, through a 4 KiB
// window; under -race, on a busy machine, that took over a minute.
const drainBound = 3 * time.Minute

// serverSocket returns a descriptor of the server's end of nc, a
// loopback connection to a server in this process, found through /proc
// (the socket's inode in /proc/net/tcp, then the descriptor that links to
// it), rather than through the server's own fields, which its goroutines
// change as a client moves between the event loop and a goroutine.
func serverSocket(t *testing.T, nc net.Conn) int {
	t.Helper()
	client, server := nc.LocalAddr().(*net.TCPAddr), nc.RemoteAddr().(*net.TCPAddr)
	want := fmt.Sprintf("0100007F:%04X 0100007F:%04X", server.Port, client.Port)
	table, err := os.ReadFile("/proc/net/tcp")
	require.NoError(t, err)
	inode := ""
	for _, line := range strings.Split(string(table), "\n") {
		f := strings.Fields(line)
		if len(f) > 9 && f[1]+" "+f[2] == want {
			inode = f[9]
		}
	}
	require.NotEmpty(t, inode, "the server's end of %v in /proc/net/tcp", client)
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	for _, e := range fds {
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && link == "socket:["+inode+"]" {
			fd, err := strconv.Atoi(e.Name())
			require.NoError(t, err)
			return fd
		}
	}
	require.FailNow(t, "no descriptor of the server's end", "inode %s", inode)
	return -1
}

// canWrite reports whether a write to fd would not block now (poll's
// POLLOUT): false once its socket's send buffer is full.
func canWrite(t *testing.T, fd int) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	_, err := unix.Poll(fds, 0)
	require.NoError(t, err)
	return fds[0].Revents&unix.POLLOUT != 0
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

// A RESP3 subscriber that does not read, and whose events fill its socket,
// sends a transaction that unsubscribes it from its last channel: its
// EXEC, which holds every other client's writes back, must not wait for
// the event being written to it (for up to WriteTimeout: 30 s by default,
// an hour here). Once the client reads, it is disconnected for the events
// its full mailbox lost (unsubscribing does not make that loss silent),
// and nothing it sent after runs (a write among them would be applied and
// never acknowledged), as Redis runs nothing more of a client it has
// decided to close.
func TestRESP3SubscriberUnsubscribingInATransactionDoesNotStallWriters(t *testing.T) {
	ts := start(t, Config{WriteTimeout: time.Hour})
	ctx := context.Background()
	writer := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
	sub := stuckRESP3Subscriber(t, ts, writer, "kv:created", 1)
	sub.send("MULTI\r\nUNSUBSCRIBE\r\nEXEC\r\nHSET after f v\r\n")

	// A hang, not a speed: with the stall, this write waits for an hour.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, writer.HSet(wctx, "other", "f", "v").Err(), "writers wait for a subscriber that does not read")
	require.NoError(t, writer.Ping(wctx).Err())

	require.True(t, sub.closedWithin(drainBound), "disconnected once it reads, for the events it lost")
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
// client's EXEC waits for the exclusive one), waits for its socket: no
// other client's writes wait.
func TestStuckRESP3SubscriberHoldsNoOneBack(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, WriteTimeout: time.Hour})
			ctx := context.Background()
			writer := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
			other := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
			sub := stuckRESP3Subscriber(t, ts, writer, "kv:created kv:exited", 2)
			// A transaction (not the last name: EXEC's reply is flushed
			// under wmu, once EXEC has released the lock), then the same
			// commands alone, each under the shared lock. One write: the
			// client's goroutine runs all it has read before it writes
			// their replies, and that write waits for the socket (as the
			// subscription's goroutine's does); what came in a later read
			// would run only once the client reads.
			sub.send("MULTI\r\nPING\r\nHELLO 3\r\nCLIENT SETNAME stuck\r\nCLIENT LIST\r\nINFO\r\n" +
				"PUBSUB NUMSUB kv:created\r\nHSET mine f v\r\nUNSUBSCRIBE kv:created\r\nPUNSUBSCRIBE\r\n" +
				"PING\r\nEXEC\r\n" +
				"HELLO 3\r\nHSET mine2 f v\r\nCLIENT LIST\r\nPUBSUB CHANNELS\r\nWATCH w\r\nUNWATCH\r\n")
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
			require.Eventually(t, func() bool { return writer.Exists(ctx, "mine2").Val() == 1 }, 20*time.Second, time.Millisecond)
			assert.True(t, sub.closedWithin(drainBound), "disconnected once it reads, for the events it lost")
		})
	}
}

// RESET ends a subscription as the last UNSUBSCRIBE does: a subscriber
// whose mailbox overflowed is disconnected rather than going on as a
// normal client that missed events.
func TestResetAfterOverflowIsDisconnected(t *testing.T) {
	ts := start(t, Config{WriteTimeout: time.Hour})
	writer := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
	sub := stuckRESP3Subscriber(t, ts, writer, "kv:created", 1)
	sub.send("RESET\r\nPING\r\n")
	assert.True(t, sub.closedWithin(drainBound), "a subscriber that lost events goes on after RESET")
}
