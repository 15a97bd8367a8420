package resp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kvproject/kv/bucket"
	"github.com/tidwall/redcon"
)

const (
	initialReadBuf = 16 << 10 // a client's read buffer to start with
	maxKeptReadBuf = 64 << 10 // a larger buffer is released once drained
	flushAt        = 64 << 10 // replies are written out once this many are waiting
	maxInline      = 64 << 10 // longest inline (telnet) command, as Redis
	maxKeptArgs    = 4096     // a larger argument vector is released after use
	maxPending     = 1024     // replies are written out once this many writes await the disk
	// The longest request of a client that has not authenticated (when a
	// password is set): AUTH and HELLO need far less, and a stranger must
	// not make the server buffer MaxRequestBytes. Redis allows 10
	// arguments of 16 KiB before AUTH.
	maxUnauthRequest = 10 * (16<<10 + 32)
)

// maxProtoBulkLen is Redis's default proto-max-bulk-len: a longer bulk
// length is a protocol error as soon as its line is read.
const maxProtoBulkLen = 512 << 20

// conn is one client. The event loop (Linux) or the client's own
// goroutine reads, runs and replies; while the client is subscribed, the
// event subscription's goroutine writes to it too, under wmu.
type conn struct {
	s *Server
	// nc is the client's connection while it has a goroutine of its own;
	// nil while the event loop serves it. Set under s.mu.
	nc      net.Conn
	id      int64
	addr    string
	laddr   string
	created time.Time

	// home is the event loop that took the client, if one did, and homeFD
	// the socket it took: set once, under s.mu and the loop's mu. killed
	// says that CLIENT KILL closes it (see Server.kill).
	home   *loop
	homeFD int32
	killed atomic.Bool

	// Owned by the event loop while it serves the client (lp != nil).
	lp         *loop
	fd         int       // the socket
	blocked    bool      // replies wait for the socket to take them (EPOLLOUT)
	closing    bool      // close once the replies are written
	eof        bool      // the client shut its side while blocked: not read until its replies are out
	held       bool      // blocked, a command that needs a goroutine of its own waits: not read meanwhile
	backlog    bool      // blocked, complete commands wait in buf for MaxReplyBytes of replies to leave: not read meanwhile
	lastActive time.Time // last read, or last blocked reply taken: for the idle timeout
	blockedAt  time.Time // while blocked, when the socket last took a reply: for the write timeout
	readyEvent uint32    // the events of the current wake-up
	watched    uint32    // the events the loop waits for on the socket
	outOff     int       // out[:outOff] is written (while blocked)
	// While blocked, the replies that wait before out[outOff:], set
	// aside in pieces of flushAt or more (see queueOut); empty otherwise.
	queued    [][]byte
	queuedLen int // bytes in queued

	// Owned by the connection's goroutine.
	buf        []byte // read buffer: buf[start:end] is not parsed yet
	start, end int
	args       [][]byte
	out        []byte // replies waiting to be written
	pending    []pendingReply
	scratch    []byte
	failed     bool // the reply being written is an error
	rejected   bool // the command was refused before it ran (its arity, AUTH...)
	// uncounted: INFO errorstats skips the error being written, as one
	// reply with another error that is counted (an EXEC refused, which
	// abortExec answers EXECABORT; a transaction's error reply dropped
	// for its length: see execTx).
	uncounted bool
	txShared  bool // the command runs under the transactions' read lock, taken for it alone (exec)
	// When the previous command of the current run ended, on the
	// connection's clock (see since); 0: no command has run since the
	// last read or write, so the next one reads the clock to start.
	lastEnd time.Duration
	// staleDeadline: the read deadline is one CONFIG SET timeout moved to
	// wake the client (see Server.retime); serve sets it again.
	staleDeadline bool
	quit          bool // close once the replies are written
	authed        bool
	// resp3: the client chose RESP3 with HELLO 3 (RESET or HELLO 2 goes
	// back to RESP2). Written by the connection's goroutine (setProto);
	// a subscription's goroutine reads it under the subscriber's mu to
	// frame the events.
	resp3   bool
	ps      *subscriber  // non-nil while subscribed
	mon     *monitor     // non-nil in MONITOR mode
	monLine []byte       // the line feed builds for the monitors
	unix    bool         // connected over a Unix socket (MONITOR shows its path)
	multi   *transaction // non-nil between MULTI and EXEC or DISCARD
	watches *watchSet    // the keys WATCH watches (nil: none)
	// For CLIENT LIST's multi: 1 + the commands queued while in a
	// transaction, 0 out of one.
	inMulti atomic.Int32

	// A multibulk request at buf[start:] not complete yet, and how far its
	// arguments have been read (offsets from start): it is read on from
	// there as the rest comes, not parsed again from its start at each
	// read (see partialMore). partialCount 0: none. Owned by the
	// connection's goroutine.
	partialCount, partialArgs int
	partialOff                int // where the next argument's "$" line starts
	partialSeen               int // how much of that line has been looked at, without a '\n'

	infoMu  sync.Mutex // guards name, libName, libVer, proto3: CLIENT and INFO read them
	name    string
	libName string
	libVer  string
	proto3  bool // resp3's copy, for CLIENT LIST and CLIENT INFO

	// When the read and write deadlines must next be pushed back; setting
	// a deadline is not free, so it is renewed only every eighth of its
	// timeout, with that eighth as slack: a client is closed between 1 and
	// 1.125 timeouts after its last activity. writeRenew is guarded by wmu.
	readRenew  time.Time
	writeRenew time.Time
	// waitFrom: when (see since) the client's goroutine last began to
	// wait for a request under an idle timeout, its replies written.
	waitFrom time.Duration

	commands atomic.Int64
	// When the client last sent something, on the connection's clock (see
	// since), for CLIENT LIST's idle: what Redis counts from.
	lastRead atomic.Int64
	channels atomic.Int32 // SUBSCRIBE channels, for CLIENT LIST and INFO
	patterns atomic.Int32 // PSUBSCRIBE patterns
	subs     atomic.Int32 // channels + patterns
	// monitoring mirrors mon != nil for CLIENT LIST, on other goroutines.
	monitoring atomic.Bool
	wmu        sync.Mutex // serializes writes to nc
	wq         writeQueue // replies its socket could not take yet (a goroutine of its own)

	// lastWritten, guarded by wmu: the client's last replies are written
	// and it is being closed (flushLast), or a write to a subscriber or
	// monitor failed, maybe partway (a timeout), and it is being closed: a
	// subscription's or a monitor's goroutine, or its own, writes nothing
	// more to it (bytes after a cut message would read as its rest).
	lastWritten bool
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		s:       s,
		nc:      nc,
		id:      s.nextID.Add(1),
		addr:    nc.RemoteAddr().String(),
		laddr:   nc.LocalAddr().String(),
		fd:      -1,
		created: time.Now(),
		buf:     make([]byte, initialReadBuf),
		authed:  s.cfg.Password == "",
		unix:    nc.LocalAddr().Network() == "unix",
	}
}

