package resp

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Redis's bounds on what the slow log keeps of one command
// (SLOWLOG_ENTRY_MAX_ARGC, SLOWLOG_ENTRY_MAX_STRING).
const (
	slowlogMaxArgs   = 32
	slowlogMaxArgLen = 128
)

// slowEntry is one command of the slow log.
type slowEntry struct {
	id       int64
	at       int64 // Unix seconds, when it was logged
	micros   int64 // how long it ran
	args     []string
	addr     string
	clientID string // the client's name
}

// slowlog keeps the last commands that ran for longer than
// Config.SlowlogSlowerThan, as Redis's SLOWLOG does: kept, as the
// commandstats are, when the server has an Observer (see Server.observe).
type slowlog struct {
	mu      sync.Mutex
	nextID  int64
	entries []slowEntry // at most Config.SlowlogMaxLen: a ring once full
	oldest  int         // entries[oldest] is the oldest (0 until full)
}

// slow logs the command cmd, args of c, which ran for elapsed, if that is
// longer than the threshold. Only the arguments Redis keeps are copied,
// and, as Redis does, not a secret (see redacted), nor EXEC, whose
// commands are logged one by one (Redis's skip_slowlog).
func (s *Server) slow(c *conn, cmd *command, args [][]byte, elapsed time.Duration) {
	// As Redis: whole microseconds, compared with the threshold in them (a
	// threshold in nanoseconds would not hold all of slowlog-log-slower-than).
	slowerThan := s.slowerThan.Load()
	if slowerThan < 0 || elapsed.Microseconds() < slowerThan || s.slowlogMaxLen() <= 0 || cmd == nil || cmd.flags&flagExclusive != 0 {
		return
	}
	kept := keptArgs(cmd, args)
	c.infoMu.Lock()
	name := c.name
	c.infoMu.Unlock()
	e := slowEntry{at: time.Now().Unix(), micros: elapsed.Microseconds(), args: kept, addr: c.addr, clientID: name}
	l := &s.slowlog
	l.mu.Lock()
	defer l.mu.Unlock()
	// The length again, under the lock: a CONFIG SET that shortened the
	// log since has trimmed it (see trim), and a push with the old length
	// would leave one entry too many, for good when the length is 0.
	maxLen := s.slowlogMaxLen()
	if maxLen <= 0 {
		return
	}
	e.id = l.nextID
	l.nextID++
	l.push(e, maxLen)
}

// slowlogMaxLen is slowlog-max-len as an int (which is 32 bits on some
// platforms).
func (s *Server) slowlogMaxLen() int {
	return int(min(s.slowMaxLen.Load(), math.MaxInt))
}

// trim drops the oldest entries past maxLen, as Redis trims its log after
// every command while the log is on, the CONFIG SET that shortened it
// first: the log is never longer than slowlog-max-len for long.
func (l *slowlog) trim(maxLen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) <= maxLen {
		return
	}
	kept := l.newestFirst(int64(max(0, maxLen)))
	slices.Reverse(kept)
	l.entries, l.oldest = kept, 0
}

// push adds e, the newest entry, keeping at most maxLen (at least 1); the
// caller holds l.mu. The entries are a ring once full, so that a push costs
// the same whatever the length. Once CONFIG SET has changed the length
// since the ring filled, the entries are put back oldest first, the
// newest kept.
func (l *slowlog) push(e slowEntry, maxLen int) {
	if len(l.entries) > maxLen || l.oldest != 0 && len(l.entries) != maxLen {
		kept := l.newestFirst(int64(maxLen - 1)) // and e
		slices.Reverse(kept)
		l.entries, l.oldest = kept, 0
	}
	if len(l.entries) < maxLen {
		l.entries = append(l.entries, e)
		return
	}
	l.entries[l.oldest] = e
	l.oldest = (l.oldest + 1) % len(l.entries)
}

