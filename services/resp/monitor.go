package resp

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// errMonitorKeyspace refuses a command on keys to a client in MONITOR
// mode, in Redis's words (a monitor is a kind of replica there).
const errMonitorKeyspace = "ERR Replica can't interact with the keyspace"

// monitors is the set of clients in MONITOR mode. Every command any client
// runs is offered to them as one line (see feed); n, read on every command,
// is all it costs while there are none.
type monitors struct {
	n   atomic.Int32
	mu  sync.RWMutex
	set map[*monitor]struct{}
}

// monitor is a client in MONITOR mode: the lines of the commands run since
// its writer last wrote, and the writer goroutine that writes them to its
// socket, under the connection's wmu as its own replies are.
//
// The slow-monitor rule: no command ever waits for a monitor. Its lines
// wait in a buffer of up to Config.MaxReplyBytes, and are written out by
// its goroutine, each write bounded by Config.WriteTimeout. A monitor
// whose buffer would pass that size, or that does not read for
// WriteTimeout, is disconnected: it never misses a line silently.
type monitor struct {
	c *conn

	mu     sync.Mutex
	buf    []byte // lines not yet taken by the writer
	kicked bool   // disconnected: nothing more is buffered

	wake chan struct{} // one token: lines wait
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the writer has returned
}

// monitorCmd serves MONITOR: from now on the client receives a line for
// every command run, in Redis's format, besides the replies to its own
// commands (which may not touch keys: see conn.run).
func (s *Server) monitorCmd(_ context.Context, c *conn, _ [][]byte) {
	if c.mon != nil {
		return // as Redis: a second MONITOR is ignored, without a reply
	}
	// The replies still queued for the socket leave first: from now on,
	// lines are written to it too, and the queue is not used.
	if c.nc != nil && !c.awaitWriter() {
		return // gone: the next read fails
	}
	m := &monitor{c: c, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	// Its +OK leaves before any line: the writer needs wmu to write.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mon = m
	c.monitoring.Store(true)
	s.mon.mu.Lock()
	if s.mon.set == nil {
		s.mon.set = make(map[*monitor]struct{})
	}
	s.mon.set[m] = struct{}{}
	s.mon.n.Add(1)
	s.mon.mu.Unlock()
	go m.write()
	c.ok()
	c.flushLocked()
}

// monitored reports whether MONITOR shows the command args: Redis shows
// every command that runs but the administrative ones (CONFIG, DEBUG,
// SAVE, SLOWLOG, MONITOR itself...), and CLIENT's administrative
// subcommands (KILL, LIST, NO-EVICT).
func monitored(cmd *command, args [][]byte) bool {
	if cmd.flags&flagAdmin != 0 {
		return false
	}
	if cmd.name == "client" && len(args) > 1 {
		for _, sub := range [...]string{"kill", "list", "no-evict"} {
			if equalFold(args[1], sub) {
				return false
			}
		}
	}
	return true
}

// feed offers the command args, which c has just run, to every monitor, as
// Redis's replicationFeedMonitors: the time, the database and the
// client's address, then each argument quoted, with AUTH's and HELLO's
// secrets redacted. The caller has checked that there are monitors.
func (s *Server) feed(c *conn, cmd *command, args [][]byte) {
	if !monitored(cmd, args) {
		return
	}
	line := c.monLine[:0]
	now := time.Now()
	line = append(line, '+')
	line = strconv.AppendInt(line, now.Unix(), 10)
	line = append(line, '.')
	usec := now.Nanosecond() / 1000
	for d := 100000; d > 1 && usec < d; d /= 10 {
		line = append(line, '0')
	}
	line = strconv.AppendInt(line, int64(usec), 10)
	line = append(line, " [0 "...)
	if c.unix {
		line = append(line, "unix:"...)
		line = append(line, c.laddr...)
	} else {
		line = append(line, c.addr...)
	}
	line = append(line, "] "...)
	// A line that would pass MaxReplyBytes alone (up to 4 bytes shown for
	// each byte sent: a request of 64 MiB could make 256 MiB, copied to
	// each monitor) shows the command as SLOWLOG keeps it: 32 arguments at
	// most, each cut to 128 bytes, with how many more there were.
	if len(line)+quotedLen(args) > s.cfg.MaxReplyBytes {
		for i, a := range keptArgs(cmd, args) {
			if i > 0 {
				line = append(line, ' ')
			}
			line = appendQuoted(line, []byte(a))
		}
	} else {
		secret := redacted(cmd, args)
		for i, a := range args {
			if i > 0 {
				line = append(line, ' ')
			}
			if secret(i) {
				line = append(line, `"(redacted)"`...)
			} else {
				line = appendQuoted(line, a)
			}
		}
	}
	line = append(line, "\r\n"...)
	if cap(line) > maxKeptMonLine {
		c.monLine = nil
	} else {
		c.monLine = line
	}
	s.mon.mu.RLock()
	for m := range s.mon.set {
		if m.c == c {
			// Its own command's line follows its reply, as in Redis:
			// both leave with its next write; but for QUIT, whose +OK
			// Redis writes alone before it closes.
			if !c.quit {
				c.out = append(c.out, line...)
			}
			continue
		}
		m.add(line)
	}
	s.mon.mu.RUnlock()
}

// maxKeptMonLine is the longest line buffer a connection keeps for the
// next command's (see feed): most lines are far shorter.
const maxKeptMonLine = 4 << 10

// quotedLen is how many bytes appendQuoted makes of args, with a space
// between two.
func quotedLen(args [][]byte) int {
	n := 0
	for _, a := range args {
		n += 3 // the quotes and the space
		for _, ch := range a {
			switch {
			case ch == '\\' || ch == '"' || ch == '\n' || ch == '\r' || ch == '\t' || ch == '\a' || ch == '\b':
				n += 2
			case ch >= 0x20 && ch <= 0x7e:
				n++
			default:
				n += 4
			}
		}
	}
	return n
}

// appendQuoted appends b to dst quoted as Redis's sdscatrepr quotes it: in
// double quotes, with \\, \", \n, \r, \t, \a and \b escaped, and every
// other byte outside printable ASCII as \xHH.
func appendQuoted(dst, b []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, ch := range b {
		switch ch {
		case '\\', '"':
			dst = append(dst, '\\', ch)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\a':
			dst = append(dst, '\\', 'a')
		case '\b':
			dst = append(dst, '\\', 'b')
		default:
			if ch >= 0x20 && ch <= 0x7e {
				dst = append(dst, ch)
			} else {
				dst = append(dst, '\\', 'x', hex[ch>>4], hex[ch&0xf])
			}
		}
	}
	return append(dst, '"')
}

// add buffers one line for the writer, or disconnects the monitor if the
// lines waiting would pass MaxReplyBytes.
func (m *monitor) add(line []byte) {
	m.mu.Lock()
	if m.kicked {
		m.mu.Unlock()
		return
	}
	if len(m.buf)+len(line) > m.c.s.cfg.MaxReplyBytes {
		m.buf = nil
		m.mu.Unlock()
		m.kick("its unread lines passed " + strconv.Itoa(m.c.s.cfg.MaxReplyBytes) + " bytes (--max-reply-bytes)")
		return
	}
	m.buf = append(m.buf, line...)
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default: // the writer has been woken already
	}
}

