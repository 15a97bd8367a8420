package resp

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/kvproject/kv/registry"
)

// SCAN and HSCAN cursors are positions in the registry's scan order (see
// registry.Scan): a key present for the whole iteration is returned
// exactly once.

// parseCursor reads a cursor as Redis 7.0 does, with C's strtoul: an
// optional sign, then decimal digits, all of the argument; a minus
// negates modulo 2^64 ("-1" is the largest cursor), and no digits at all
// is cursor 0 when nothing else is there (""), an error otherwise ("-").
// A leading space and a value past 2^64-1 are errors.
func parseCursor(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, true
	}
	neg := false
	switch b[0] {
	case '-':
		neg, b = true, b[1:]
	case '+':
		b = b[1:]
	}
	n, err := strconv.ParseUint(str(b), 10, 64)
	if err != nil { // ParseUint takes no sign: "--1" is refused
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

type scanOpts struct {
	// match is the MATCH pattern; it filters only if useMatch is set,
	// since "" is a pattern (it matches the empty string alone) and not
	// the absence of one.
	match    string
	useMatch bool
	budget   globBudget // of the matches, for the command
	count    int
	typ      string
	useType  bool // TYPE was given: TYPE "" keeps nothing, as in Redis
	noValues bool
}

// filter keeps, in place, the names that pass the MATCH pattern (all of
// them without one); ok is false once the pattern has cost the command
// its globBudget.
func (o *scanOpts) filter(names []string) (kept []string, ok bool) {
	if !o.useMatch {
		return names, true
	}
	return o.budget.filter(o.match, names)
}

// scanOptions parses [MATCH pattern] [COUNT n] [TYPE t] (SCAN) or
// [NOVALUES] (HSCAN); it writes the error reply and reports false on a
// mistake. As in Redis, the last MATCH counts, and a lone "*" is no
// pattern, while MATCH "" keeps only an empty name.
func (c *conn) scanOptions(args [][]byte, hscan bool) (scanOpts, bool) {
	o := scanOpts{count: 10, budget: newGlobBudget()}
	for i := 0; i < len(args); i++ {
		switch {
		case equalFold(args[i], "match") && i+1 < len(args):
			o.match = string(args[i+1])
			o.useMatch = o.match != "*"
			i++
		case equalFold(args[i], "count") && i+1 < len(args):
			n, ok := parseInt(args[i+1])
			if !ok {
				c.notInteger()
				return o, false
			}
			if n < 1 {
				c.syntaxErr()
				return o, false
			}
			o.count = int(min(n, 1<<20))
			i++
		case !hscan && equalFold(args[i], "type") && i+1 < len(args):
			o.typ, o.useType = string(args[i+1]), true
			i++
		case equalFold(args[i], "novalues"):
			if !hscan {
				c.err("ERR NOVALUES option can only be used in HSCAN")
				return o, false
			}
			o.noValues = true
		default:
			c.syntaxErr()
			return o, false
		}
	}
	return o, true
}

func (s *Server) scan(_ context.Context, c *conn, args [][]byte) {
	cursor, ok := parseCursor(args[1])
	if !ok {
		c.err("ERR invalid cursor")
		return
	}
	opts, ok := c.scanOptions(args[2:], false)
	if !ok {
		return
	}
	page, next, err := s.reg.Scan(cursor, opts.count)
	if err != nil {
		c.writeErr(err)
		return
	}
	keep, ok := opts.filter(page)
	if !ok {
		c.err(errGlobTooCostly)
		return
	}
	if opts.useType && !equalFold([]byte(opts.typ), "hash") {
		keep = keep[:0] // every key is a hash
	}
	c.array(2)
	c.bulkString(strconv.FormatUint(next, 10))
	c.array(len(keep))
	for _, k := range keep {
		c.bulkString(k)
	}
}

// randomkey answers RANDOMKEY: a key picked at random, about evenly (see
// registry.Registry.RandomName), or nil when there is none.
func (s *Server) randomkey(_ context.Context, c *conn, _ [][]byte) {
	name, ok, err := s.reg.RandomName()
	switch {
	case err != nil:
		c.writeErr(err)
	case !ok:
		c.null()
	default:
		c.bulkString(name)
	}
}

func (s *Server) keys(_ context.Context, c *conn, args [][]byte) {
	pattern := str(args[1])
	names, err := s.reg.NamesErr()
	if err != nil {
		c.writeErr(err)
		return
	}
	c.namesMatching(pattern, names)
}

// namesMatching writes, sorted, the names that match pattern within a
// glob budget (KEYS, PUBSUB CHANNELS), or errGlobTooCostly. A lone "*"
// keeps every name, the empty one too, as Redis's callers of its matcher
// do (see globMatchWithin).
func (c *conn) namesMatching(pattern string, names []string) {
	keep := names
	if pattern != "*" {
		budget := newGlobBudget()
		var ok bool
		if keep, ok = budget.filter(pattern, names); !ok {
			c.err(errGlobTooCostly)
			return
		}
	}
	slices.Sort(keep)
	c.array(len(keep))
	for _, k := range keep {
		c.bulkString(k)
	}
}

func (s *Server) exists(ctx context.Context, c *conn, args [][]byte) {
	var n int64
	for _, k := range args[1:] {
		b, ok := s.live(ctx, c, k)
		if !ok {
			return
		}
		if b != nil {
			n++
		}
	}
	c.integer(n)
}

// del answers DEL and UNLINK. With a store, each drop joins the writes
// waiting for the disk, as a write to a field does, rather than hold the
// connection (and on the event loop, every client) until it is durable:
// the reply leaves once every drop is, or is an error if one is lost.
func (s *Server) del(ctx context.Context, c *conn, args [][]byte) {
	c.mayWait() // for the registry to forget the buckets
	names := make([]string, len(args)-1)
	for i, k := range args[1:] {
		names[i] = string(k)
	}
	n, drops, err := s.reg.DeleteManyNoWait(ctx, names)
	start := len(c.out)
	if err != nil {
		c.writeErr(err)
	} else {
		c.integer(int64(n))
	}
	for _, p := range drops { // the reply, the error's too, waits for the drops made
		c.awaiting(p, start)
	}
}

func (s *Server) typ(ctx context.Context, c *conn, args [][]byte) {
	b, ok := s.live(ctx, c, args[1])
	if !ok {
		return
	}
	if b != nil {
		c.simple("hash")
	} else {
		c.simple("none")
	}
}

// noExpiry answers TTL, PTTL, EXPIRETIME and PEXPIRETIME: -1 for a key,
// which has no timeout (kv's keys never expire), -2 for a missing one.
func (s *Server) noExpiry(ctx context.Context, c *conn, args [][]byte) {
	b, ok := s.live(ctx, c, args[1])
	if !ok {
		return
	}
	if b != nil {
		c.integer(-1)
	} else {
		c.integer(-2)
	}
}

// persist answers PERSIST: 0, as Redis does for a key without a timeout
// and for a missing one.
func (s *Server) persist(ctx context.Context, c *conn, args [][]byte) {
	if _, ok := s.live(ctx, c, args[1]); ok {
		c.integer(0)
	}
}

func (s *Server) dbsize(_ context.Context, c *conn, _ [][]byte) {
	n, err := s.reg.LenErr()
	if err != nil {
		c.writeErr(err)
		return
	}
	c.integer(int64(n))
}

func (s *Server) flushall(ctx context.Context, c *conn, args [][]byte) {
	if len(args) > 2 || (len(args) == 2 && !equalFold(args[1], "sync") && !equalFold(args[1], "async")) {
		c.syntaxErr()
		return
	}
	wait, err := s.reg.FlushAllNoWait(ctx)
	if err != nil {
		c.writeErr(err)
		return
	}
	// Every bucket has ended and the store is empty: the flush is done,
	// and transactions may run while the registry forgets the buckets
	// (half a second for 100,000). Holding the transactions' read lock
	// meanwhile would hold an EXEC back, and with it, since a waiting
	// writer holds new readers back, every client of the event loop.
	if c.txShared {
		c.s.tx.RUnlock()
		err = wait(ctx)
		c.s.tx.RLock()
	} else {
		err = wait(ctx) // in a transaction, which holds every client back anyway
	}
	if err != nil {
		c.writeErr(err)
		return
	}
	c.ok()
}

// rename moves the pairs of src to dst (the registry's Rename): src is
// ended and its pairs taken in one step, so that no write to src is
// acknowledged and then lost; dst, if it exists, is replaced, as Redis
// overwrites it. In memory it is not atomic across the two names: for a
// moment a reader may find neither; with a store, the move is one write,
// queued with the writes of the clients around it, and the reply waits
// for it as a field write's does.
func (s *Server) rename(ctx context.Context, c *conn, args [][]byte) {
	if string(args[1]) == string(args[2]) {
		if b, ok := s.live(ctx, c, args[1]); !ok {
			return
		} else if b == nil {
			c.err("ERR no such key")
		} else {
			c.ok()
		}
		return
	}
	c.mayWait() // for the registry to forget the source
	p, err := s.reg.RenameNoWait(ctx, string(args[1]), string(args[2]))
	switch {
	case err == nil:
		start := len(c.out)
		c.ok()
		c.awaiting(p, start) // as DEL's drops: the reply waits for the move
	case errors.Is(err, registry.ErrNotFound):
		c.err("ERR no such key")
	default:
		c.writeErr(err)
	}
}

// renamenx is rename when dst does not exist (the registry's RenameNX),
// answering 1, and otherwise answers 0 and changes nothing, as Redis's
// RENAMENX: the check and the move are one step against every other
// client's create or rename of either name. A key renamed onto itself
// exists: 0, with nothing written.
func (s *Server) renamenx(ctx context.Context, c *conn, args [][]byte) {
	c.mayWait() // for the registry to forget the source
	renamed, p, err := s.reg.RenameNXNoWait(ctx, string(args[1]), string(args[2]))
	switch {
	case err == nil && !renamed:
		c.integer(0)
	case err == nil:
		start := len(c.out)
		c.integer(1)
		c.awaiting(p, start) // as RENAME's: the reply waits for the move
	case errors.Is(err, registry.ErrNotFound):
		c.err("ERR no such key")
	default:
		c.writeErr(err)
	}
}

// copyCmd serves COPY source destination [DB index] [REPLACE] (the
// registry's Copy): 1 once destination holds a copy of source's pairs,
// 0 when source is missing or destination exists without REPLACE. DB
// takes 0 alone, as SELECT does. With a store the reply waits for the
// copy's write, as RENAME's waits for its move.
func (s *Server) copyCmd(ctx context.Context, c *conn, args [][]byte) {
	replace := false
	for i := 3; i < len(args); i++ {
		switch {
		case equalFold(args[i], "replace"):
			replace = true
		case equalFold(args[i], "db") && i+1 < len(args):
			i++
			if !c.dbZero(args[i]) {
				return
			}
		default:
			c.syntaxErr()
			return
		}
	}
	if string(args[1]) == string(args[2]) {
		c.err("ERR source and destination objects are the same")
		return
	}
	c.mayWait() // for the registry to forget a replaced destination
	copied, p, err := s.reg.CopyNoWait(ctx, string(args[1]), string(args[2]), replace)
	switch {
	case errors.Is(err, registry.ErrNotFound), err == nil && !copied:
		c.integer(0)
	case err == nil:
		start := len(c.out)
		c.integer(1)
		c.awaiting(p, start)
	default:
		c.writeErr(err)
	}
}

// object serves OBJECT ENCODING, REFCOUNT, FREQ, IDLETIME and HELP for a
// key, as far as kv has what Redis reports: every hash is a hash table (a
// Go map; Redis says listpack for a small one), counted once; kv tracks
// neither access frequencies (its policy is noeviction: Redis's words
// for that) nor access times. A missing key is nil, before any error, as
// in Redis.
func (s *Server) object(ctx context.Context, c *conn, args [][]byte) {
	if equalFold(args[1], "help") {
		c.help([]string{
			"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"ENCODING <key>",
			"    Return the kind of internal representation used in order to store the value",
			"    associated with a <key> (always hashtable in kv).",
			"FREQ <key>",
			"    Not tracked: kv never evicts.",
			"IDLETIME <key>",
			"    Not tracked: kv keeps no access times.",
			"REFCOUNT <key>",
			"    Return the number of references of the value associated with the specified",
			"    <key> (always 1 in kv).",
			"HELP", "    Prints this help.",
		})
		return
	}
	b, ok := s.live(ctx, c, args[2])
	switch {
	case !ok:
	case b == nil:
		c.null()
	case equalFold(args[1], "encoding"):
		c.bulkString("hashtable")
	case equalFold(args[1], "refcount"):
		c.integer(1)
	case equalFold(args[1], "freq"):
		c.err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. " +
			"Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
	default: // idletime
		c.err("ERR kv keeps no access times: OBJECT IDLETIME is not supported")
	}
}
