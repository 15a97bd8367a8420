package resp

import (
	"context"
	"strconv"
	"unsafe"
)

// Per queued command and per argument, the memory a transaction keeps
// besides the arguments' bytes: the entry and the arguments' slices. An
// empty argument costs its slice all the same.
const (
	queuedCommandSize = int(unsafe.Sizeof(queuedCommand{}))
	queuedArgSize     = int(unsafe.Sizeof([]byte(nil)))
)

// transaction is a client's MULTI: the commands it queued for EXEC.
type transaction struct {
	cmds  []queuedCommand
	bytes int  // kept for the queued commands: their arguments and slices
	dirty bool // a command was refused while queued: EXEC discards them all
}

// queuedCommand is one command of a transaction, its arguments copied out
// of the read buffer.
type queuedCommand struct {
	cmd  *command
	args [][]byte
}

// queue adds a command sent between MULTI and EXEC to the transaction, as
// Redis does: "+QUEUED", or an error that makes EXEC discard the
// transaction (EXECABORT) for a command Redis would refuse before running
// it (unknown, wrong number of arguments, too large). A command that needs
// a goroutine of its own (SUBSCRIBE, PSUBSCRIBE, MONITOR, SAVE, SHUTDOWN) is refused too.
// What the transaction keeps, the arguments with their slices, is bounded
// by MaxRequestBytes.
func (c *conn) queue(cmd *command, args [][]byte) {
	t := c.multi
	switch {
	case c.malformed(cmd, args): // each of these writes its error
	case c.protected(cmd):
	case cmd.flags&flagOwnGoroutine != 0:
		c.err("ERR Command not allowed inside a transaction")
	case c.mon != nil && cmd.keyspace(args):
		c.err(errMonitorKeyspace)
	case c.oversized(args):
	default:
		size := 0 // the arguments' bytes
		for _, a := range args {
			size += len(a)
		}
		kept := size + queuedCommandSize + len(args)*queuedArgSize
		if t.bytes+kept > c.s.cfg.MaxRequestBytes {
			c.err("ERR transaction too large: its queued commands pass " + strconv.Itoa(c.s.cfg.MaxRequestBytes) + " bytes")
			break
		}
		// One allocation for the arguments' bytes, one for their slices.
		data := make([]byte, 0, size)
		copies := make([][]byte, len(args))
		for i, a := range args {
			data = append(data, a...)
			copies[i] = data[len(data)-len(a) : len(data) : len(data)]
		}
		t.bytes += kept
		t.cmds = append(t.cmds, queuedCommand{cmd: cmd, args: copies})
		c.inMulti.Add(1)
		c.simple("QUEUED")
		return
	}
	t.dirty = true
	c.rejected = true // INFO commandstats: refused before it ran, as in Redis
}

// multi starts a transaction (MULTI).
func (s *Server) multi(_ context.Context, c *conn, _ [][]byte) {
	if c.multi != nil {
		c.err("ERR MULTI calls can not be nested")
		return
	}
	c.setMulti(&transaction{})
	c.simple("OK")
}

// execTx runs the queued commands one after the other and answers with
// their replies (EXEC). A command that fails as it runs (WRONGTYPE, not an
// integer) has its error among the replies, and the others run: there is
// no rollback, as in Redis.
func (s *Server) execTx(ctx context.Context, c *conn, _ [][]byte) {
	t := c.multi
	if t == nil {
		c.err("ERR EXEC without MULTI")
		return
	}
	// Out of the transaction (its commands run, not queue), but CLIENT
	// LIST shows it in one until EXEC ends, as Redis does.
	c.multi = nil
	defer c.inMulti.Store(0)
	changed := !t.dirty && s.watchedChanged(c)
	c.watches = nil // whatever EXEC answers, as Redis does
	switch {
	case t.dirty:
		c.err("EXECABORT Transaction discarded because of previous errors.")
		return
	case changed:
		c.nullArray() // a watched key changed: nothing ran
		return
	}
	// The commands' writes reach the store as one write: a crash keeps
	// all of them or none (unless a command flushes or loads a bucket,
	// which commits what came before it: see Registry.HoldWrites).
	defer s.reg.HoldWrites()()
	c.array(len(t.cmds))
	// The replies leave only once all are built, and the commands, each
	// bounded in its own reply, may read the same large hash over and over
	// (100,000 HGETALLs of a 1 MiB hash in a 3 MB transaction: 100 GiB).
	// Once the replies pass MaxReplyBytes, a later reply longer than
	// maxDroppedReply is replaced by an error: the command has run, but
	// its reply is not kept. Only a read's: a command with an effect
	// (a write, HINCRBYFLOAT's number of hundreds of digits; HELLO, which
	// logs in and names the client) keeps its reply, or its client would
	// be told that it failed when it succeeded.
	begin := len(c.out)
	for _, q := range t.cmds {
		start, pending := len(c.out), len(c.pending)
		if s.obs != nil {
			c.runObserved(ctx, q.cmd, q.args)
		} else {
			c.run(ctx, q.cmd, q.args)
		}
		if start-begin > s.cfg.MaxReplyBytes && len(c.out)-start > maxDroppedReply && len(c.pending) == pending && !hasEffect(q.cmd) {
			// An error dropped (OBJECT FREQ's) was counted in INFO
			// errorstats as it was written: its replacement is the same
			// error reply to the client, not a second one.
			c.uncounted = c.out[start] == '-'
			c.out = c.out[:start]
			c.err("ERR reply too large: the transaction's replies already pass " + strconv.Itoa(s.cfg.MaxReplyBytes) + " bytes")
			c.uncounted = false
		}
	}
	c.failed, c.rejected = false, false // EXEC ran, whatever its commands did
}

// maxDroppedReply is the longest reply of a read that a transaction keeps
// once its replies pass MaxReplyBytes (see execTx): short enough that the
// replies kept stay within a few times the transaction's own size
// (MaxRequestBytes), but for the replies of the commands with an effect,
// which are kept whatever their length (see hasEffect).
const maxDroppedReply = 128

// hasEffect reports whether cmd, queued in a transaction, may change
// something besides its reply: a write, or HELLO (its AUTH and SETNAME).
// EXEC keeps such a command's reply however long (see execTx).
func hasEffect(cmd *command) bool {
	return cmd == nil || cmd.flags&flagWrite != 0 || cmd.name == "hello"
}

// discard drops the queued commands (DISCARD).
func (s *Server) discard(_ context.Context, c *conn, _ [][]byte) {
	if c.multi == nil {
		c.err("ERR DISCARD without MULTI")
		return
	}
	c.discardTransaction()
	c.simple("OK")
}

// discardTransaction ends the client's transaction, if any, and forgets
// its watched keys, as Redis's discardTransaction does (DISCARD, RESET, an
// EXEC refused before it runs).
func (c *conn) discardTransaction() {
	c.setMulti(nil)
	c.watches = nil
}

// setMulti starts the transaction t, or ends the client's with nil, and
// tells CLIENT LIST (inMulti), which other clients' goroutines read.
func (c *conn) setMulti(t *transaction) {
	c.multi = t
	if t == nil {
		c.inMulti.Store(0)
	} else {
		c.inMulti.Store(1 + int32(len(t.cmds)))
	}
}
