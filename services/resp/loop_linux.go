//go:build linux

package resp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// loop is the event loop of one ServeListener: a single goroutine waits on
// epoll for every client's socket, reads what each ready client sent, runs
// its commands, and then writes the replies of all of them, as Redis's event
// loop does.
//
// Why not a goroutine per client: with one, each request readies a
// goroutine, and the Go scheduler wakes another thread to run it whenever
// a P is idle. On a machine that the clients share, that thread lands on
// their core; measured with redis-benchmark -c 50 on 2 cores, the load
// generator then slept 8 times as often, and kv served 0.8x of Redis's
// requests. The loop blocks in epoll_wait as a plain system call, which
// keeps its P while the other P is idle, so nothing else wakes.
//
// Writes to a durable store are answered as Redis answers them under
// appendfsync: once every client of the wake-up has run its commands, the
// first reply that must wait for the disk commits the writes of all of
// them (one group, one fsync under FsyncAlways), on the loop's own
// goroutine; then the replies leave.
//
// A client leaves the loop for a goroutine of its own (handoff) before a
// command that needs one (flagOwnGoroutine: a subscription, which another
// goroutine writes to; SAVE, which waits for a checkpoint) or that may run
// for long (flagLong: FLUSHALL, which waits for every bucket to end).
// Its socket is then given back to Go's network poller.
type loop struct {
	s    *Server
	ctx  context.Context
	epfd int
	wake int // an eventfd: stop writes to it

	mu      sync.Mutex
	conns   map[int32]*conn // by socket; accept adds, the loop removes
	stopped bool            // no more clients: add refuses them
	done    chan struct{}   // closed when run returns

	locked   bool // the loop's goroutine is locked to its thread
	relock   bool // letGo unlocked it for the wake-up: locked again at the next
	unlocked bool // settle unlocked it for good (a durable store)
	draining bool // stop was called: no more requests are read
	// The clients of the current wake-up whose command panicked: closed
	// once the transactions' lock is released (see serveSurviving).
	crashed []*conn
}

const (
	maxEvents  = 256                  // how many ready sockets one epoll_wait returns at most
	yieldEvery = 5 * time.Millisecond // half the runtime's preemption slice (see run)
	yieldAfter = 32                   // wake-ups in yieldEvery that make the loop busy
)

// startLoop starts the event loop of a ServeListener.
func startLoop(ctx context.Context, s *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("resp: epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("resp: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, fmt.Errorf("resp: epoll_ctl: %w", err)
	}
	l := &loop{s: s, ctx: ctx, epfd: epfd, wake: wake, conns: make(map[int32]*conn), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// add moves the client c onto the loop, with s.mu held; it reports false if
// the loop cannot take it (it is stopping, or c's connection is not a
// socket), and c keeps its connection.
func (l *loop) add(c *conn) bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || dupErr != nil {
		return false
	}
	// The duplicate shares the socket's non-blocking mode. Closing the
	// original takes the socket out of Go's poller, which would otherwise
	// wake a thread for it too.
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		unix.Close(fd)
		return false
	}
	_ = c.nc.Close()
	c.nc, c.lp, c.home, c.homeFD, c.fd, c.watched = nil, l, l, int32(fd), fd, unix.EPOLLIN
	c.lastActive = time.Now()
	l.conns[int32(fd)] = c
	return true
}

// clients returns how many clients the loop serves; a nil loop serves none.
func (l *loop) clients() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// multiplexing names how the server waits for its clients, for INFO:
// "epoll" with the event loop, "goroutines" without.
func (s *Server) multiplexing() string {
	if s.loop.Load() != nil {
		return "epoll"
	}
	return "goroutines"
}

// stop makes the loop stop: it takes no more clients, reads no more
// requests, lets each client that is blocked on its replies take them and
// finish the commands it had sent, up to ShutdownTimeout, closes every
// client and returns. stop does not wait for it: wait does.
func (l *loop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	one := [8]byte{0: 1} // added to the eventfd's counter: any non-zero value wakes the loop
	_, _ = unix.Write(l.wake, one[:])
}

// wait waits for the loop to return after stop, and releases its
// descriptors.
func (l *loop) wait() {
	<-l.done
	unix.Close(l.wake)
	unix.Close(l.epfd)
}