// interrupt wakes a connection blocked waiting for a request, so that it
// sees the server stopping. A connection running a command finishes it,
// writes its replies and then stops.
func (c *conn) interrupt() {
	if c.nc != nil { // else the event loop stops it
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// parseCommand is redcon.ReadNextCommand made safe and made Redis's: redcon
// panics on some malformed bulk lengths, which must cost the client its
// connection, not the server; it reads a request that starts with '$'
// as Tile38's protocol (waiting for a space that may never come), where
// Redis reads every request that does not start with '*' as an inline
// command; and it refuses a negative multibulk count ("*-1\r\n"), which
// Redis skips as an empty request (see negativeCount).
func parseCommand(b []byte, argsbuf [][]byte) (complete bool, args [][]byte, left []byte, perr error) {
	if n, err := negativeCount(b); err != nil {
		return false, argsbuf[:0], b, err
	} else if n > 0 {
		return true, argsbuf[:0], b[n:], nil
	}
	dollar := len(b) > 0 && b[0] == '$'
	if dollar {
		// Out of the way while redcon's inline reader runs; the command's
		// first word starts at b[0], and gets its '$' back below.
		b[0] = 'x'
	}
	defer func() {
		if dollar {
			b[0] = '$'
		}
		if r := recover(); r != nil {
			complete, args, left, perr = false, argsbuf[:0], b, errInvalidBulkLength
		}
	}()
	complete, args, _, left, perr = redcon.ReadNextCommand(b, argsbuf)
	if dollar && complete && len(args) > 0 {
		args[0][0] = '$' // a copy of the word, or b itself
	}
	return complete, args, left, perr
}

// maxCountLine is the longest multibulk count line with a number Redis
// reads: "*-9223372036854775808\r\n".
const maxCountLine = 23

// negativeCount reads a multibulk count line that starts with "*-". Redis
// reads the count with string2ll and skips a line with a negative count
// ("*-1\r\n", "*-5\r\n") as an empty request, where redcon refuses it; so a
// whole line whose count is a negative number to string2ll ('-', a first
// digit of 1 to 9, more digits, within int64) gives its length, to be
// skipped. Any other whole line of up to maxCountLine bytes gives Redis's
// error, "*-0\r\n" included (string2ll refuses "-0", where redcon reads a
// count of 0). A line not whole yet, a longer one, or one that does not
// start with "*-" gives 0 and nil: redcon reads it (it waits for the rest
// of a line, and refuses a longer line's count unless it is all zeros).
func negativeCount(b []byte) (int, error) {
	if len(b) < 2 || b[0] != '*' || b[1] != '-' {
		return 0, nil
	}
	nl := bytes.IndexByte(b[:min(len(b), maxCountLine)], '\n')
	if nl < 0 {
		return 0, nil
	}
	if b[nl-1] != '\r' {
		return 0, errInvalidMultibulkLength
	}
	if n, ok := parseInt(b[1 : nl-1]); !ok || n >= 0 {
		return 0, errInvalidMultibulkLength
	}
	return nl + 1, nil
}

// isHTTPWord reports whether a command's name is "POST" or "Host:", in
// any case: the first word of an HTTP request line or header.
func isHTTPWord(name []byte) bool {
	return bytes.EqualFold(name, []byte("post")) || bytes.EqualFold(name, []byte("host:"))
}

type protocolError string

func (e protocolError) Error() string { return string(e) }

const (
	errInvalidBulkLength = protocolError("Protocol error: invalid bulk length")
	// errInvalidMultibulkLength is redcon's error for a bad count, worded
	// as Redis's.
	errInvalidMultibulkLength = protocolError("Protocol error: invalid multibulk length")
	errTooLarge               = protocolError("Protocol error: request too large")
	errTooBigInline           = protocolError("Protocol error: too big inline request")
	errUnauthTooLarge         = protocolError("Protocol error: unauthenticated request too large")
	// Redis's words for a count or length line that goes on past 64 KiB.
	errTooBigCount     = protocolError("Protocol error: too big mbulk count string")
	errTooBigBulkCount = protocolError("Protocol error: too big bulk count string")
)

// step is what a client's buffered commands leave to do.
type step int

const (
	stepRead    step = iota // read more (or, in the loop, write a blocked reply first)
	stepClose               // write the replies, then close (QUIT, a protocol error)
	stepGone                // the client is gone: a write failed, or CLIENT KILL closed it
	stepHandoff             // the event loop hands the client to a goroutine of its own
)

// runBuffered runs the complete commands in the read buffer. Under the
// event loop, it stops at a command that must run on a goroutine of its
// own (flagOwnGoroutine, and flagLong outside a transaction: the command
// stays in the buffer; while the client's replies wait for its socket, it
// is held until they are out), and, while the replies wait, once
// MaxReplyBytes of them do.
func (c *conn) runBuffered(ctx context.Context) step {
	c.held, c.backlog = false, false
	for c.start < c.end {
		if c.killed.Load() {
			// What it sent, and the server had not read or run when
			// CLIENT KILL answered, does not run: as Redis frees a
			// killed client with its unread input.
			return stepGone
		}
		if c.partialCount > 0 {
			done, err := c.partialMore()
			if err != nil {
				c.protocolErr(err)
				return stepClose
			}
			if !done {
				break // its arguments are not all here yet
			}
		}
		complete, args, left, err := parseCommand(c.buf[c.start:c.end], c.args)
		if err != nil {
			c.protocolErr(err)
			return stepClose
		}
		if !complete {
			if err := c.partialStart(); err != nil {
				c.protocolErr(err)
				return stepClose
			}
			break
		}
		c.args = args
		if len(args) == 0 {
			c.start = c.end - len(left)
			continue
		}
		cmd := c.s.lookup(args[0])
		if cmd == nil && isHTTPWord(args[0]) {
			// A web page can make a browser send an HTTP request here,
			// with commands in its body: Redis's defence against this
			// cross-protocol scripting, closing without a reply.
			c.s.log.Warn("resp: an HTTP request line or header (POST, Host:) came in; "+
				"possibly a web page attacking through a browser; closing", "client", c.addr)
			c.start = c.end
			return stepClose
		}
		if c.lp != nil && cmd != nil && cmd.flags&(flagOwnGoroutine|flagLong) != 0 && c.multi == nil {
			if c.blocked {
				// Handed off once the replies before it are out; what the
				// client sends meanwhile is not read (it would pile up
				// behind it), as on a goroutine of its own.
				c.held = true
				return stepRead
			}
			return stepHandoff
		}
		c.start = c.end - len(left)
		c.exec(ctx, cmd, args)
		switch {
		case c.quit:
			return stepClose
		case len(c.out)-c.outOff < flushAt && len(c.pending) < maxPending:
			// more to run before the replies go out
		case c.lp != nil:
			// While the client's socket is full (blocked), its commands
			// run on and their replies wait with the others, up to
			// MaxReplyBytes: a client library writes a whole pipeline
			// before it reads a reply, and would otherwise wait for the
			// server to read while the server waits for it to read.
			if c.blocked && len(c.pending) == 0 {
				c.queueOut()
			} else if (!c.blocked || len(c.pending) >= maxPending) && !c.lp.write(c) && c.lp == nil {
				return stepGone // dropped already
			}
			if c.blocked && c.waiting() >= c.s.cfg.MaxReplyBytes {
				// The rest waits until the client reads; nothing more
				// is read meanwhile, or the commands read and not run
				// would pile up behind them.
				c.backlog = c.start < c.end
				return stepRead
			}
		case !c.flush():
			return stepGone
		}
	}
	return stepRead
}

// serve runs the client on its goroutine until it leaves, breaks the
// protocol, idles out or the server stops.
func (c *conn) serve(ctx context.Context) {
	defer c.close()
	s := c.s
	// Before the close: a command's panic is logged while its client is
	// still connected (the socket fuzzers read until the close, then look
	// for the record).
	defer s.survive(c)
	for {
		switch c.runBuffered(ctx) {
		case stepClose:
			c.flushLast()
			return
		case stepGone:
			return
		}
		if len(c.out) > 0 {
			// Let the other clients that the same network poll woke run
			// their requests first, so that the replies leave together,
			// as Redis writes its replies once per event loop: a client
			// that waits on many connections (a load generator, a
			// proxy) then wakes once for many replies rather than once
			// for each. Under redis-benchmark -P 16 that cut its context
			// switches tenfold and raised kv's throughput by 10 to 15%.
			runtime.Gosched()
			if !c.flush() {
				return
			}
		}
		if cap(c.args) > maxKeptArgs {
			c.args = nil
		}
		if !c.makeRoom() {
			c.flushLast()
			return
		}

		// Wait for more. The deadline is set before the stopping check, so
		// that a shutdown's interrupt cannot be overwritten unseen.
		// The timeout is read and the deadline set under wq.mu, as
		// Server.retime wakes the client: a CONFIG SET timeout either
		// comes first (and is read here) or wakes the client after.
		c.wq.mu.Lock()
		switch idle := s.idleTimeout(); {
		case c.ps != nil, c.mon != nil: // as Redis, which times out neither
			_ = c.nc.SetReadDeadline(time.Time{})
			c.readRenew = time.Time{}
		case idle <= 0:
			if c.staleDeadline { // CONFIG SET timeout 0 woke it
				_ = c.nc.SetReadDeadline(time.Time{})
			}
		case c.wq.active:
			// Its replies wait for it: the client is not idle. The
			// writer sets the deadline once they are out.
			_ = c.nc.SetReadDeadline(time.Time{})
			c.readRenew = time.Time{}
		default:
			now := time.Now()
			// Its idle time counts from now, not from the read of its
			// last command (which may have run for long): see idleOut.
			c.waitFrom = now.Sub(c.created)
			if now.After(c.readRenew) {
				_ = c.nc.SetReadDeadline(now.Add(idle + idle/8))
				c.readRenew = now.Add(idle / 8)
			}
		}
		c.wq.mu.Unlock()
		c.staleDeadline = false
		if s.stopping.Load() {
			return
		}
		c.lastEnd = 0 // nor the wait for its request
		n, err := c.nc.Read(c.buf[c.end:])
		c.end += n
		if err != nil && n == 0 {
			var ne net.Error
			if s.stopping.Load() || !errors.As(err, &ne) || !ne.Timeout() || c.idleOut() {
				return
			}
			// CONFIG SET timeout woke it (see Server.retime), and by the
			// timeout now in force it is not idle: it waits on, under a
			// deadline set anew.
			c.readRenew, c.staleDeadline = time.Time{}, true
			continue
		}
		c.lastRead.Store(int64(c.since()))
	}
}

// partialStart notes how far the multibulk request at buf[start:], which
// parseCommand found incomplete (without an error), has come, so that the
// next reads go on from there (partialMore) rather than parse it again from
// its start: a request of n arguments coming one at a time would otherwise
// cost O(n²), on the event loop's time, which every client shares. A
// count line longer than maxInline without its end is an error, as in
// Redis (the parse of each read would otherwise scan it again, up to
// MaxRequestBytes).
func (c *conn) partialStart() error {
	b := c.buf[c.start:c.end]
	if len(b) == 0 || b[0] != '*' {
		return nil // an inline command: at most maxInline bytes
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 && len(b) > maxInline {
		return errTooBigCount
	}
	if nl < 2 || b[nl-1] != '\r' {
		return nil // the count line is not whole yet
	}
	count, err := strconv.Atoi(str(b[1 : nl-1])) // as redcon reads it
	if err != nil || count <= 0 {
		return nil
	}
	c.partialCount, c.partialArgs, c.partialOff, c.partialSeen = count, 0, nl+1, 0
	_, err = c.partialMore()
	return err
}

// partialMore reads on the arguments of the request at buf[start:] from
// where the previous read stopped, as redcon's ReadNextCommand reads them;
// it reports false while the request is still incomplete. It reports true
// (and forgets the request) once its last argument is whole, or at
// anything redcon would refuse or that it does not check itself: the
// caller then parses the request from its start, once, which gives
// redcon's arguments or error. A length line longer than maxInline
// without its end is an error, as in Redis.
func (c *conn) partialMore() (done bool, err error) {
	b := c.buf[c.start:c.end]
	for c.partialArgs < c.partialCount {
		i := c.partialOff
		if i == len(b) {
			return false, nil
		}
		if b[i] != '$' {
			break // redcon's error
		}
		nl := bytes.IndexByte(b[i+1+c.partialSeen:], '\n')
		if nl < 0 {
			if len(b)-(i+1) > maxInline {
				c.partialCount = 0
				return true, errTooBigBulkCount
			}
			c.partialSeen = len(b) - (i + 1) // not looked at again
			return false, nil
		}
		nl += i + 1 + c.partialSeen
		if b[nl-1] != '\r' {
			break
		}
		n, err := strconv.Atoi(str(b[i+1 : nl-1]))
		if err != nil || n < 0 {
			break // redcon's error: it tells
		}
		if n > maxProtoBulkLen {
			// Redis's answer; redcon would wait for data that never
			// comes (the request would be cut at MaxRequestBytes).
			c.partialCount = 0
			return true, errInvalidBulkLength
		}
		if len(b)-(nl+1) < n+2 {
			c.partialSeen = nl - (i + 1) // the line is whole: only the data is missing
			return false, nil
		}
		if b[nl+1+n] != '\r' || b[nl+2+n] != '\n' {
			break
		}
		c.partialArgs++
		c.partialOff, c.partialSeen = nl+1+n+2, 0
	}
	c.partialCount = 0
	return true, nil
}

// makeRoom prepares the read buffer for the next read: it compacts or
// grows it, releases a large one once drained, and enforces the request
// size limits. It reports false when the client must be disconnected
// (once the error reply it wrote is sent).
func (c *conn) makeRoom() bool {
	pending := c.end - c.start
	if pending == 0 {
		c.start, c.end = 0, 0
		if len(c.buf) > maxKeptReadBuf {
			c.buf = make([]byte, initialReadBuf)
		}
		return true
	}
	if c.held || c.backlog {
		// Complete commands wait in the buffer (the client is not read
		// until they have run): they are not one request past the
		// limits, and need no room.
		return true
	}
	if c.buf[c.start] != '*' && pending >= maxInline {
		c.protocolErr(errTooBigInline)
		return false
	}
	if pending >= c.s.cfg.MaxRequestBytes {
		c.protocolErr(errTooLarge)
		return false
	}
	if !c.authed && pending >= maxUnauthRequest {
		c.protocolErr(errUnauthTooLarge)
		return false
	}
	if c.end < len(c.buf) {
		return true
	}
	if c.start > 0 {
		copy(c.buf, c.buf[c.start:c.end])
		c.start, c.end = 0, pending
		if pending < len(c.buf)/2 {
			return true
		}
	}
	grown := make([]byte, 2*len(c.buf))
	copy(grown, c.buf[c.start:c.end])
	c.buf = grown
	return true
}

// waiting is how many bytes of replies wait for the client's socket.
func (c *conn) waiting() int { return c.queuedLen + len(c.out) - c.outOff }

// queueOut sets the replies in out aside, behind those queued already,
// while the event loop's client is blocked and none of them waits for the
// disk (their offsets in out are then no one's), and lets out start again
// empty. The replies kept for a client that does not read are then each
// copied once: growing out for each new one copied every one before it
// again (64 replies of 1 MiB, not read, took the loop 0.4 to 1.7 s, every
// other client of the loop waiting).
func (c *conn) queueOut() {
	if c.outOff == len(c.out) {
		return
	}
	c.queued = append(c.queued, c.out[c.outOff:])
	c.queuedLen += len(c.out) - c.outOff
	c.out, c.outOff = nil, 0
}

// protocolErr answers a protocol error; the client is closed once it is
// written.
func (c *conn) protocolErr(err error) {
	c.err("ERR " + err.Error())
}

// flush writes the waiting replies; it reports false when the client is
// gone.
func (c *conn) flush() bool {
	if len(c.out) == 0 {
		return true
	}
	// The wait for the disk comes first, outside wmu: meanwhile a
	// subscriber's events go on being written (a RESP3 subscriber's
	// commands may write). The replies and their pending writes are the
	// connection's alone.
	c.settle()
	c.wmu.Lock()
	ok := c.flushLocked()
	c.wmu.Unlock()
	return ok
}

// flushLast writes the replies of a client about to be closed (QUIT, a
// protocol error, CLIENT KILL of itself): nothing is written after them,
// as Redis writes nothing more to a client it closes after its reply (an
// event or a MONITOR line that comes meanwhile is dropped).
func (c *conn) flushLast() {
	c.settle()
	c.wmu.Lock()
	c.flushLocked()
	c.lastWritten = true
	c.wmu.Unlock()
}

// writeLocked writes b to a subscriber or monitor, under its write
// deadline, with c.wmu held: its replies, events or MONITOR lines. Once
// its last reply is written, or a write failed (maybe partway), it writes
// nothing more and returns nil (see lastWritten).
func (c *conn) writeLocked(b []byte) error {
	if c.lastWritten {
		return nil
	}
	c.writeDeadline()
	_, err := c.nc.Write(b)
	c.lastWritten = err != nil
	return err
}

// flushLocked is flush with c.wmu held; only the connection's goroutine
// calls it.
func (c *conn) flushLocked() bool {
	c.lastEnd = 0 // the next command's latency does not include this write
	c.settle()
	if len(c.out) == 0 {
		return true
	}
	var ok bool
	if c.ps == nil && c.mon == nil {
		ok = c.send()
	} else {
		// A subscriber's replies and events (a monitor's replies and
		// lines) share the socket under wmu, in order: the write queue
		// was emptied when it subscribed.
		ok = !c.lastWritten && c.writeLocked(c.out) == nil
	}
	if cap(c.out) > 4*flushAt {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	return ok
}

// writeQueue holds the replies of a client on a goroutine of its own that
// its socket could not take: a writer goroutine writes them while the
// client's goroutine reads and runs its next commands, and queues their
// replies behind, up to MaxReplyBytes. Client libraries send a pipeline
// whole before they read its replies: a client whose replies fill its
// socket then waits for the server to read, and a server that stopped
// reading until it could write would wait for the client for ever (up to
// WriteTimeout). Redis reads on too, and keeps the replies.
type writeQueue struct {
	mu sync.Mutex
	// The replies the writer has not taken yet: each a c.out that the
	// client's goroutine gave up (it starts another), so that each reply
	// is copied once however many wait (appending them all to one
	// buffer copied every reply before it at each growth: about 5 times
	// their size).
	buf      [][]byte
	queued   int             // bytes in buf
	inflight int             // bytes the writer has taken and not written yet
	active   bool            // a writer goroutine runs
	done     chan struct{}   // closed when the active writer ends
	err      error           // the writer's write failed: the client is gone
	raw      syscall.RawConn // the connection's, for writeNow (the client's goroutine's own)
	doneAt   time.Duration   // when (see conn.since) the last writer wrote the last reply
	// room, while the client's goroutine waits for the queue to shrink
	// below MaxReplyBytes, is closed by the writer once it has.
	room chan struct{}
}

// send writes c.out as far as the socket takes it now, and leaves the rest
// to the writer goroutine; behind replies the writer has not written yet,
// it queues c.out. When MaxReplyBytes of replies wait, queued or being
// written, it waits for the writer to bring them below that: nothing more
// is read meanwhile. It reports false when the client is gone.
func (c *conn) send() bool {
	q := &c.wq
	q.mu.Lock()
	if q.active {
		q.queued += len(c.out)
		if n := len(q.buf); n > 0 && len(q.buf[n-1]) < flushAt && len(c.out) < flushAt {
			// Small replies join the last piece while it is small (the
			// queue's own: the writer has not taken it), and c.out stays
			// the client's: a piece for each (a client that sends one
			// command at a time) kept a slice header and an allocation
			// per reply, 5 times the 7 bytes of a "+PONG\r\n" that
			// MaxReplyBytes counts, and cost the writer a write each.
			q.buf[n-1] = append(q.buf[n-1], c.out...)
		} else {
			q.buf = append(q.buf, c.out)
			c.out = nil
		}
		for q.active && q.err == nil && q.queued+q.inflight >= c.s.cfg.MaxReplyBytes {
			room := make(chan struct{})
			q.room = room
			q.mu.Unlock()
			<-room
			q.mu.Lock()
		}
		err := q.err
		q.mu.Unlock()
		return err == nil
	}
	err := q.err
	q.mu.Unlock()
	if err != nil {
		return false
	}
	c.writeDeadline() // a raw write fails at once if the deadline has passed
	n, err := writeNow(c.nc, &c.wq.raw, c.out)
	if err != nil {
		return false
	}
	if n == len(c.out) {
		return true
	}
	q.mu.Lock()
	q.buf = append(q.buf[:0], c.out[n:])
	q.queued = len(c.out) - n
	c.out = nil
	q.active, q.done = true, make(chan struct{})
	q.mu.Unlock()
	go c.writeQueued()
	return true
}

// writeQueued is the writer goroutine: it writes the queued replies until
// none are left, each write bounded by WriteTimeout (so a client that
// takes its replies slowly, but takes them, is not cut off); on a failure
// it closes the connection, which ends the client's goroutine.
func (c *conn) writeQueued() {
	q := &c.wq
	var taken [][]byte
	for {
		q.mu.Lock()
		q.inflight = 0
		if len(q.buf) == 0 || q.err != nil {
			q.active = false
			q.wake()
			// Nothing of the replies stays for the rest of the client's
			// life (after a failure, none of them is written).
			q.buf, q.queued = nil, 0
			q.doneAt = c.since()
			if idle := c.s.idleTimeout(); idle > 0 && q.err == nil {
				// The replies are out: the client's idle time counts from
				// now (its goroutine waits without a deadline meanwhile);
				// a stop's interrupt must not be overwritten unseen.
				_ = c.nc.SetReadDeadline(time.Now().Add(idle + idle/8))
				if c.s.stopping.Load() {
					c.interrupt()
				}
			}
			close(q.done)
			q.mu.Unlock()
			return
		}
		taken, q.buf = q.buf, taken[:0]
		q.inflight, q.queued = q.queued, 0
		q.mu.Unlock()
		if !c.writeTaken(taken) {
			_ = c.nc.Close()
		}
		clear(taken) // written: the replies are no one's
	}
}

// writeTaken writes the replies the writer took from the queue, in pieces
// of flushAt; it reports false once a write fails (q.err says why).
func (c *conn) writeTaken(taken [][]byte) bool {
	q := &c.wq
	for _, chunk := range taken {
		for off := 0; off < len(chunk); {
			end := min(len(chunk), off+flushAt)
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
			n, err := c.nc.Write(chunk[off:end])
			off += n
			q.mu.Lock()
			q.inflight -= n
			if err != nil {
				q.err = err
			}
			if q.room != nil && (err != nil || q.queued+q.inflight < c.s.cfg.MaxReplyBytes) {
				q.wake()
			}
			q.mu.Unlock()
			if err != nil {
				return false
			}
		}
	}
	return true
}

// wake lets the client's goroutine, if it waits in send, look at the
// queue again. Called with q.mu held.
func (q *writeQueue) wake() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// awaitWriter waits until the writer goroutine, if one runs, has written
// every queued reply (or failed); it reports false if the client is gone.
func (c *conn) awaitWriter() bool {
	q := &c.wq
	q.mu.Lock()
	active, done := q.active, q.done
	q.mu.Unlock()
	if active {
		<-done
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err == nil
}

// pendingReply is the reply, in out[start:end], to a write that may not be
// durable yet: it is sent only once the write is, and becomes an error reply
// if the write fails. A pipeline of writes thus waits for the disk once, not
// once per write, while every reply still follows its write's durability.
// A reply may answer several writes (DEL of several keys): each has its
// own pendingReply with the same range, and the reply becomes one error if
// any fails.
type pendingReply struct {
	p          bucket.Pending
	start, end int
	err        error
	// The command, observed once its write has settled (with an
	// observer): its latency includes the wait for the disk, and it
	// counts as failed if the write fails.
	cmd   string
	stats *cmdStats     // nil: counted nowhere
	begin time.Duration // on the connection's clock
}

// awaiting marks the reply written into c.out since start as the answer to
// the write p: it must not leave before p is durable.
func (c *conn) awaiting(p bucket.Pending, start int) {
	if p.IsZero() {
		return
	}
	c.pending = append(c.pending, pendingReply{p: p, start: start, end: len(c.out)})
}

// settle waits for every pending write to be durable, and replaces the
// reply of each one that failed with its error. Only the connection's
// goroutine calls it, before its replies are written.
func (c *conn) settle() {
	if len(c.pending) == 0 {
		return
	}
	failed := false
	for i := range c.pending {
		pr := &c.pending[i]
		var err error
		if c.lp != nil {
			err = pr.p.WaitGathered() // the loop has run every ready client's commands
		} else {
			err = pr.p.Wait()
		}
		if err != nil {
			pr.err = err
			failed = true
		}
		if pr.cmd != "" && c.s.obs != nil {
			c.s.observeSettled(pr.stats, pr.cmd, c.since()-pr.begin, pr.err != nil)
		}
	}
	if failed {
		replies := c.out
		c.out = make([]byte, 0, len(replies))
		last := 0
		for _, pr := range c.pending {
			if pr.err == nil || pr.start < last {
				continue // durable, or its reply replaced already
			}
			c.out = append(c.out, replies[last:pr.start]...)
			c.writeErr(pr.err)
			last = pr.end
		}
		c.out = append(c.out, replies[last:]...)
	}
	clear(c.pending)
	c.pending = c.pending[:0]
}

// writeDeadline pushes the write deadline back when it is due; c.wmu is
// held.
func (c *conn) writeDeadline() {
	wt := c.s.cfg.WriteTimeout
	if now := time.Now(); now.After(c.writeRenew) {
		_ = c.nc.SetWriteDeadline(now.Add(wt + wt/8))
		c.writeRenew = now.Add(wt / 8)
	}
}

// close ends the client: the socket first (which unblocks an event write
// in progress), then its subscription.
func (c *conn) close() {
	c.settle() // every pending write is waited for, answered or not
	c.awaitWriter()
	discardUnread(c.nc)
	_ = c.nc.Close()
	if c.ps != nil {
		c.ps.stop()
		c.ps = nil
	}
	if c.mon != nil {
		c.mon.stop()
		c.mon = nil
	}
}

// idleOut reports whether the client, on a goroutine of its own (which
// calls it), has been idle for the idle timeout now in force: nothing read
// from it, no command of its run and no reply of its written for that
// long, and no reply of its still being written. Subscribers and monitors
// never are.
func (c *conn) idleOut() bool {
	idle := c.s.idleTimeout()
	if idle <= 0 || c.ps != nil || c.mon != nil { // subscribers and monitors never idle out
		return false
	}
	c.wq.mu.Lock()
	writing, wrote := c.wq.active, c.wq.doneAt
	c.wq.mu.Unlock()
	last := max(time.Duration(c.lastRead.Load()), c.waitFrom, wrote)
	return !writing && c.since()-last >= idle
}

// since returns the time since the connection was made, on the monotonic
// clock: one clock read, where time.Now takes two.
func (c *conn) since() time.Duration { return time.Since(c.created) }

// mayWait tells the event loop, if c is one of its clients, that the
// command is about to wait for another goroutine (see loop.letGo).
func (c *conn) mayWait() {
	if c.lp != nil {
		c.lp.letGo()
	}
}

// exec runs one command and accounts for it. Commands that run one after
// the other, with no read or write of the socket between them (a
// pipeline), share clock reads: each one's latency runs from the end of
// the one before (so it includes parsing it) to its own end. That is one
// clock read per command rather than three, which under a pipeline
// took 5% of the server's time.
func (c *conn) exec(ctx context.Context, cmd *command, args [][]byte) {
	exclusive := cmd != nil && cmd.flags&flagExclusive != 0 && c.multi != nil // EXEC of a transaction
	if c.ps != nil {
		// Deferred first, so run last: once the lock below is released.
		defer c.endSubscription()
	}
	switch {
	case cmd != nil && cmd.flags&flagOwnGoroutine != 0, c.mon != nil,
		c.ps != nil && (!c.resp3 || cmd == nil || cmd.flags&flagPubSub != 0):
		// SUBSCRIBE, PSUBSCRIBE, MONITOR, SAVE: nothing of a transaction's to see
		// half done, and SAVE waits for a checkpoint, which the other
		// clients must not wait for. Nor does a subscriber's pub/sub
		// command ((P)UNSUBSCRIBE, PING, QUIT and RESET, all a RESP2
		// subscriber may run, which touch no key): UNSUBSCRIBE writes to
		// its socket, and it and RESET wait for the subscription's
		// goroutine, which writes to it too, each for up to WriteTimeout.
		// A RESP3 subscriber's other commands (any, EXEC and writes among
		// them) take the lock as any client's do. Nor a monitor's (run
		// refuses it every command on keys, in a transaction too): its
		// RESET waits for its writer goroutine, for up to WriteTimeout.
	case c.lp != nil:
		// The event loop holds the read lock for the whole of a wake-up
		// (see loop.run): one lock for all the commands it runs then.
		if exclusive {
			c.s.tx.RUnlock()
			c.s.tx.Lock()
			defer func() {
				c.s.tx.Unlock()
				c.s.tx.RLock()
			}()
		}
	case exclusive:
		c.s.tx.Lock()
		defer c.s.tx.Unlock()
	default:
		c.s.tx.RLock()
		c.txShared = true
		defer func() {
			c.txShared = false
			c.s.tx.RUnlock()
		}()
	}
	if c.s.obs == nil {
		c.run(ctx, cmd, args)
		return
	}
	c.runObserved(ctx, cmd, args)
}

// endSubscription makes a subscriber whose transaction unsubscribed it
// from its last name a normal client again (see Server.unsubscribe); the
// transactions' lock is not held.
func (c *conn) endSubscription() {
	if c.ps != nil && c.ps.ended {
		c.endSubscribed()
	}
}

// runObserved is run, with the command observed. A command queued by
// MULTI is not: it is observed when EXEC runs it (a command refused as it
// is queued is, as rejected).
func (c *conn) runObserved(ctx context.Context, cmd *command, args [][]byte) {
	begin := c.lastEnd
	if begin == 0 {
		begin = c.since()
	}
	c.failed, c.rejected = false, false
	pending := len(c.pending)
	t, queued := c.multi, 0
	if t != nil {
		queued = len(t.cmds)
	}
	c.run(ctx, cmd, args)
	if t != nil && c.multi == t && len(t.cmds) > queued {
		c.lastEnd = c.since()
		return
	}
	name := "unknown"
	var st *cmdStats
	if cmd != nil {
		name = cmd.name
		st = cmd.stats(args)
	}
	// Its reply waits for the disk: observed by settle (EXEC's commands
	// have been, each on its own: EXEC is observed at once).
	if len(c.pending) > pending && c.pending[len(c.pending)-1].cmd == "" {
		pr := &c.pending[len(c.pending)-1]
		pr.cmd, pr.stats, pr.begin = name, st, begin
		c.lastEnd = c.since()
		c.s.slow(c, cmd, args, c.lastEnd-begin) // as Redis, its run without the wait for the disk
		return
	}
	end := c.since()
	c.lastEnd = end
	c.s.observe(st, name, end-begin, c.rejected, c.failed)
	if !c.rejected { // as Redis, which never calls a command it refuses
		c.s.slow(c, cmd, args, end-begin)
	}
}

// observe reports a command that has run (or was refused: rejected) to the
// Observer, under name (its command's: "client" for CLIENT ID), and counts
// it in st for INFO commandstats and LATENCY HISTOGRAM (st nil: an unknown
// command or subcommand, counted nowhere, as in Redis). As in Redis, a
// command refused counts in rejected_calls alone: its calls and time are
// those of the commands that ran.
func (s *Server) observe(st *cmdStats, name string, elapsed time.Duration, rejected, failed bool) {
	switch {
	case st == nil:
	case rejected:
		st.rejected.Add(1)
	default:
		st.calls.Add(1)
		st.elapsed.Add(int64(elapsed))
		st.latency.record(elapsed)
		if failed {
			st.failed.Add(1)
		}
	}
	s.obs.ObserveCommand(Protocol, name, elapsed, failed)
}

// observeSettled is observe for a reply that waited for the disk (see
// settle), with a panic of the Observer recovered and logged: settle runs
// on the event loop outside its recover, and a panic half way through
// would leave writes that were waited for in c.pending, waited for again
// as the client closes (Pending.Wait must run once: the store's count of
// waiters goes negative, and the process ends).
func (s *Server) observeSettled(st *cmdStats, name string, elapsed time.Duration, failed bool) {
	defer s.observerPanicked("command", name)
	s.observe(st, name, elapsed, false, failed)
}

// observerPanicked, deferred, recovers a panic of the Observer and logs
// it with attrs (what was being observed), as a command's is: it goes no
// further.
func (s *Server) observerPanicked(attrs ...any) {
	if r := recover(); r != nil {
		s.log.Error("resp: the Observer panicked", append(attrs, "panic", r, "stack", string(debug.Stack()))...)
	}
}

// run checks a command's arity, the client's authentication and state,
// then calls its handler.
func (c *conn) run(ctx context.Context, cmd *command, args [][]byte) {
	if c.multi != nil && (cmd == nil || cmd.flags&flagNotQueued == 0) {
		c.queue(cmd, args)
		return
	}
	mark := len(c.out)
	// An EXEC refused here is answered EXECABORT instead of the error
	// written first (abortExec): as Redis, INFO errorstats counts only
	// the EXECABORT, the one reply the client sees.
	exec := cmd != nil && cmd.flags&flagExclusive != 0
	c.uncounted = exec
	switch {
	case c.malformed(cmd, args): // before the login, as Redis does
		if c.multi != nil {
			c.multi.dirty = true // MULTI x, DISCARD x: as Redis, the transaction aborts
		}
	case !c.authed && cmd.flags&flagNoAuth == 0:
		c.err("NOAUTH Authentication required.")
	case c.mon != nil && cmd.keyspace(args):
		c.err(errMonitorKeyspace)
	case c.ps != nil && !c.resp3 && cmd.flags&flagPubSub == 0: // RESP3 subscribers run any command
		c.err("ERR Can't execute '" + cmd.fullName(args) + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
	case c.protected(cmd):
	case c.oversized(args):
	default:
		c.uncounted = false
		c.commands.Add(1) // as Redis counts them: those that run
		cmd.fn(ctx, c, args)
		if c.s.mon.n.Load() > 0 {
			c.s.feed(c, cmd, args) // after it ran, as Redis 7: EXEC follows its commands
		}
		return
	}
	c.rejected = true
	if exec {
		c.uncounted = false
		c.abortExec(mark)
	}
}

// abortExec turns the error written at c.out[mark:] for an EXEC refused
// before it ran into Redis's (execCommandAbort): the transaction, if any,
// is discarded there and then, the watched keys forgotten, and the reply
// is EXECABORT with the reason.
// Without it the client would stay in MULTI, and its next commands would
// be queued where Redis runs them.
func (c *conn) abortExec(mark int) {
	reason := strings.TrimPrefix(strings.TrimSuffix(string(c.out[mark+1:]), "\r\n"), "ERR ")
	c.out = c.out[:mark]
	c.discardTransaction()
	c.err("EXECABORT Transaction discarded because of: " + reason)
}

// malformed writes Redis's error and reports true for an unknown command
// or a wrong number of arguments.
func (c *conn) malformed(cmd *command, args [][]byte) bool {
	switch {
	case cmd == nil:
		c.unknownCommand(args)
	case wrongArity(cmd.arity, len(args)):
		c.wrongArgs(cmd.name)
	case cmd.subs != nil && len(args) > 1:
		i := cmd.subIndex(args[1])
		switch {
		case i < 0:
			c.err("ERR unknown subcommand '" + clip(args[1]) + "'. Try " + strings.ToUpper(cmd.name) + " HELP.")
		case wrongArity(cmd.subs[i].arity, len(args)):
			c.wrongArgs(cmd.subNames[i])
		default:
			return false
		}
	default:
		return false
	}
	return true
}

// oversized writes the error and reports true for a command with more
// than MaxArgs arguments, or one longer than MaxBulkLen.
func (c *conn) oversized(args [][]byte) bool {
	if len(args) > c.s.cfg.MaxArgs {
		c.err("ERR Protocol error: too many arguments (the limit is " + strconv.Itoa(c.s.cfg.MaxArgs) + ")")
		return true
	}
	for _, a := range args {
		if len(a) > c.s.cfg.MaxBulkLen {
			c.err("ERR Protocol error: argument longer than " + strconv.Itoa(c.s.cfg.MaxBulkLen) + " bytes")
			return true
		}
	}
	return false
}

// unknownCommand quotes the arguments as Redis does: each up to its first
// NUL byte and cut to what is left of 128 bytes, until the quoted list
// reaches 128 bytes.
func (c *conn) unknownCommand(args [][]byte) {
	quoted := make([]byte, 0, 160)
	for _, a := range args[1:] {
		if len(quoted) >= 128 {
			break
		}
		a = cString(a)
		quoted = append(quoted, '\'')
		quoted = append(quoted, a[:min(len(a), 128-len(quoted)+1)]...)
		quoted = append(quoted, "' "...)
	}
	c.err("ERR unknown command '" + clip(args[0]) + "', with args beginning with: " + string(quoted))
}

// clip returns b up to its first NUL byte, and at most 128 bytes of it,
// as Redis quotes arguments in errors (printf's "%.128s" of a C string).
func clip(b []byte) string {
	b = cString(b)
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}

// cString returns b up to its first NUL byte: what Redis's printf-style
// error formats print of an argument.
func cString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// errDebugOff refuses DEBUG on a server that does not enable it.
const errDebugOff = "ERR DEBUG command not allowed. Start kv with --enable-debug-command to allow it."

// protected reports whether cmd is one the server does not enable
// (DEBUG without Config.EnableDebugCommand), and then refuses it, as Redis
// refuses a protected command before it runs: counted as rejected, and
// in MULTI it aborts the transaction.
func (c *conn) protected(cmd *command) bool {
	if cmd.flags&flagProtected == 0 || c.s.cfg.EnableDebugCommand {
		return false
	}
	c.err(errDebugOff)
	return true
}

// Replies.

func (c *conn) ok()                 { c.out = append(c.out, "+OK\r\n"...) }
func (c *conn) simple(s string)     { c.out = redcon.AppendString(c.out, s) }
func (c *conn) integer(n int64)     { c.out = redcon.AppendInt(c.out, n) }
func (c *conn) bulk(b []byte)       { c.out = redcon.AppendBulk(c.out, b) }
func (c *conn) bulkString(s string) { c.out = redcon.AppendBulkString(c.out, s) }
func (c *conn) array(n int)         { c.out = redcon.AppendArray(c.out, n) }

// The replies whose RESP3 type differs from RESP2's: in RESP2, a null is
// $-1 (a bulk) or *-1 (an array), a map, a set and a push are arrays (a
// map's of twice its pairs), and verbatim text is a bulk.

func (c *conn) null() {
	if c.resp3 {
		c.out = append(c.out, "_\r\n"...)
		return
	}
	c.out = redcon.AppendNull(c.out)
}

func (c *conn) nullArray() {
	if c.resp3 {
		c.out = append(c.out, "_\r\n"...)
		return
	}
	c.out = append(c.out, "*-1\r\n"...)
}

// mapLen begins a map of n pairs: each key, then its value, follows.
func (c *conn) mapLen(n int) {
	if c.resp3 {
		c.out = appendHeader(c.out, '%', n)
		return
	}
	c.array(2 * n)
}

// setLen begins a set of n elements.
func (c *conn) setLen(n int) {
	if c.resp3 {
		c.out = appendHeader(c.out, '~', n)
		return
	}
	c.array(n)
}

// pushLen begins an out-of-band message of n elements (pub/sub's).
func (c *conn) pushLen(n int) { c.out = appendPushLen(c.out, c.resp3, n) }

// verbatim writes text (INFO's, CLIENT LIST's) as RESP3's verbatim string.
func (c *conn) verbatim(text string) {
	if !c.resp3 {
		c.bulkString(text)
		return
	}
	c.out = appendHeader(c.out, '=', len(text)+4)
	c.out = append(c.out, "txt:"...)
	c.out = append(c.out, text...)
	c.out = append(c.out, "\r\n"...)
}

// appendPushLen appends the header of a pub/sub message of n elements:
// a RESP3 push, or a RESP2 array.
func appendPushLen(b []byte, resp3 bool, n int) []byte {
	if resp3 {
		return appendHeader(b, '>', n)
	}
	return redcon.AppendArray(b, n)
}

// appendHeader appends a RESP aggregate's header: its type byte, then n.
func appendHeader(b []byte, typ byte, n int) []byte {
	b = append(b, typ)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "\r\n"...)
}

// setProto makes the client speak RESP3, or RESP2, from its next reply.
func (c *conn) setProto(resp3 bool) {
	if p := c.ps; p != nil {
		// Unsubscribed from its last name by a transaction, whose EXEC
		// is running (HELLO refuses a subscriber the switch otherwise):
		// its subscription's goroutine, not yet stopped, reads resp3
		// under p.mu (not wmu, which it may hold while it writes to a
		// client that does not read: see Server.unsubscribe).
		p.mu.Lock()
		c.resp3 = resp3
		p.mu.Unlock()
	} else {
		c.resp3 = resp3 // no other goroutine reads it
	}
	c.infoMu.Lock()
	c.proto3 = resp3
	c.infoMu.Unlock()
}
func (c *conn) wrongArgs(cmd string) {
	c.err("ERR wrong number of arguments for '" + cmd + "' command")
}
func (c *conn) syntaxErr()  { c.err("ERR syntax error") }
func (c *conn) notInteger() { c.err("ERR value is not an integer or out of range") }

// help writes a HELP subcommand's reply: its lines, as simple strings.
func (c *conn) help(lines []string) {
	c.array(len(lines))
	for _, l := range lines {
		c.simple(l)
	}
}

// err writes an error reply; msg starts with its code (ERR, WRONGTYPE...).
func (c *conn) err(msg string) {
	c.failed = true
	if !c.uncounted {
		c.s.errors.count(msg)
	}
	c.out = redcon.AppendError(c.out, msg)
}
