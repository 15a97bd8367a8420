//go:build linux

package resp

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The replies a client that does not read makes the server keep are
// MaxReplyBytes, counted whole: those queued and those a writer is
// writing. Counting only the queued ones let a goroutine-served client
// run on until twice as many waited.
func TestRepliesWaitingAreBoundedByMaxReplyBytes(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			const limit = 2 << 20
			ts, rc, value := startWithBigValue(t, Config{
				GoroutinePerClient: mode.goroutinePerClient, MaxReplyBytes: limit,
				Listener: smallSendBuffers{ln},
			})
			nc := dialSmallReceiveBuffer(t, ts.addr, 16<<10)
			const n = 500 // 64 KiB replies: 31 MiB
			_, err = nc.Write([]byte(strings.Repeat("HGET h big\r\nHINCRBY c ran 1\r\n", n)))
			require.NoError(t, err)
			last := countWhenStill(t, rc, "c", "ran")
			// The limit, the reply that passed it, and the sockets' few
			// dozen KiB.
			kept := last * int64(len(value)+len(fmt.Sprint(len(value)))+5)
			t.Logf("%d commands ran, %d KiB of replies wait", last, kept>>10)
			assert.LessOrEqual(t, kept, int64(limit+2*len(value)+256<<10), "replies waiting")
		})
	}
}

// dialSmallReceiveBuffer connects to addr with a socket receive buffer of
// size bytes (the kernel doubles it), set before the connection is made,
// so that what the server keeps for a client that does not read is not
// hidden in the client's socket. It is closed with the test.
func dialSmallReceiveBuffer(t *testing.T, addr string, size int) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, raw syscall.RawConn) error {
		var serr error
		err := raw.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return nc
}