// write is the monitor's writer goroutine: it writes the buffered lines,
// as many as have come each time, until stop.
func (m *monitor) write() {
	defer close(m.done)
	c := m.c
	var chunk []byte
	for {
		select {
		case <-m.wake:
		case <-m.quit:
			return
		}
		m.mu.Lock()
		chunk, m.buf = m.buf, chunk[:0]
		m.mu.Unlock()
		if len(chunk) == 0 {
			continue
		}
		c.wmu.Lock()
		if hook := c.s.cfg.testHookMonitorWrite; hook != nil {
			hook()
		}
		err := c.writeLocked(chunk)
		c.wmu.Unlock()
		if cap(chunk) > 4*flushAt {
			chunk = nil // a large buffer is not kept for the next lines
		}
		var ne net.Error
		switch {
		case err == nil:
			continue
		case errors.As(err, &ne) && ne.Timeout():
			m.kick("it did not read its lines in time")
		default: // gone: it left, or CLIENT KILL closed it; not a slow one
			m.mu.Lock()
			m.kicked, m.buf = true, nil // nothing more is buffered for it
			m.mu.Unlock()
			_ = c.nc.Close()
		}
		return
	}
}

// kick disconnects a monitor that falls behind.
func (m *monitor) kick(why string) {
	m.mu.Lock()
	already := m.kicked
	m.kicked, m.buf = true, nil
	m.mu.Unlock()
	if already {
		return
	}
	c := m.c
	if !c.killed.Load() { // else CLIENT KILL closed it: the operator's doing
		c.s.monitorsKicked.Add(1)
		c.s.log.Warn("resp: disconnecting a slow MONITOR client: "+why, "client", c.addr, "id", c.id)
	}
	_ = c.nc.Close()
}

// stop takes the client out of MONITOR mode (RESET, or its end) and waits
// for its writer. It returns the lines the writer had not taken: RESET
// writes them before its reply, as Redis does (its lines wait in the reply
// buffer ahead of +RESET), where a client that leaves drops them.
func (m *monitor) stop() []byte {
	s := m.c.s
	s.mon.mu.Lock()
	if _, ok := s.mon.set[m]; ok {
		delete(s.mon.set, m)
		s.mon.n.Add(-1)
	}
	s.mon.mu.Unlock()
	close(m.quit)
	<-m.done
	m.c.monitoring.Store(false)
	m.mu.Lock()
	defer m.mu.Unlock()
	rest := m.buf // nil if it was kicked
	m.buf, m.kicked = nil, true
	return rest
}