// run is the loop's goroutine.
func (l *loop) run() {
	// On a thread of its own: a goroutine that returns from epoll_wait
	// after its P was taken would otherwise often go on on another
	// thread, waking it. Locked, the loop ran on one thread, and served
	// 3 to 10% more requests under redis-benchmark -c 50 without
	// pipelining. Until it waits for a durable store: see write.
	runtime.LockOSThread()
	l.locked = true
	defer func() {
		if l.locked {
			runtime.UnlockOSThread()
		}
	}()
	defer close(l.done)
	events := make([]unix.EpollEvent, maxEvents)
	var ready []*conn // the clients of the current wake-up
	tick := l.tick()
	nextExpiry := time.Now().Add(tick)
	var deadline time.Time           // while draining: when the last clients are closed
	window, wakeups := time.Now(), 0 // the busy check's (see below)
	for {
		if l.relock {
			runtime.LockOSThread()
			l.locked, l.relock = true, false
		}
		timeout := tick
		if l.draining {
			timeout = min(tick, max(time.Until(deadline), 0))
		}
		// In whole milliseconds, rounded up: 0 would poll.
		n, err := unix.EpollWait(l.epfd, events, int((timeout+time.Millisecond-1)/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.s.log.Error("resp: epoll_wait failed; closing the event loop's clients", "err", err)
			l.closeAll()
			return
		}
		now := time.Now()
		if wakeups++; now.Sub(window) >= yieldEvery {
			// A goroutine that never passes through the scheduler looks
			// stuck to Go's system monitor: after 10 ms it preempts it,
			// and takes its P if it is in epoll_wait; the monitor then
			// polls every 20 µs again, on any core (the clients' too).
			// Measured under redis-benchmark -c 50 without pipelining:
			// the monitor's thread woke 11,029 times in 300,000 HGETs
			// without this yield, 491 with it, and the client switched
			// 944 times instead of 1,701. Only when busy, though: a
			// locked goroutine's yield costs two thread wake-ups, which
			// requests that come further apart should not wait for
			// (p50 round trip 103-131 µs with a yield at each, 80-92 µs
			// without).
			if wakeups >= yieldAfter {
				runtime.Gosched()
			}
			window, wakeups = now, 0
		}
		ready = ready[:0]
		l.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == int32(l.wake) {
				var counter [8]byte // read, so that the eventfd stops being ready
				_, _ = unix.Read(l.wake, counter[:])
				if !l.draining {
					l.draining = true
					deadline = now.Add(l.s.cfg.ShutdownTimeout)
				}
				continue
			}
			if c := l.conns[ev.Fd]; c != nil {
				c.readyEvent = ev.Events
				ready = append(ready, c)
			}
		}
		l.mu.Unlock()
		// The commands of the wake-up run under the read lock of
		// transactions (Server.tx), taken once for all of them: an EXEC
		// of a client on a goroutine of its own waits for them to have
		// run, and one of the loop's clients takes the write lock in its
		// place (see conn.exec). It is released before the replies
		// leave: while the loop waits for the disk to answer them, it
		// does not hold an EXEC back, nor every client behind the EXEC.
		// (A client whose replies pass flushAt while its commands run
		// has them written then, under the lock.)
		l.s.tx.RLock()
		for _, c := range ready {
			l.serveSurviving(c, now)
		}
		l.s.tx.RUnlock()
		for _, c := range l.crashed {
			l.drop(c) // waits for its pending writes: outside the lock
		}
		clear(l.crashed)
		l.crashed = l.crashed[:0]
		// The replies of every client of this wake-up leave together,
		// after all of them have run.
		for _, c := range ready {
			if c.lp == l {
				l.finish(c)
			}
		}
		clear(ready)
		if l.draining {
			// Every client that is not blocked on its replies has run all
			// it sent, and is closed; the others go on, up to the
			// deadline.
			if l.drain() == 0 || !now.Before(deadline) {
				l.closeAll()
				return
			}
		}
		if now.After(nextExpiry) {
			l.expire(now)
			tick = l.tick() // CONFIG SET timeout may have changed it
			nextExpiry = now.Add(tick)
		}
	}
}

// tick is how often the loop looks for idle and blocked clients: an
// eighth of the shorter timeout, so that a client is closed between 1 and
// 1.125 timeouts after it stopped.
func (l *loop) tick() time.Duration {
	t := l.s.cfg.WriteTimeout
	if idle := l.s.idleTimeout(); idle > 0 && idle < t {
		t = idle
	}
	return max(t/8, time.Millisecond)
}

