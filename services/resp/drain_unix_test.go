//go:build unix

package resp

import "net"

// discardUnreadNow is discardUnread for a test's connection wrapper,
// which may close the socket from a goroutine other than its reader:
// Control takes no read lock, so it does not wait for a Read parked in
// the poller (discardUnread's RawConn.Read would, until data comes).
func discardUnreadNow(nc net.Conn) {
	if raw := rawConnOf(nc); raw != nil {
		_ = raw.Control(func(fd uintptr) { discardReadable(int(fd)) })
	}
}
