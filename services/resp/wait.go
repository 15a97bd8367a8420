package resp

import (
	"context"
)

// Syncer is what a Backups may offer too, for WAITAOF: Sync returns once
// every write made before it is on disk, whatever the fsync policy
// (store.Store.Sync).
type Syncer interface {
	Sync() error
}

// validTimeout checks a WAIT or WAITAOF timeout (milliseconds), with
// Redis's errors (getTimeoutFromObjectOrReply).
func validTimeout(c *conn, arg []byte) bool {
	ms, ok := parseInt(arg)
	switch {
	case !ok:
		c.err("ERR timeout is not an integer or out of range")
		return false
	case ms < 0:
		c.err("ERR timeout is negative")
		return false
	}
	return true
}

// wait answers WAIT numreplicas timeout: 0, the replicas that
// acknowledged the client's writes. kv has none, and answers at once: where
// Redis, asked for more replicas than it has, waits for the timeout (for
// ever with 0) for replicas that cannot come.
func (s *Server) wait(_ context.Context, c *conn, args [][]byte) {
	if _, ok := parseInt(args[1]); !ok {
		c.notInteger()
		return
	}
	if !validTimeout(c, args[2]) {
		return
	}
	c.integer(0)
}

// waitaof answers WAITAOF numlocal numreplicas timeout (Redis 7.2): with a
// durable store, once every write the client sent before it is on disk
// (Syncer), [1, 0]; in memory [0, 0], and numlocal 1 is refused as Redis
// refuses it without an append-only file. It does not wait for replicas
// (see wait). The fsync is waited for on the client's own goroutine
// (flagLong), not the event loop's. In a transaction it does not wait:
// [0, 0], as Redis answers there when the writes are not yet fsynced.
func (s *Server) waitaof(_ context.Context, c *conn, args [][]byte) {
	local, ok := parseInt(args[1])
	switch {
	case !ok:
		c.notInteger()
		return
	case local < 0 || local > 1:
		c.err("ERR value is out of range, value must between 0 and 1")
		return
	}
	replicas, ok := parseInt(args[2])
	switch {
	case !ok:
		c.notInteger()
		return
	case replicas < 0:
		c.err("ERR value is out of range, must be positive")
		return
	}
	if !validTimeout(c, args[3]) {
		return
	}
	syncer, durable := s.cfg.Backups.(Syncer)
	if local == 1 && !durable {
		c.err("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.")
		return
	}
	acked := int64(0)
	// A command that runs while the client is in a transaction (inMulti,
	// kept until EXEC ends) is one that EXEC runs: WAITAOF is queued, not
	// run, between MULTI and EXEC.
	if durable && c.inMulti.Load() == 0 {
		// In a transaction it answers at once, as Redis's does (a client
		// in MULTI may not block): an fsync there would hold every client
		// (EXEC runs alone), and commit the transaction's writes before
		// it apart from those after it.
		if err := syncer.Sync(); err != nil {
			c.writeErr(err)
			return
		}
		acked = 1
	}
	c.array(2)
	c.integer(acked)
	c.integer(0)
}