// serveSurviving is serve that recovers a panic of one of c's commands:
// c is closed, logged with the stack, and the loop goes on with its other
// clients (see Server.survive). The close waits for c's pending writes,
// so it is left to run, once the transactions' lock is released (crashed):
// under it, a disk that is slow to answer would hold every EXEC back.
// Meanwhile c is neither read nor written (finish skips it).
func (l *loop) serveSurviving(c *conn, now time.Time) {
	defer func() {
		if r := recover(); r != nil {
			l.s.logPanic(c, r)
			if c.lp == l {
				l.crashed = append(l.crashed, c)
			}
		}
	}()
	l.serve(c, now)
}

// serve reads what the client c sent and runs its commands. A client
// whose replies wait for its socket (blocked) is read too, while it may
// add to them (see events).
func (l *loop) serve(c *conn, now time.Time) {
	wasBlocked := c.blocked
	if wasBlocked {
		if c.readyEvent&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && !l.write(c) && c.lp != l {
			return // gone
		}
		if !c.blocked && c.closing {
			l.drop(c)
			return
		}
		switch {
		case c.blocked && c.backlog:
			if c.waiting() >= l.s.cfg.MaxReplyBytes {
				return // no room for more replies yet
			}
			// Room for more: the commands waiting run on, and the
			// socket is not read before they have.
		case c.blocked && (c.readyEvent&unix.EPOLLIN == 0 || l.events(c)&unix.EPOLLIN == 0):
			return // nothing to read, or no room for more replies
		}
	}
	// A client whose replies have just gone out runs what it had sent
	// meanwhile; its socket is read again at the next wake-up. So does a
	// blocked client with commands waiting (backlog).
	if c.blocked && !c.backlog || !wasBlocked {
		if l.draining {
			return // no more requests: drain closes it
		}
		n, err := unix.Read(c.fd, c.buf[c.end:])
		switch {
		case n > 0:
			c.end += n
			c.lastActive = now
			c.lastRead.Store(int64(now.Sub(c.created)))
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			return
		case n == 0 && err == nil && c.blocked:
			// The client has sent all it will (a shutdown of its side,
			// as nc does at the end of its input): its replies still go
			// out, and the commands held back meanwhile (MaxReplyBytes,
			// or one that needs a goroutine of its own) still run once
			// they are; its socket is not read again until then, and
			// then tells the end again, which closes it.
			c.eof = true
			return
		default: // the client closed, or the socket failed
			l.drop(c)
			return
		}
	}
	c.lastEnd = 0 // a command's latency does not include the wait for it
	switch c.runBuffered(l.ctx) {
	case stepClose:
		c.closing = true
	case stepGone:
		l.drop(c)
	case stepHandoff:
		l.handoff(c)
	}
}

// finish writes the client's replies, and closes it if it must be closed;
// it makes room for the client's next request (a blocked client's too:
// it is read while its replies wait). The writes of a blocked client are
// waited for too, as every other client's: its replies wait for its
// socket, not its writes for its replies. A write not yet waited for
// holds the store back: after a failed sync it recovers only once every
// write in flight has been answered, and it was, for as long as a client
// that did not read stayed connected.
func (l *loop) finish(c *conn) {
	if !c.blocked && len(c.out) > 0 && !l.write(c) && c.lp != l {
		return // gone
	}
	if c.blocked {
		l.settle(c)
	}
	if !c.closing {
		if cap(c.args) > maxKeptArgs {
			c.args = nil
		}
		if !c.makeRoom() {
			c.closing = true // a request past the limits: its error is in c.out
			if !c.blocked && !l.write(c) && c.lp != l {
				return // gone
			}
		}
	}
	if c.closing && !c.blocked {
		l.drop(c)
		return
	}
	l.watch(c, l.events(c))
}

