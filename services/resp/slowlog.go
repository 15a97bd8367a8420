package resp

import (
	"context"
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
	entries []slowEntry // oldest first, at most Config.SlowlogMaxLen
}

// slow logs the command args of c, which ran for elapsed, if that is
// longer than the threshold. Only the arguments Redis keeps are copied.
func (s *Server) slow(c *conn, args [][]byte, elapsed time.Duration) {
	if s.cfg.SlowlogSlowerThan < 0 || elapsed < s.cfg.SlowlogSlowerThan || s.cfg.SlowlogMaxLen < 0 {
		return
	}
	n := min(len(args), slowlogMaxArgs)
	kept := make([]string, n)
	for i := range n {
		a := args[i]
		if len(a) > slowlogMaxArgLen {
			kept[i] = string(a[:slowlogMaxArgLen]) + "... (" + strconv.Itoa(len(a)-slowlogMaxArgLen) + " more bytes)"
		} else {
			kept[i] = string(a)
		}
	}
	if len(args) > slowlogMaxArgs {
		kept[n-1] = "... (" + strconv.Itoa(len(args)-slowlogMaxArgs+1) + " more arguments)"
	}
	c.infoMu.Lock()
	name := c.name
	c.infoMu.Unlock()
	e := slowEntry{at: time.Now().Unix(), micros: elapsed.Microseconds(), args: kept, addr: c.addr, clientID: name}
	l := &s.slowlog
	l.mu.Lock()
	defer l.mu.Unlock()
	e.id = l.nextID
	l.nextID++
	if len(l.entries) == s.cfg.SlowlogMaxLen {
		copy(l.entries, l.entries[1:])
		l.entries = l.entries[:len(l.entries)-1]
	}
	if s.cfg.SlowlogMaxLen > 0 {
		l.entries = append(l.entries, e)
	}
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
		entries := l.entries
		if count >= 0 && int64(len(entries)) > count {
			entries = entries[int64(len(entries))-count:]
		}
		entries = append([]slowEntry(nil), entries...)
		l.mu.Unlock()
		c.array(len(entries))
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
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
		l.entries = nil
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
			"HELP", "    Print this help.",
		}
		c.array(len(help))
		for _, h := range help {
			c.simple(h)
		}
	}
}
