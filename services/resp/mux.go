package resp

import (
	"context"
	"sync/atomic"
	"unsafe"
)

// handlerFunc runs one command. args[0] is the command name as the client
// spelled it; every argument aliases the connection's read buffer and is
// valid only until the handler returns, so anything kept must be copied.
type handlerFunc func(ctx context.Context, c *conn, args [][]byte)

// Command flags.
const (
	flagWrite  = 1 << iota // changes data
	flagNoAuth             // allowed before AUTH
	flagPubSub             // allowed while subscribed
	flagAdmin              // server administration
	// flagOwnGoroutine: the command makes the client need a goroutine of
	// its own (a subscription writes to it from another goroutine; SAVE
	// waits for the disk): the event loop hands the client over first.
	flagOwnGoroutine
	// flagNotQueued: the command runs at once between MULTI and EXEC
	// (EXEC, DISCARD, MULTI, QUIT, RESET), where the others are queued.
	flagNotQueued
	// flagExclusive: the command runs alone, with no other client's
	// command between (EXEC: see Server.tx).
	flagExclusive
	// flagLong: the command may run for long (FLUSHALL waits for every
	// bucket to end: half a second for 100,000): the event loop hands
	// the client a goroutine of its own before it runs, so that no other
	// client waits for it. Otherwise it is an ordinary command, queued
	// by MULTI (EXEC runs it on the loop, as Redis runs a transaction
	// with every other client waiting) and run under the transactions'
	// read lock.
	flagLong
	// flagProtected: the command is refused, before it runs and as it is
	// queued, unless the server enables it (DEBUG, as Redis's
	// enable-debug-command protects it).
	flagProtected
)

// command is one entry of the command table, which also feeds COMMAND.
type command struct {
	name  string // lower case
	arity int    // Redis's convention: n exactly, or -n for at least n
	flags int
	first int // position of the first key (0: none)
	last  int // of the last key (-1: the last argument)
	step  int // between keys
	group string
	doc   string
	args  []arg // its syntax, for COMMAND DOCS
	// subs, for a command with subcommands (CLIENT, COMMAND, CONFIG): each
	// one's arity, counting the command's name, as Redis's table has it.
	// An unknown subcommand, or one with the wrong number of arguments,
	// is refused before the handler runs, and as it is queued in MULTI.
	subs []subcommand
	fn   handlerFunc

	// What INFO commandstats and LATENCY HISTOGRAM report, kept only when
	// the server has an Observer (see Server.observe): the command's own,
	// and each subcommand's (subStats[i] is subs[i]'s, named subNames[i],
	// "client|id"), as Redis 7 counts them.
	cmdStats
	subStats []cmdStats
	subNames []string
}

// cmdStats are a command's counts, or a subcommand's.
type cmdStats struct {
	calls, rejected, failed atomic.Int64
	elapsed                 atomic.Int64     // nanoseconds, in all
	latency                 latencyHistogram // LATENCY HISTOGRAM's
}

// reset empties the counts (CONFIG RESETSTAT).
func (st *cmdStats) reset() {
	st.calls.Store(0)
	st.elapsed.Store(0)
	st.rejected.Store(0)
	st.failed.Store(0)
	st.latency.reset()
}

// eachStats calls fn with the command's counts, then each subcommand's,
// with the name INFO commandstats gives them ("client", "client|id").
func (cmd *command) eachStats(fn func(name string, st *cmdStats)) {
	fn(cmd.name, &cmd.cmdStats)
	for i := range cmd.subStats {
		fn(cmd.subNames[i], &cmd.subStats[i])
	}
}

// stats returns where a call of cmd with args counts: a subcommand's own
// counts when args name one, the command's otherwise (CLIENT alone,
// refused for its arity, counts under client), and nil for an unknown
// subcommand, which Redis counts nowhere.
func (cmd *command) stats(args [][]byte) *cmdStats {
	if len(cmd.subs) == 0 || len(args) < 2 {
		return &cmd.cmdStats
	}
	if i := cmd.subIndex(args[1]); i >= 0 {
		return &cmd.subStats[i]
	}
	return nil
}

// subcommand is a subcommand's name (lower case) and arity.
type subcommand struct {
	name  string
	arity int
}

