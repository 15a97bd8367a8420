//go:build !unix

package resp

import (
	"net"
	"syscall"
)

// discardUnread does nothing where sockets are not file descriptors that
// can be read without blocking.
func discardUnread(net.Conn) {}

// writeNow writes b to nc, waiting for room where a socket cannot be
// written without blocking: replies then never wait in a queue (see
// writeQueue), and a client that sends a whole pipeline before it reads
// may wait on the server while the server waits on it.
func writeNow(nc net.Conn, _ *syscall.RawConn, b []byte) (int, error) { return nc.Write(b) }
