//go:build unix

package resp

import (
	"net"
	"syscall"
)

// discardUnreadNow is discardUnread for a test's connection wrapper,
// which may close the socket from a goroutine other than its reader:
// Control takes no read lock, so it does not wait for a Read parked in
// the poller (discardUnread's RawConn.Read would, until data comes).
func discardUnreadNow(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) { discardReadable(int(fd)) })
}
