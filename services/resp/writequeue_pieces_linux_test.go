//go:build linux

package resp

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The write queue of a client on a goroutine of its own keeps its replies
// in about their size, however they came: one small reply at a time (a
// client that sends one command, then the next, and does not read) made
// a piece each, a slice header and an allocation of its own for 7 bytes
// of "+PONG\r\n", about 5 times what MaxReplyBytes counts, and a write
// (and a deadline) of the writer's for each.
func TestWriteQueueKeepsSmallRepliesInTheirSize(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts := start(t, Config{GoroutinePerClient: true, WriteTimeout: time.Minute, Listener: smallSendBuffers{ln}})
	require.NoError(t, ts.client(t).HSet(context.Background(), "h", "big", strings.Repeat("v", 1<<20)).Err())
	nc := dialSmallReceiveBuffer(t, ts.addr, 16<<10)
	_, err = nc.Write([]byte("HGET h big\r\n")) // more than the sockets hold
	require.NoError(t, err)
	var c *conn
	require.Eventually(t, func() bool {
		for _, o := range ts.srv.clients() {
			o.wq.mu.Lock()
			taken := o.wq.active && len(o.wq.buf) == 0 && o.wq.inflight > 0
			o.wq.mu.Unlock()
			if taken {
				c = o
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond, "a writer writes the reply the socket could not take")

	// One command at a time: each is read, and answered, alone.
	const n = 2000
	for i := range n {
		_, err := nc.Write([]byte("PING\r\n"))
		require.NoError(t, err)
		want, deadline := int64(i+2), time.Now().Add(10*time.Second)
		for c.commands.Load() < want {
			require.True(t, time.Now().Before(deadline), "PING %d is not run", i)
			runtime.Gosched()
		}
	}
	require.Eventually(t, func() bool {
		c.wq.mu.Lock()
		defer c.wq.mu.Unlock()
		return c.wq.queued == n*len("+PONG\r\n")
	}, 10*time.Second, time.Millisecond, "the PONGs wait in the queue")

	c.wq.mu.Lock()
	defer c.wq.mu.Unlock()
	kept := cap(c.wq.buf) * 24 // the pieces' slice headers
	for _, p := range c.wq.buf {
		kept += cap(p)
	}
	t.Logf("%d pieces keep %d bytes for %d bytes of replies", len(c.wq.buf), kept, c.wq.queued)
	assert.LessOrEqual(t, kept, 2*c.wq.queued+64, "bytes kept for %d bytes of replies", c.wq.queued)
}