// keptArgs returns what Redis's slow log keeps of the command args: 32
// arguments at most, the last of them then saying how many more there
// were, each cut to 128 bytes with how many more it had, its secrets
// "(redacted)". MONITOR shows a line too long as this too.
func keptArgs(cmd *command, args [][]byte) []string {
	secret := redacted(cmd, args)
	n := min(len(args), slowlogMaxArgs)
	kept := make([]string, n)
	for i := range n {
		a := args[i]
		switch {
		case len(args) > slowlogMaxArgs && i == n-1:
			kept[i] = "... (" + strconv.Itoa(len(args)-slowlogMaxArgs+1) + " more arguments)"
		case secret(i):
			kept[i] = "(redacted)"
		case len(a) > slowlogMaxArgLen:
			kept[i] = string(a[:slowlogMaxArgLen]) + "... (" + strconv.Itoa(len(a)-slowlogMaxArgLen) + " more bytes)"
		default:
			kept[i] = string(a)
		}
	}
	return kept
}

// redacted returns which of args Redis's slow log shows as "(redacted)":
// AUTH's arguments, and the user name and password of HELLO's AUTH
// (redactClientCommandArgument).
func redacted(cmd *command, args [][]byte) func(i int) bool {
	switch cmd.name {
	case "auth":
		return func(i int) bool { return i > 0 }
	case "hello":
		// As Redis's helloCommand walks its options.
		secret := map[int]bool{}
		for j := 2; j < len(args); j++ {
			more := len(args) - 1 - j
			switch {
			case equalFold(args[j], "auth") && more >= 2:
				secret[j+1], secret[j+2] = true, true
				j += 2
			case equalFold(args[j], "setname") && more >= 1:
				j++
			default:
				j = len(args)
			}
		}
		return func(i int) bool { return secret[i] }
	}
	return func(int) bool { return false }
}

// newestFirst returns up to count entries (all: count < 0), newest first;
// the caller holds l.mu.
func (l *slowlog) newestFirst(count int64) []slowEntry {
	n := int64(len(l.entries))
	if count >= 0 && count < n {
		n = count
	}
	out := make([]slowEntry, 0, n)
	for k := int64(len(l.entries)) - 1; k >= 0 && int64(len(out)) < n; k-- {
		out = append(out, l.entries[(int64(l.oldest)+k)%int64(len(l.entries))])
	}
	return out
}

// slowlogCmd answers SLOWLOG GET [count], LEN, RESET and HELP, in Redis's
// format: GET lists the newest first, 10 unless count says otherwise (-1:
// all of them).
func (s *Server) slowlogCmd(_ context.Context, c *conn, args [][]byte) {
	l := &s.slowlog
	switch strings.ToLower(string(args[1])) {
	case "get":
		count := int64(10)
		switch {
		case len(args) > 3:
			c.err("ERR unknown subcommand or wrong number of arguments for 'GET'. Try SLOWLOG HELP.")
			return
		case len(args) == 3:
			n, ok := parseInt(args[2])
			if !ok || n < -1 {
				c.err("ERR count should be greater than or equal to -1")
				return
			}
			count = n
		}
		l.mu.Lock()
		entries := l.newestFirst(count)
		l.mu.Unlock()
		c.array(len(entries))
		for _, e := range entries {
			c.array(6)
			c.integer(e.id)
			c.integer(e.at)
			c.integer(e.micros)
			c.array(len(e.args))
			for _, a := range e.args {
				c.bulkString(a)
			}
			c.bulkString(e.addr)
			c.bulkString(e.clientID)
		}
	case "len":
		l.mu.Lock()
		n := len(l.entries)
		l.mu.Unlock()
		c.integer(int64(n))
	case "reset":
		l.mu.Lock()
		l.entries, l.oldest = nil, 0
		l.mu.Unlock()
		c.ok()
	case "help":
		help := []string{
			"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET [<count>]",
			"    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
			"    Entries are made of:",
			"    id, timestamp, time in microseconds, arguments array, client IP and port,",
			"    client name",
			"LEN", "    Return the length of the slowlog.",
			"RESET", "    Reset the slowlog.",
			"HELP", "    Prints this help.",
		}
		c.help(help)
	}
}
