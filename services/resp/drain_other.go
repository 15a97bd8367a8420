//go:build !unix

package resp

import "net"

// discardUnread does nothing where sockets are not file descriptors that
// can be read without blocking.
func discardUnread(net.Conn) {}