// events is what the loop waits for on c's socket: a request, and while
// its replies wait for the socket (blocked), room for them; and a blocked
// client's requests too, unless it is to be closed, has shut its side,
// holds a command back for a goroutine of its own or commands that wait
// for MaxReplyBytes of replies to leave (backlog), the loop drains, or
// MaxReplyBytes of replies wait already.
func (l *loop) events(c *conn) uint32 {
	if !c.blocked {
		return unix.EPOLLIN
	}
	if c.closing || c.eof || c.held || c.backlog || l.draining || c.waiting() >= l.s.cfg.MaxReplyBytes {
		return unix.EPOLLOUT
	}
	return unix.EPOLLOUT | unix.EPOLLIN
}

// write writes the client's replies without blocking, once the writes
// they answer are as durable as the store's policy asks; it reports
// whether all of them are out. When the socket cannot take them all, the
// client is blocked: the loop waits for the socket to be writable, and
// closes the client once the socket has taken nothing for WriteTimeout.
// Meanwhile it goes on reading the client and running its commands (see
// events), and keeps their replies, up to MaxReplyBytes. A client whose
// socket failed is dropped.
func (l *loop) write(c *conn) bool {
	c.lastEnd = 0
	l.settle(c)
	// From outOff on: a reply that leaves in pieces is not moved in
	// memory at each one (copying what is left of a reply of n bytes at
	// each of n/k pieces made its cost grow as n squared).
	took := false
	for len(c.queued) > 0 || c.outOff < len(c.out) {
		var n int
		var err error
		if len(c.queued) > 0 {
			head := c.queued[0]
			n, err = unix.Write(c.fd, head)
			if n > 0 {
				c.queuedLen -= n
				if n == len(head) {
					c.queued[0] = nil
					c.queued = c.queued[1:]
				} else {
					c.queued[0] = head[n:]
				}
			}
		} else if n, err = unix.Write(c.fd, c.out[c.outOff:]); n > 0 {
			c.outOff += n
		}
		if n > 0 {
			took = true
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			if !c.blocked || took {
				// WriteTimeout counts from the last reply the socket
				// took: a client that reads its replies as they come,
				// slower than it sends, is not cut off.
				c.blockedAt = time.Now()
			}
			if c.outOff >= flushAt && c.outOff >= len(c.out)/2 {
				// The replies written leave memory: the client's
				// commands run on while these wait (see runBuffered), and
				// a client that reads on, slower than it sends, would
				// otherwise keep every reply since it blocked. Moved only
				// once they are half of it, so each byte moves about once;
				// no reply is pending here (settle ran).
				c.out, c.outOff = c.out[:copy(c.out, c.out[c.outOff:])], 0
			}
			if !c.blocked {
				c.blocked = true
				l.watch(c, l.events(c)) // on a failure, it drops c
			}
			return false
		}
		l.drop(c)
		return false
	}
	c.out, c.outOff, c.queued = c.out[:0], 0, nil
	if cap(c.out) > 4*flushAt {
		c.out = nil
	}
	if c.blocked {
		// Taking its replies is activity: the idle clock restarts.
		c.blocked = false
		c.lastActive = time.Now()
		return l.watch(c, unix.EPOLLIN)
	}
	return true
}

// settle waits for the writes that c's replies answer to be durable (see
// conn.settle). The loop waits for the disk only through it: its thread is
// let go first.
func (l *loop) settle(c *conn) {
	if len(c.pending) > 0 {
		// The loop now waits for the disk, through the engine's WAL
		// goroutine: locked, each wait cost two thread wake-ups (the
		// WAL goroutine's thread, then the loop's own), where unlocked
		// the thread that ran the WAL goroutine runs the loop next. Under
		// --fsync always, redis-benchmark -c 50 without pipelining got
		// 0.78-0.95x of Redis locked, 0.84-1.08x unlocked. It stays
		// unlocked: a durable store's loop waits for the disk at most
		// wake-ups.
		if l.locked {
			runtime.UnlockOSThread()
			l.locked = false
		}
		l.unlocked, l.relock = true, false
	}
	c.settle()
}

// letGo lets the loop's goroutine off its thread for the rest of the
// wake-up, before a command waits for another goroutine: a new bucket's
// start (suture's supervisor takes it in), the registry forgetting a
// deleted bucket. Locked, each such wait cost two thread wake-ups (the
// other goroutine's thread, then the loop's own), where unlocked the
// loop's thread runs the other goroutine itself: HSET of a new key at
// each request, in memory, went from 14,500-15,300 to 44,800-47,600 req/s
// (redis-benchmark -c 50 -r 10000000; Redis 90,000), and HSET with DEL
// of 1,000 keys from 20,000 to 47,000-50,000 of each. The loop locks
// again at its next wake-up, unless a durable store has it unlocked for
// good (settle).
func (l *loop) letGo() {
	if l.locked {
		runtime.UnlockOSThread()
		l.locked = false
		l.relock = !l.unlocked
	}
}