// fullName is the command's name as Redis names it in errors: with its
// subcommand, "client|id", when it has one and args name it.
func (cmd *command) fullName(args [][]byte) string {
	if len(args) > 1 {
		if i := cmd.subIndex(args[1]); i >= 0 {
			return cmd.subNames[i]
		}
	}
	return cmd.name
}

// wrongArity reports whether n arguments, the name included, miss arity,
// in Redis's convention: n exactly, or -n for at least n.
func wrongArity(arity, n int) bool {
	return arity > 0 && n != arity || arity < 0 && n < -arity
}

// subIndex returns the index in cmd.subs of the subcommand named name, in
// any case, or -1.
func (cmd *command) subIndex(name []byte) int {
	for i, sc := range cmd.subs {
		if equalFold(name, sc.name) {
			return i
		}
	}
	return -1
}

// mux is the command table, filled once by New; like redcon.ServeMux and
// http.ServeMux it refuses a second registration of a name.
type mux map[string]*command

// handle registers cmd; it panics on a duplicate, so a mistake shows at
// startup.
func (m mux) handle(cmd *command) {
	if cmd.name == "" || cmd.fn == nil {
		panic("resp: invalid command registration")
	}
	if _, dup := m[cmd.name]; dup {
		panic("resp: multiple registrations for " + cmd.name)
	}
	m[cmd.name] = cmd
}

// maxCommandName is the longest command name the table can hold.
const maxCommandName = 32

// lookup finds a command by name, in any case, without allocating.
func (s *Server) lookup(name []byte) *command {
	if len(name) > maxCommandName {
		return nil
	}
	var lower [maxCommandName]byte
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		lower[i] = ch
	}
	return s.cmds[string(lower[:len(name)])]
}

// str views b as a string without copying, for lookups that do not keep
// it (map indexes, comparisons). Never store the result.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// equalFold reports whether b equals the lower-case ASCII word w in any case.
func equalFold(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i := range len(b) {
		ch := b[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != w[i] {
			return false
		}
	}
	return true
}

// onData reports whether the command is on data: a type's command, or one
// on the keyspace (the generic group, DBSIZE, FLUSHALL, FLUSHDB). Its ACL
// categories say @read or @write.
func (c *command) onData() bool {
	switch c.group {
	case "hash", "string", "list", "set", "sorted-set", "generic":
		return true
	}
	return c.name == "dbsize" || c.name == "flushall" || c.name == "flushdb"
}

// keyspace reports whether the command args reads or writes keys, which
// Redis refuses to a client in MONITOR mode: the commands on data but WAIT
// and WAITAOF, and MEMORY USAGE.
func (c *command) keyspace(args [][]byte) bool {
	switch c.name {
	case "wait", "waitaof":
		return false
	case "memory":
		return len(args) > 1 && equalFold(args[1], "usage")
	case "object":
		return len(args) > 1 && !equalFold(args[1], "help")
	}
	return c.onData()
}

// aclCategories returns the command's ACL categories as Redis names them
// (COMMAND INFO lists them; COMMAND LIST FILTERBY ACLCAT filters by them):
// its data type or area, then @read or @write for a command on data, and
// @admin and @dangerous for an administrative one.
func (c *command) aclCategories() []string {
	var cats []string
	onData := c.onData()
	switch {
	case c.group == "hash", c.group == "string", c.group == "list", c.group == "set":
		cats = append(cats, "@"+c.group)
	case c.group == "sorted-set":
		cats = append(cats, "@sortedset")
	case onData:
		cats = append(cats, "@keyspace")
	case c.group == "connection":
		cats = append(cats, "@connection")
	case c.group == "pubsub":
		cats = append(cats, "@pubsub")
	}
	switch {
	case c.flags&flagWrite != 0:
		cats = append(cats, "@write")
	case onData:
		cats = append(cats, "@read")
	}
	switch {
	case c.flags&flagAdmin != 0:
		cats = append(cats, "@admin", "@dangerous")
	case c.name == "keys", c.name == "flushall", c.name == "flushdb":
		cats = append(cats, "@dangerous") // they touch every key
	}
	return cats
}
