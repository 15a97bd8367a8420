//go:build unix

package resp

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxDrainReads bounds discardReadable: at most this many reads of 4 KiB
// (1 MiB in all) from a client that never stops sending.
const maxDrainReads = 256

// discardReadable reads and drops what is waiting in the socket fd,
// which is non-blocking, without waiting for more. A socket closed with
// unread data makes the kernel reset the connection rather than end it,
// and the reset makes the client's kernel throw away the replies the
// client has not read yet: the last replies of a client closed at a stop
// or after QUIT or a protocol error, with more commands sent behind.
func discardReadable(fd int) {
	var buf [4096]byte
	for range maxDrainReads {
		if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
			return
		}
	}
}

// discardUnread is discardReadable for a client on a goroutine of its
// own, whose connection is in Go's poller.
func discardUnread(nc net.Conn) {
	raw := rawConnOf(nc)
	if raw == nil {
		return
	}
	// A stop set a read deadline in the past, which would refuse the read.
	_ = nc.SetReadDeadline(time.Time{})
	_ = raw.Read(func(fd uintptr) bool {
		discardReadable(int(fd))
		return true // done, whatever is left: never wait for more
	})
}

// rawConnOf returns nc's syscall.RawConn, or nil when nc has no file
// descriptor to give (a wrapper, or a closed connection).
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// writeNow writes b to nc as far as its socket takes it now, without
// waiting for room: it returns how much it wrote. An error means the
// client is gone (or nc's write deadline has passed). *raw caches nc's
// syscall.RawConn.
func writeNow(nc net.Conn, raw *syscall.RawConn, b []byte) (int, error) {
	if *raw == nil {
		sc, ok := nc.(syscall.Conn)
		if !ok {
			return nc.Write(b)
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return 0, err
		}
		*raw = rc
	}
	n := 0
	var werr error
	err := (*raw).Write(func(fd uintptr) bool {
		for n < len(b) {
			m, err := unix.Write(int(fd), b[n:])
			if m > 0 {
				n += m
				continue
			}
			if err == unix.EINTR {
				continue
			}
			if err != unix.EAGAIN {
				werr = err
			}
			break
		}
		return true // never wait for room
	})
	if err == nil {
		err = werr
	}
	return n, err
}
