package text

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"time"
	"unicode"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/registry"
)

// The replies, with their line ends.
const (
	replyOK       = "OK\r\n"
	replyNotFound = "NOT FOUND\r\n"
	replyUnknown  = "UNKNOWN COMMAND\r\n"
	replyError    = "ERROR\r\n"
	lineEnd       = "\r\n"
)

// readBufSize is the read buffer of a connection; lines longer than it are
// gathered in the connection's line buffer, up to MaxLineBytes.
const readBufSize = 4 << 10

// isSpace reports a rune that separates tokens: Unicode white space but
// the non-breaking spaces, which Elixir's String.split/1, the guide's
// parser, keeps inside tokens.
func isSpace(r rune) bool {
	switch r {
	case '\u00a0', '\u2007', '\u202f':
		return false
	}
	return unicode.IsSpace(r)
}

// conn is one client connection, served by one goroutine.
type conn struct {
	run    *run
	cfg    *Config
	nc     net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	authed bool
	line   []byte // a line longer than the read buffer, gathered
	value  []byte // GET's value, reused
}

// errLineTooLong is readLine's report of a line past MaxLineBytes; the line
// has been discarded.
var errLineTooLong = errors.New("text: line too long")

// serveConn serves one connection until it closes, fails or the run stops.
// A panic here ends this connection only.
func (r *run) serveConn(ctx context.Context, nc net.Conn) {
	defer r.untrack(nc, true)
	cfg := &r.srv.cfg
	if cfg.Observer != nil {
		cfg.Observer.ObserveClients(protocol, 1)
		defer cfg.Observer.ObserveClients(protocol, -1)
	}
	log := r.log.With("remote", nc.RemoteAddr().String())
	defer func() {
		if v := recover(); v != nil {
			log.Error("text server: connection crashed; closing it", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	c := &conn{
		run:    r,
		cfg:    cfg,
		nc:     nc,
		r:      bufio.NewReaderSize(nc, readBufSize),
		w:      bufio.NewWriter(nc),
		authed: cfg.Password == "",
	}
	log.Debug("text server: connection open")
	err := c.serve(ctx)
	log.Debug("text server: connection closed", "reason", err)
}

// serve reads and answers lines until the connection ends, and returns why.
// Replies are flushed unless a whole next line is already buffered, so a
// pipelining client gets them in batches, and one that waits for a reply
// before it finishes its next line gets it.
func (c *conn) serve(ctx context.Context) error {
	for {
		if c.cfg.IdleTimeout > 0 {
			if err := c.nc.SetReadDeadline(time.Now().Add(c.cfg.IdleTimeout)); err != nil {
				return fmt.Errorf("text: set read deadline: %w", err)
			}
		}
		if c.run.stopping.Load() {
			// The lines already buffered run; the next read fails at once.
			_ = c.nc.SetReadDeadline(time.Unix(1, 0))
		}
		line, err := c.readLine()
		if c.cfg.WriteTimeout > 0 {
			if err := c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout)); err != nil {
				return fmt.Errorf("text: set write deadline: %w", err)
			}
		}
		closeAfter := false
		switch {
		case errors.Is(err, errLineTooLong):
			c.w.WriteString(replyError)
			if c.cfg.Observer != nil {
				c.cfg.Observer.ObserveCommand(protocol, "too_long", 0, true)
			}
		case err != nil:
			if c.w.Flush() == nil && c.run.stopping.Load() {
				// The stop's deadline ended the read: lines the client
				// sent behind those answered may wait unread.
				endGently(c.nc)
			}
			return err
		default:
			closeAfter = c.handle(ctx, line)
		}
		if closeAfter || !c.lineBuffered() {
			if err := c.w.Flush(); err != nil {
				return fmt.Errorf("text: write reply: %w", err)
			}
		}
		if closeAfter {
			endGently(c.nc) // the client may have sent lines behind this one
			return errors.New("text: closed by the server")
		}
	}
}

// lineBuffered reports whether the next line is already buffered whole:
// then its reply can leave with this one. A partial line does not count:
// its client may be waiting for this reply before it sends the rest.
func (c *conn) lineBuffered() bool {
	b, _ := c.r.Peek(c.r.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// readLine returns the next line without its "\n" (a "\r" before it is
// kept; Parse treats it as white space). A line longer than MaxLineBytes
// is read to its end and dropped, and errLineTooLong returned. Bytes after
// the last "\n" when the client closes are dropped with io.EOF.
func (c *conn) readLine() ([]byte, error) {
	c.line = c.line[:0]
	tooLong := false
	for {
		frag, err := c.r.ReadSlice('\n')
		switch {
		case err == nil:
			frag = frag[:len(frag)-1]
			if tooLong || len(c.line)+len(frag) > c.cfg.MaxLineBytes {
				return nil, errLineTooLong
			}
			if len(c.line) == 0 {
				return frag, nil // valid until the next read: used before it
			}
			c.line = append(c.line, frag...)
			return c.line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if !tooLong && len(c.line)+len(frag) > c.cfg.MaxLineBytes {
				tooLong = true
				c.line = c.line[:0]
			}
			if !tooLong {
				c.line = append(c.line, frag...)
			}
		case errors.Is(err, io.EOF):
			return nil, io.EOF
		default:
			return nil, err
		}
	}
}

// handle answers one line into the write buffer; it reports whether the
// connection must close once the reply is written.
func (c *conn) handle(ctx context.Context, line []byte) (closeAfter bool) {
	start := time.Now()
	cmd, err := Parse(string(line))
	// POST and Host: are no verbs: only a line that does not parse is
	// looked at, as the Redis protocol server looks only at unknown
	// command names.
	if err != nil && looksLikeHTTP(line) {
		// A web page can make a browser send an HTTP request here, its
		// body lines then run as commands: Redis's defence against this
		// cross-protocol scripting, closing at once, without a reply.
		c.run.log.Warn("text server: an HTTP request line or header (POST, Host:) came in; "+
			"possibly a web page attacking through a browser; closing",
			"remote", c.nc.RemoteAddr().String())
		if c.cfg.Observer != nil {
			c.cfg.Observer.ObserveCommand(protocol, "http", 0, true)
		}
		return true
	}
	name := cmd.Verb.metric()
	reply, failed := "", true
	switch {
	case !c.authed && cmd.Verb != Auth:
		reply = replyError // every command before AUTH, unknown ones included
	case err != nil:
		reply = replyUnknown
	default:
		reply, failed, closeAfter = c.exec(ctx, cmd)
	}
	if reply != "" {
		c.w.WriteString(reply)
	}
	if c.cfg.Observer != nil {
		c.cfg.Observer.ObserveCommand(protocol, name, time.Since(start), failed)
	}
	return closeAfter
}

// exec runs a parsed command. A reply already written (GET's value) is
// followed by the returned one.
func (c *conn) exec(ctx context.Context, cmd Command) (reply string, failed, closeAfter bool) {
	reg := c.cfg.Registry
	switch cmd.Verb {
	case Auth:
		if c.cfg.Password == "" {
			return replyError, true, false // no password to give
		}
		if !passwordsMatch(cmd.Password, c.cfg.Password) {
			c.run.log.Warn("text server: wrong password; closing", "remote", c.nc.RemoteAddr().String())
			return replyError, true, true
		}
		c.authed = true
		return replyOK, false, false

	case Create:
		var err error
		registry.Shared(reg.TxLock(), func() { _, err = reg.Create(ctx, cmd.Bucket) })
		if err != nil {
			c.run.log.Debug("text server: create failed", "bucket", cmd.Bucket, "error", err)
			return replyError, true, false
		}
		return replyOK, false, false

	case Get, Put, Delete:
		// A bucket that ends before the command runs on it (a crash; with
		// a store its pairs come back) is looked up again: the command
		// meets what the name means now, as with the Redis protocol.
		for range maxAttempts {
			b, ok, err := reg.LookupCurrent(ctx, cmd.Bucket)
			switch {
			case err != nil:
				return replyError, true, false
			case !ok:
				return replyNotFound, true, false
			}
			if c.cfg.testHookLookup != nil {
				c.cfg.testHookLookup(b)
			}
			if reply, failed, ended := c.inBucket(b, cmd); !ended {
				return reply, failed, false
			}
		}
		return replyError, true, false // ended over and over: there, but busy
	}
	return replyUnknown, true, false
}

// maxAttempts bounds how often a command follows a name to a new bucket
// after the one it found had ended.
const maxAttempts = 8

// inBucket runs GET, PUT or DELETE on b, the bucket cmd names. ended
// reports that b had ended before the command began: it did nothing. The
// command runs under the registry's TxLock, shared, so that it does not
// land in the middle of a Redis transaction; a write's wait for the disk
// comes after.
func (c *conn) inBucket(b *bucket.Bucket, cmd Command) (reply string, failed, ended bool) {
	tx := c.cfg.Registry.TxLock()
	switch cmd.Verb {
	case Get:
		var v []byte
		var err error
		registry.Shared(tx, func() { v, err = b.AppendValue(c.value[:0], cmd.Key) })
		c.value = v[:0]
		switch {
		case errors.Is(err, bucket.ErrNotFound):
			v = v[:0] // the guide prints nil as an empty line
		case errors.Is(err, bucket.ErrEnded):
			return replyNotFound, true, true
		case err != nil:
			return replyError, true, false
		case bytes.ContainsAny(v, "\r\n"):
			return replyError, true, false // would break the framing
		}
		c.w.Write(v)
		c.w.WriteString(lineEnd)
		return replyOK, false, false

	case Put:
		var p bucket.Pending
		var err error
		registry.Shared(tx, func() { _, p, err = b.SetNoWait(cmd.Key, []byte(cmd.Value)) })
		if errors.Is(err, bucket.ErrEnded) {
			return replyNotFound, true, true
		}
		if err == nil {
			err = p.Wait()
		}
		if err != nil {
			return replyError, true, false
		}
		return replyOK, false, false

	default: // Delete
		var p bucket.Pending
		var err error
		registry.Shared(tx, func() { _, p, err = b.DeleteNoWait(cmd.Key) })
		if err == nil {
			err = p.Wait()
		}
		switch {
		case err == nil, errors.Is(err, bucket.ErrNotFound):
			return replyOK, false, false
		case errors.Is(err, bucket.ErrEnded):
			return replyNotFound, true, true
		}
		return replyError, true, false
	}
}

// looksLikeHTTP reports whether line's first word is "POST" or "Host:",
// in any case: a line of an HTTP request, never a command.
func looksLikeHTTP(line []byte) bool {
	first := bytes.TrimLeftFunc(line, unicode.IsSpace)
	if i := bytes.IndexFunc(first, unicode.IsSpace); i >= 0 {
		first = first[:i]
	}
	return bytes.EqualFold(first, []byte("POST")) || bytes.EqualFold(first, []byte("Host:"))
}

// passwordsMatch compares in constant time, whatever the lengths.
func passwordsMatch(given, want string) bool {
	g := sha256.Sum256([]byte(given))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}