// watch sets the events the loop waits for on c's socket; it reports
// false if it could not, and has closed the client.
func (l *loop) watch(c *conn, events uint32) bool {
	if c.watched == events {
		return true
	}
	c.watched = events
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: events, Fd: int32(c.fd)}); err != nil {
		l.s.log.Error("resp: epoll_ctl failed; closing the client", "client", c.addr, "err", err)
		l.drop(c)
		return false
	}
	return true
}

// kill shuts the socket of c, one of the loop's clients, down for CLIENT
// KILL, from another goroutine: the loop, woken, reads its end and closes
// it, as when the client goes away. A client no longer in the loop (its
// socket closed, or handed to a goroutine of its own: see handoff) is
// left alone. Under mu, the socket cannot be closed, and its number taken
// by another, meanwhile.
func (l *loop) kill(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[c.homeFD] == c {
		_ = unix.Shutdown(int(c.homeFD), unix.SHUT_RDWR)
	}
}

// forget takes c's socket out of the loop.
func (l *loop) forget(c *conn) {
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	l.mu.Lock()
	delete(l.conns, int32(c.fd))
	l.mu.Unlock()
	c.lp = nil
}

// drop closes the client c.
func (l *loop) drop(c *conn) {
	if c.lp != l {
		return // dropped already
	}
	l.settle(c) // every pending write is waited for, answered or not
	fd := c.fd
	l.forget(c)
	discardReadable(fd)
	unix.Close(fd)
	c.fd = -1
	l.s.ended(c)
}

// handoff gives the client c a goroutine of its own, which goes on from
// the commands the loop has not run yet and writes the replies waiting.
func (l *loop) handoff(c *conn) {
	fd := c.fd
	l.forget(c)
	f := os.NewFile(uintptr(fd), "client")
	nc, err := net.FileConn(f) // a duplicate, in Go's poller
	f.Close()
	if err != nil {
		l.s.log.Error("resp: could not give a client a goroutine of its own; closing it", "client", c.addr, "err", err)
		l.settle(c) // its pending writes are waited for, answered or not
		c.fd = -1
		l.s.ended(c)
		return
	}
	l.s.mu.Lock()
	c.nc, c.fd = nc, -1
	late := l.s.closedAll || c.killed.Load()
	l.s.mu.Unlock()
	if late {
		// Shutdown's time is up and it has closed every client's
		// connection (it waits for this one to end, which it now does
		// at its first read or write, not after WriteTimeout), or CLIENT
		// KILL closes it, and found it neither here nor with a goroutine.
		_ = nc.Close()
	}
	go l.s.serveConn(l.ctx, c)
}

// expire closes the clients idle for longer than IdleTimeout, and those
// that have not read their replies for longer than WriteTimeout.
func (l *loop) expire(now time.Time) {
	idle, wt := l.s.idleTimeout(), l.s.cfg.WriteTimeout
	var late []*conn
	l.mu.Lock()
	for _, c := range l.conns {
		if c.blocked && now.Sub(c.blockedAt) > wt || !c.blocked && idle > 0 && now.Sub(c.lastActive) > idle {
			late = append(late, c)
		}
	}
	l.mu.Unlock()
	for _, c := range late {
		l.drop(c)
	}
}

// drain closes the clients that are not blocked on their replies, and
// returns how many are left.
func (l *loop) drain() int {
	for _, c := range l.clientList() {
		if !c.blocked {
			l.drop(c)
		}
	}
	return l.clients()
}

// clientList returns the loop's clients.
func (l *loop) clientList() []*conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := make([]*conn, 0, len(l.conns))
	for _, c := range l.conns {
		cs = append(cs, c)
	}
	return cs
}

// closeAll closes every client of the loop, once it has written what it
// can of their replies without blocking.
func (l *loop) closeAll() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	for _, c := range l.clientList() {
		if c.waiting() > 0 && c.lp == l {
			l.write(c)
		}
		l.drop(c)
	}
}
