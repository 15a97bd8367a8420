// Package faultnet holds listeners that fail on purpose, for the front
// ends' tests.
package faultnet

import (
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// Exhausted stands for a process out of file descriptors: while Fail is
// above 0, a connection that arrives waits (as it would in the kernel's
// listen queue) while Accept fails with EMFILE, Fail times. Serve it from
// one goroutine, as an accept loop does.
type Exhausted struct {
	net.Listener
	Fail    atomic.Int32
	waiting net.Conn
}

// Accept accepts a connection, then fails while Fail says so, then returns
// it.
func (l *Exhausted) Accept() (net.Conn, error) {
	if l.waiting == nil {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.waiting = c
	}
	if l.Fail.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	c := l.waiting
	l.waiting = nil
	return c, nil
}
