package resp

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvproject/kv/bucket"
)

// RedisVersion is the Redis version kv reports in INFO and HELLO: the
// protocol level its commands follow.
const RedisVersion = "7.2.0"

func (s *Server) ping(_ context.Context, c *conn, args [][]byte) {
	if len(args) > 2 {
		c.wrongArgs("ping")
		return
	}
	if c.ps != nil && !c.resp3 { // RESP2 subscribers get PING as a message-shaped array
		c.array(2)
		c.bulkString("pong")
		if len(args) == 2 {
			c.bulk(args[1])
		} else {
			c.bulkString("")
		}
		return
	}
	if len(args) == 2 {
		c.bulk(args[1])
		return
	}
	c.simple("PONG")
}

func (s *Server) echo(_ context.Context, c *conn, args [][]byte) { c.bulk(args[1]) }

func (s *Server) quit(_ context.Context, c *conn, _ [][]byte) {
	c.ok()
	c.quit = true
}

// selectDB serves SELECT index: kv has database 0 alone. As Redis, it
// reads the index as a C int first, so that one outside 32 bits gets the
// range error of Redis's getIntFromObjectOrReply, and any other but 0
// "DB index is out of range" (see dbZero).
func (s *Server) selectDB(_ context.Context, c *conn, args [][]byte) {
	if c.dbZero(args[1]) {
		c.ok()
	}
}

// dbZero reports whether arg names database 0, the only one, and answers
// as Redis does for any other index (SELECT, COPY's DB option).
func (c *conn) dbZero(arg []byte) bool {
	n, ok := parseInt(arg)
	switch {
	case !ok:
		c.notInteger()
	case n < math.MinInt32 || n > math.MaxInt32:
		c.err("ERR value is out of range, value must between -2147483648 and 2147483647")
	case n != 0:
		c.err("ERR DB index is out of range")
	default:
		return true
	}
	return false
}

// checkPassword reports whether user (nil: the one-argument AUTH) and pw
// log in. It compares pw with the configured password in constant time
// (both are hashed first, so the length does not show either). Without a
// password the default user takes any password, as Redis's "nopass"
// default user does.
func (s *Server) checkPassword(user, pw []byte) bool {
	if s.cfg.Password == "" {
		return string(user) == "default"
	}
	h := sha256.Sum256(pw)
	okPw := subtle.ConstantTimeCompare(h[:], s.pwHash[:]) == 1
	return okPw && (user == nil || string(user) == "default")
}

func (s *Server) auth(_ context.Context, c *conn, args [][]byte) {
	if len(args) > 3 {
		c.syntaxErr()
		return
	}
	if s.cfg.Password == "" && len(args) == 2 {
		c.err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	var user []byte
	pw := args[1]
	if len(args) == 3 {
		user, pw = args[1], args[2]
	}
	if !s.checkPassword(user, pw) {
		c.err(errWrongPass)
		return
	}
	c.authed = true
	c.ok()
}

// Replies that two commands give alike, in Redis's words.
const (
	// errNoProto is Redis's answer to HELLO with a protocol version other
	// than 2 or 3.
	errNoProto = "NOPROTO unsupported protocol version"
	// errWrongPass answers AUTH, and HELLO's AUTH, with a wrong password.
	errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	// errBadClientName answers CLIENT SETNAME, and HELLO's SETNAME, with
	// a name validClientName refuses.
	errBadClientName = "ERR Client names cannot contain spaces, newlines or special characters."
)

// hello serves HELLO [protover [AUTH user pass] [SETNAME name]]: the
// client speaks RESP2 or RESP3 from its reply on (a map in RESP3), which
// describes the server. It answers Redis 7.0's errors in Redis 7.0's
// order: the version, then each option in the order given (a wrong
// password at its AUTH, a bad name at its SETNAME, an unknown word), then
// the login. Unlike Redis 7.0, which logs in at AUTH and names the client
// at SETNAME as it reads them, it acts on none until every option has
// passed: an error in the options leaves the client neither logged in nor
// renamed (a bad name after a good AUTH included), nor changes its
// protocol, and the name is set only once the client is logged in.
func (s *Server) hello(_ context.Context, c *conn, args [][]byte) {
	resp3 := c.resp3 // HELLO without a version keeps the client's
	if len(args) >= 2 {
		v, ok := parseInt(args[1])
		if !ok {
			c.err("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			c.err(errNoProto)
			return
		}
		resp3 = v == 3
	}
	var name []byte
	setName, login := false, false
	for i := 2; i < len(args); i++ {
		switch {
		case equalFold(args[i], "auth") && i+2 < len(args):
			if !s.checkPassword(args[i+1], args[i+2]) {
				c.err(errWrongPass)
				return
			}
			login = true
			i += 2
		case equalFold(args[i], "setname") && i+1 < len(args):
			if !validClientName(args[i+1]) {
				c.err(errBadClientName)
				return
			}
			name, setName = args[i+1], true
			i++
		default:
			c.err("ERR Syntax error in HELLO option '" + clip(args[i]) + "'")
			return
		}
	}
	if c.ps != nil && !c.ps.ended && resp3 != c.resp3 {
		// A subscriber's events are written as they come, framed in its
		// protocol: one framed before the switch could reach it after
		// the reply, or the other way round, and it would misread both.
		c.err("ERR HELLO cannot change the protocol of a subscribed client: UNSUBSCRIBE first")
		return
	}
	if login {
		c.authed = true
	}
	if !c.authed {
		c.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if setName {
		c.infoMu.Lock()
		c.name = string(name)
		c.infoMu.Unlock()
	}
	if resp3 != c.resp3 {
		c.setProto(resp3) // the reply is in the protocol chosen
	}
	proto := int64(2)
	if resp3 {
		proto = 3
	}
	c.mapLen(7)
	c.bulkString("server")
	c.bulkString("kv")
	c.bulkString("version")
	c.bulkString(RedisVersion)
	c.bulkString("proto")
	c.integer(proto)
	c.bulkString("id")
	c.integer(c.id)
	c.bulkString("mode")
	c.bulkString("standalone")
	c.bulkString("role")
	c.bulkString("master")
	c.bulkString("modules")
	c.array(0)
}

// timeCmd serves TIME: the Unix time in seconds and the microseconds of the
// second, as two bulk strings.
func (s *Server) timeCmd(_ context.Context, c *conn, _ [][]byte) {
	now := time.Now()
	c.array(2)
	c.bulkString(strconv.FormatInt(now.Unix(), 10))
	c.bulkString(strconv.Itoa(now.Nanosecond() / 1000))
}

func validClientName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func (s *Server) client(_ context.Context, c *conn, args [][]byte) {
	sub := strings.ToLower(string(args[1])) // known, with its arity: see the command table
	switch sub {
	case "id":
		c.integer(c.id)
	case "kill":
		s.clientKill(c, args)
	case "getname":
		c.infoMu.Lock()
		name := c.name
		c.infoMu.Unlock()
		if name == "" {
			c.null()
		} else {
			c.bulkString(name)
		}
	case "setname":
		if !validClientName(args[2]) {
			c.err(errBadClientName)
			return
		}
		c.infoMu.Lock()
		c.name = string(args[2])
		c.infoMu.Unlock()
		c.ok()
	case "setinfo":
		attr := strings.ToLower(string(args[2]))
		if attr != "lib-name" && attr != "lib-ver" {
			c.err("ERR Unrecognized option '" + clip(args[2]) + "'")
			return
		}
		if !validClientName(args[3]) {
			c.err("ERR " + clip(args[2]) + " cannot contain spaces, newlines or special characters.")
			return
		}
		c.infoMu.Lock()
		if attr == "lib-name" {
			c.libName = string(args[3])
		} else {
			c.libVer = string(args[3])
		}
		c.infoMu.Unlock()
		c.ok()
	case "info":
		c.verbatim(c.describe())
	case "list":
		listed, ok := s.listedClients(c, args[2:])
		if !ok {
			return
		}
		var b strings.Builder
		for _, o := range listed {
			b.WriteString(o.describe())
		}
		c.verbatim(b.String())
	case "no-evict", "no-touch":
		// Nothing to do in kv (it evicts no client and keeps no access
		// times), but the argument is checked as Redis checks it: ON or
		// OFF, in any case.
		if !equalFold(args[2], "on") && !equalFold(args[2], "off") {
			c.syntaxErr()
			return
		}
		c.ok()
	case "help":
		help := []string{
			"CLIENT <subcommand> [<arg> ...]. Subcommands are:",
			"ID", "    Return the ID of the current connection.",
			"KILL <ip:port>", "    Kill connection made from <ip:port>.",
			"KILL <option> <value> [<option> <value> [...]]",
			"    Kill connections. Options are:",
			"    * ADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made from the specified address",
			"    * LADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made to specified local address",
			"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Kill connections by type.",
			"    * USER <username>", "      Kill connections authenticated by <username>.",
			"    * SKIPME (YES|NO)", "      Skip killing current connection (default: yes).",
			"    * ID <client-id>", "      Kill connections by client id.",
			"GETNAME", "    Return the name of the current connection.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
			"SETINFO <LIB-NAME|LIB-VER> <value>", "    Set client library information.",
			"INFO", "    Return information about the current client connection.",
			"LIST", "    Return information about client connections.",
		}
		c.help(help)
	}
}

// listedClients returns the clients CLIENT LIST [TYPE type | ID id...]
// selects, as Redis does: every client, those of a type (a subscriber is
// "pubsub", any other client "normal"; kv has no "master" or "replica"),
// or those with the given ids, in their order. It writes Redis's error and
// reports false for anything else.
func (s *Server) listedClients(c *conn, args [][]byte) ([]*conn, bool) {
	all := slices.DeleteFunc(s.clients(), func(o *conn) bool { return o.killed.Load() }) // gone, as far as CLIENT KILL goes
	slices.SortFunc(all, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })        // Redis's order
	switch {
	case len(args) == 0:
		return all, true
	case len(args) == 2 && equalFold(args[0], "type"):
		var pubsub bool
		switch strings.ToLower(string(args[1])) {
		case "normal":
		case "pubsub":
			pubsub = true
		case "master", "replica", "slave":
			return nil, true
		default:
			c.err("ERR Unknown client type '" + clip(args[1]) + "'")
			return nil, false
		}
		return slices.DeleteFunc(all, func(o *conn) bool { return (o.subs.Load() > 0) != pubsub }), true
	case len(args) >= 2 && equalFold(args[0], "id"):
		// Each client once, in the order first named: Redis lists a client
		// as often as it is named, so that one id repeated (a million
		// times in a 7 MB request) made a reply of any size, 35 times the
		// request and more with a long name, built on the event loop. The
		// ids are looked up in a map: one pass over the clients, not one
		// for each id.
		byID := make(map[int64]*conn, len(all))
		for _, o := range all {
			byID[o.id] = o
		}
		var listed []*conn
		for _, a := range args[1:] {
			id, ok := parseInt(a)
			if !ok {
				c.err("ERR Invalid client ID")
				return nil, false
			}
			if o, ok := byID[id]; ok {
				listed = append(listed, o)
				delete(byID, id)
			}
		}
		return listed, true
	default:
		c.syntaxErr()
		return nil, false
	}
}

// describe is the client's line in CLIENT LIST. It has Redis's fields, in
// Redis's order, but for those kv has nothing to say about (fd, the
// events, the last command, tracking); client libraries read some as
// integers (redis-py's client_info fails without idle, multi or qbuf).
// kv does not count the memory of a client's buffers: those fields are 0.
func (c *conn) describe() string {
	c.infoMu.Lock()
	defer c.infoMu.Unlock()
	sub, psub := c.channels.Load(), c.patterns.Load()
	since := c.since()
	idle := since - time.Duration(c.lastRead.Load())
	flags := "N"
	multi := c.inMulti.Load() - 1 // -1 out of a transaction, as Redis
	proto := 2
	if c.proto3 {
		proto = 3
	}
	switch {
	case c.monitoring.Load():
		flags = "O"
	case c.subs.Load() > 0:
		flags = "P"
	case multi >= 0:
		flags = "x"
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d idle=%d flags=%s db=0 sub=%d psub=%d ssub=0 multi=%d "+
		"qbuf=0 qbuf-free=0 argv-mem=0 obl=0 oll=0 omem=0 tot-mem=0 user=default resp=%d lib-name=%s lib-ver=%s\n",
		c.id, c.addr, c.laddr, c.name, int(since.Seconds()), int(idle.Seconds()), flags, sub, psub, multi, proto, c.libName, c.libVer)
}

func (s *Server) commandCmd(ctx context.Context, c *conn, args [][]byte) {
	if len(args) == 1 {
		names := s.commandNames()
		c.array(len(names))
		for _, n := range names {
			c.commandInfo(s.cmds[n])
		}
		return
	}
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "count":
		c.integer(int64(len(s.cmds)))
	case "list":
		names := s.commandNames()
		switch {
		case len(args) == 2:
		case len(args) == 5 && equalFold(args[2], "filterby") && equalFold(args[3], "pattern"):
			budget := newGlobBudget()
			var ok bool
			if names, ok = budget.filter(string(args[4]), names); !ok {
				c.err(errGlobTooCostly)
				return
			}
		case len(args) == 5 && equalFold(args[2], "filterby") && equalFold(args[3], "aclcat"):
			cat := "@" + strings.TrimPrefix(strings.ToLower(string(args[4])), "@")
			names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(s.cmds[n].aclCategories(), cat) })
		case len(args) == 5 && equalFold(args[2], "filterby") && equalFold(args[3], "module"):
			names = nil // kv has no modules
		default:
			c.syntaxErr()
			return
		}
		c.array(len(names))
		for _, n := range names {
			c.bulkString(n)
		}
	case "getkeys":
		s.getKeys(c, args[2:])
	case "info":
		if len(args) == 2 { // every command, as COMMAND alone
			s.commandCmd(ctx, c, args[:1])
			return
		}
		// A command named over and over is described as often, as Redis
		// does: one name repeated (a million times in 10 MB) made an 80
		// MB reply on the event loop. Past MaxReplyBytes, a reply that
		// repeats a command is refused, and taken back.
		start, limit := len(c.out), s.cfg.MaxReplyBytes
		seen, repeats := make(map[*command]struct{}), false
		c.array(len(args) - 2)
		for _, a := range args[2:] {
			cmd := s.lookup(a)
			if cmd == nil {
				c.null() // as Redis 7: $-1, not *-1
				continue
			}
			if _, ok := seen[cmd]; ok {
				repeats = true
			}
			seen[cmd] = struct{}{}
			c.commandInfo(cmd)
			if repeats && len(c.out)-start > limit {
				c.out = c.out[:start]
				c.err("ERR value is out of range, the commands COMMAND INFO repeats pass " + strconv.Itoa(limit) + " bytes")
				return
			}
		}
	case "docs":
		var names []string
		if len(args) == 2 {
			names = s.commandNames()
		} else {
			// Each command once: the reply is a map, and one name
			// repeated (a million times in 10 MB) made a 400 MB reply,
			// 3 GB allocated, on the event loop.
			seen := make(map[*command]bool)
			for _, a := range args[2:] {
				if cmd := s.lookup(a); cmd != nil && !seen[cmd] {
					seen[cmd] = true
					names = append(names, cmd.name)
				}
			}
		}
		c.mapLen(len(names))
		for _, n := range names {
			cmd := s.cmds[n]
			c.bulkString(n)
			if len(cmd.args) > 0 {
				c.mapLen(5)
			} else {
				c.mapLen(4)
			}
			c.bulkString("summary")
			c.bulkString(cmd.doc)
			c.bulkString("since")
			c.bulkString("1.0.0")
			c.bulkString("group")
			c.bulkString(cmd.group)
			c.bulkString("complexity")
			c.bulkString("O(1)")
			if len(cmd.args) > 0 {
				c.bulkString("arguments")
				c.docArgs(cmd.args)
			}
		}
	default:
		c.err("ERR unknown subcommand '" + clip(args[1]) + "'. Try COMMAND HELP.")
	}
}

func (s *Server) commandNames() []string {
	names := make([]string, 0, len(s.cmds))
	for n := range s.cmds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// commandInfo writes one COMMAND entry in Redis 7's ten-element shape.
func (c *conn) commandInfo(cmd *command) {
	c.array(10)
	c.bulkString(cmd.name)
	c.integer(int64(cmd.arity))
	var flags []string
	switch {
	case cmd.flags&flagWrite != 0:
		flags = append(flags, "write")
	case cmd.keyspace(nil):
		// Redis's readonly: the command reads keys (clients route such
		// commands to replicas), not PING, CONFIG or MEMORY.
		flags = append(flags, "readonly")
	}
	if cmd.flags&flagNoAuth != 0 {
		flags = append(flags, "no_auth")
	}
	if cmd.flags&flagPubSub != 0 {
		flags = append(flags, "pubsub")
	}
	if cmd.flags&flagAdmin != 0 {
		flags = append(flags, "admin")
	}
	c.setLen(len(flags))
	for _, f := range flags {
		c.simple(f)
	}
	c.integer(int64(cmd.first))
	c.integer(int64(cmd.last))
	c.integer(int64(cmd.step))
	cats := cmd.aclCategories()
	c.setLen(len(cats))
	for _, cat := range cats {
		c.simple(cat)
	}
	c.setLen(0) // tips
	c.setLen(0) // key specs
	c.setLen(0) // subcommands
}

func (s *Server) info(_ context.Context, c *conn, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	// The sections outside the default ones, as in Redis: only asked for,
	// or with all or everything.
	optIn := func(name string) bool { return want[name] || want["all"] || want["everything"] }
	var b strings.Builder
	section := func(name string, lines ...string) {
		if !all && !want[strings.ToLower(name)] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	uptime := time.Since(s.started)
	port := ""
	if a := s.Addr(); a != nil {
		if _, p, err := net.SplitHostPort(a.String()); err == nil {
			port = p
		}
	}
	section("Server",
		"redis_version:"+RedisVersion,
		"kv_version:"+s.cfg.Version,
		"redis_mode:standalone",
		"os:"+runtime.GOOS+" "+runtime.GOARCH,
		"arch_bits:"+strconv.Itoa(strconv.IntSize),
		"go_version:"+runtime.Version(),
		"go_maxprocs:"+strconv.Itoa(runtime.GOMAXPROCS(0)),
		"multiplexing_api:"+s.multiplexing(),
		"process_id:"+strconv.Itoa(os.Getpid()),
		"tcp_port:"+port,
		"uptime_in_seconds:"+strconv.Itoa(int(uptime.Seconds())),
		"uptime_in_days:"+strconv.Itoa(int(uptime.Hours()/24)),
	)
	conns := s.clients()
	subs := 0
	for _, o := range conns {
		if o.subs.Load() > 0 {
			subs++
		}
	}
	section("Clients",
		"connected_clients:"+strconv.Itoa(len(conns)),
		"maxclients:"+strconv.FormatInt(s.maxClients.Load(), 10),
		"pubsub_clients:"+strconv.Itoa(subs),
		"event_loop_clients:"+strconv.Itoa(s.loop.Load().clients()),
		"blocked_clients:0",
	)
	if all || want["memory"] {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		section("Memory",
			"used_memory:"+strconv.FormatUint(ms.HeapAlloc, 10),
			"used_memory_human:"+humanBytes(ms.HeapAlloc),
			"used_memory_sys:"+strconv.FormatUint(ms.Sys, 10),
			"used_memory_sys_human:"+humanBytes(ms.Sys),
			"mem_allocator:go",
		)
	}
	section("Persistence", s.persistence()...)
	errorReplies, errorLines := s.errors.totals()
	section("Stats",
		"total_connections_received:"+strconv.FormatInt(s.totalConns.Load(), 10),
		"total_commands_processed:"+strconv.FormatInt(max(0, s.commandsProcessed()-s.commandsBase.Load()), 10),
		"rejected_connections:"+strconv.FormatInt(s.rejected.Load(), 10),
		"total_error_replies:"+strconv.FormatInt(errorReplies, 10), // after rejected_connections, as in Redis
		"slow_subscribers_disconnected:"+strconv.FormatInt(s.kicked.Load(), 10),
		"slow_monitors_disconnected:"+strconv.FormatInt(s.monitorsKicked.Load(), 10),
	)
	// A server on its own, as ROLE says: clients that pick a primary
	// (StackExchange.Redis, sentinel-aware ones) read role.
	section("Replication",
		"role:master",
		"connected_slaves:0",
		"master_failover_state:no-failover",
		"master_repl_offset:0",
	)
	var cpu []string
	if sys, user, ok := cpuTimes(); ok {
		// Redis's fields, in seconds; kv runs no child processes.
		secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 6, 64) }
		cpu = []string{"used_cpu_sys:" + secs(sys), "used_cpu_user:" + secs(user),
			"used_cpu_sys_children:0.000000", "used_cpu_user_children:0.000000"}
	}
	section("CPU", cpu...)
	section("Modules") // none: kv loads no modules (Redis's INFO has the section, empty, then)
	// Between Modules and Errorstats, as Redis lists it.
	if optIn("commandstats") {
		section("Commandstats", s.commandStats()...)
	}
	section("Errorstats", errorLines...)
	if optIn("latencystats") {
		section("Latencystats", s.latencyStats()...)
	}
	// Clients that choose between a cluster client and a plain one read it.
	section("Cluster", "cluster_enabled:0")
	lines := []string{}
	if n := s.reg.Len(); n > 0 {
		lines = append(lines, "db0:keys="+strconv.Itoa(n)+",expires=0,avg_ttl=0")
	}
	section("Keyspace", lines...)
	c.verbatim(b.String())
}

// commandStats is INFO's Commandstats section, in Redis's format, for
// the commands called since the start (kept when the server has an
// Observer, as the daemon's: see Server.observe). A command refused before
// it ran (its arity, AUTH, as MULTI queued it) counts as rejected only, not
// among the calls, as in Redis; one that ran and answered an error as
// failed. A subcommand counts under its own name (client|id), as in Redis 7
// (see command.stats).
func (s *Server) commandStats() []string {
	var lines []string
	add := func(name string, st *cmdStats) {
		calls, rejected, failed := st.calls.Load(), st.rejected.Load(), st.failed.Load()
		if calls == 0 && rejected == 0 && failed == 0 {
			return
		}
		usec := st.elapsed.Load() / 1000
		perCall := 0.0
		if calls > 0 {
			perCall = float64(usec) / float64(calls)
		}
		lines = append(lines, fmt.Sprintf("cmdstat_%s:calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d",
			name, calls, usec, perCall, rejected, failed))
	}
	for _, cmd := range s.cmds {
		cmd.eachStats(add)
	}
	slices.Sort(lines)
	return lines
}

// persistence is INFO's Persistence section, in Redis's field names:
// whether a durable store is under the buckets (aof_enabled; kv's log is
// always on when it is), and the checkpoints (the rdb_ fields): every
// save's when Backups reports them (SaveStats), else those of this
// server's SAVE and BGSAVE. loading is always 0: kv serves once its
// recovery is done.
func (s *Server) persistence() []string {
	durable, last := "0", int64(0)
	saves, failed, running := s.saves.Load(), s.saveFailed.Load(), s.saving.Load()
	if s.cfg.Backups != nil {
		durable = "1"
		if t := s.cfg.Backups.LastSave(); !t.IsZero() {
			last = t.Unix()
		}
		if st, ok := s.cfg.Backups.(SaveStats); ok {
			saves, failed, running = st.SaveStats()
		}
	}
	status, saving := "ok", "0"
	if failed {
		status = "err"
	}
	if running {
		saving = "1"
	}
	return []string{
		"loading:0",
		"async_loading:0",
		"rdb_bgsave_in_progress:" + saving,
		"rdb_last_save_time:" + strconv.FormatInt(last, 10),
		"rdb_last_bgsave_status:" + status,
		"rdb_saves:" + strconv.FormatInt(saves, 10),
		"aof_enabled:" + durable,
	}
}

// noCluster answers CLUSTER (any subcommand Redis has), READONLY,
// READWRITE and ASKING as Redis does with cluster support disabled.
func (s *Server) noCluster(_ context.Context, c *conn, _ [][]byte) {
	c.err("ERR This instance has cluster support disabled")
}

// role answers ROLE as a Redis primary without replicas does: kv
// does not replicate.
func (s *Server) role(_ context.Context, c *conn, _ [][]byte) {
	c.out = append(c.out, "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"...)
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + "G"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + "M"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 2, 64) + "K"
	}
	return strconv.FormatUint(n, 10) + "B"
}

// commandsProcessed is how many commands the server has run since it
// started: those of closed connections and of live ones.
func (s *Server) commandsProcessed() int64 {
	n := s.totalCommands.Load()
	for _, o := range s.clients() {
		n += o.commands.Load()
	}
	return n
}

// resetStats is CONFIG RESETSTAT: INFO's counters (commandstats and the
// latency histograms, total_commands_processed, total_connections_received,
// rejected_connections, slow_subscribers_disconnected,
// slow_monitors_disconnected, total_error_replies and errorstats) start
// again from 0.
func (s *Server) resetStats() {
	for _, cmd := range s.cmds {
		cmd.eachStats(func(_ string, st *cmdStats) { st.reset() })
	}
	s.commandsBase.Store(s.commandsProcessed())
	s.totalConns.Store(0)
	s.rejected.Store(0)
	s.kicked.Store(0)
	s.monitorsKicked.Store(0)
	s.errors.reset()
}

func (s *Server) config(_ context.Context, c *conn, args [][]byte) {
	if equalFold(args[1], "resetstat") {
		s.resetStats()
		c.ok()
		return
	}
	if equalFold(args[1], "set") {
		s.configSet(c, args[2:])
		return
	}
	if !equalFold(args[1], "get") {
		c.err("ERR CONFIG " + strings.ToUpper(clip(args[1])) + " is not supported by kv")
		return
	}
	// As Redis 7.0: a parameter is named in the reply as the first
	// argument that selects it spelled it, a name in any case ("MAXMEMORY"
	// answers "MAXMEMORY"), or by its own name if a pattern came first.
	params := s.configParams()
	var out [][2]string
	budget := newGlobBudget()
	for _, p := range params {
		for _, a := range args[2:] {
			if !bytes.ContainsAny(a, "[*?") {
				if equalFold(a, p[0]) {
					out = append(out, [2]string{string(a), p[1]})
					break
				}
				continue
			}
			match, ok := budget.match(strings.ToLower(string(a)), p[0])
			if !ok {
				c.err(errGlobTooCostly)
				return
			}
			if match {
				out = append(out, p)
				break
			}
		}
	}
	c.mapLen(len(out))
	for _, p := range out {
		c.bulkString(p[0])
		c.bulkString(p[1])
	}
}

// configParams returns the parameters CONFIG GET reports, by name, with
// their values as Redis writes them.
func (s *Server) configParams() [][2]string {
	port := "0"
	if a := s.Addr(); a != nil {
		_, port, _ = net.SplitHostPort(a.String())
	}
	appendonly := "no"
	if s.cfg.Backups != nil { // a durable store under the buckets
		appendonly = "yes"
	}
	tracking := "no"
	if s.obs != nil {
		tracking = "yes"
	}
	return [][2]string{
		{"appendonly", appendonly},
		{"databases", "1"},
		// The latency monitor is off, as by default in Redis; the
		// histograms of LATENCY HISTOGRAM are kept with an Observer.
		{"latency-monitor-threshold", "0"},
		{"latency-tracking", tracking},
		{"latency-tracking-info-percentiles", formatPercentiles(*s.percentiles.Load())},
		{"maxclients", strconv.FormatInt(s.maxClients.Load(), 10)},
		// kv never evicts: what job queues (BullMQ) and monitors check.
		{"maxmemory", "0"},
		{"maxmemory-policy", "noeviction"},
		{"port", port},
		{"proto-max-bulk-len", strconv.Itoa(s.cfg.MaxBulkLen)},
		{"save", ""},
		{"slowlog-log-slower-than", strconv.FormatInt(s.slowerThan.Load(), 10)},
		{"slowlog-max-len", strconv.FormatInt(max(0, s.slowMaxLen.Load()), 10)},
		{"timeout", strconv.FormatInt(int64(s.idleTimeout().Seconds()), 10)},
	}
}

// settable is what CONFIG SET may change, with the range Redis allows
// each, and where the value goes.
func (s *Server) settable(name string) (lo, hi int64, set func(int64), ok bool) {
	switch name {
	case "maxclients":
		return 1, math.MaxUint32, s.maxClients.Store, true
	case "slowlog-log-slower-than": // microseconds; -1: none kept
		return -1, math.MaxInt64, s.slowerThan.Store, true
	case "timeout": // seconds; 0: clients are never closed for idling
		return 0, math.MaxInt32, s.setIdleTimeout, true
	case "slowlog-max-len":
		return 0, math.MaxInt64, s.slowMaxLen.Store, true
	}
	return 0, 0, nil, false
}

// sameValue reports whether value sets the fixed parameter name to was,
// its value, as Redis 7 reads a value: yes/no and a policy without regard
// to case, a size in bytes with a unit (memtoull: k 1000, kb 1024, m, mb,
// g, gb, b).
func sameValue(name string, value []byte, was string) bool {
	switch name {
	case "appendonly", "maxmemory-policy":
		return strings.EqualFold(string(value), was)
	case "maxmemory", "proto-max-bulk-len":
		v := strings.ToLower(string(value))
		digits := strings.TrimRight(v, "bkmg")
		mul, ok := map[string]uint64{"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 * 1000, "mb": 1024 * 1024,
			"g": 1000 * 1000 * 1000, "gb": 1024 * 1024 * 1024}[v[len(digits):]]
		if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
			return false
		}
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || n > math.MaxUint64/mul {
			return false
		}
		return strconv.FormatUint(n*mul, 10) == was
	}
	return string(value) == was
}

// configSet serves CONFIG SET parameter value [parameter value ...], as
// Redis 7 does: all of them or none, the first bad one named in the
// error. maxclients, timeout, slowlog-log-slower-than and slowlog-max-len
// change at once (a lower maxclients refuses new clients, and disconnects
// none; a timeout applies to the clients connected already); the other
// parameters CONFIG GET reports are fixed while kv runs,
// and may be "set" to the value they have (a client that turns off
// Redis's snapshots with save "" is answered OK), not to another.
func (s *Server) configSet(c *conn, args [][]byte) {
	if len(args)%2 != 0 {
		c.syntaxErr() // as Redis 7, past the arity (a name without a value)
		return
	}
	current := map[string]string{}
	for _, p := range s.configParams() {
		current[p[0]] = p[1]
	}
	failed := func(name, why string) {
		c.err("ERR CONFIG SET failed (possibly related to argument '" + name + "') - " + why)
	}
	// The names first, as Redis: an unknown or repeated one is the error
	// whatever the values before it (the repeated one as the client spelt
	// it).
	seen := map[string]bool{}
	for i := 0; i < len(args); i += 2 {
		name := strings.ToLower(string(args[i]))
		if _, known := current[name]; !known {
			c.err("ERR Unknown option or number of arguments for CONFIG SET - '" + clip(args[i]) + "'")
			return
		}
		if seen[name] {
			failed(clip(args[i]), "duplicate parameter")
			return
		}
		seen[name] = true
	}
	var sets []func()
	for i := 0; i < len(args); i += 2 {
		name, value := strings.ToLower(string(args[i])), args[i+1]
		was := current[name]
		lo, hi, set, ok := s.settable(name)
		switch {
		case name == "latency-tracking-info-percentiles":
			ps, why := parsePercentiles(value)
			if why != "" {
				failed(name, why)
				return
			}
			sets = append(sets, func() { s.percentiles.Store(&ps) })
		case ok:
			v, isInt := parseInt(value)
			switch {
			case !isInt:
				failed(name, "argument couldn't be parsed into an integer")
				return
			case v < lo || v > hi:
				failed(name, "argument must be between "+strconv.FormatInt(lo, 10)+" and "+strconv.FormatInt(hi, 10)+" inclusive")
				return
			case name == "maxclients" && s.cfg.MaxClientsCeiling > 0 && v > int64(s.cfg.MaxClientsCeiling):
				// Redis's words when its open-file limit cannot be raised
				// that far: clients past it would take the files the
				// store and the listeners need.
				failed(name, "The operating system is not able to handle the specified number of clients, try with "+
					strconv.Itoa(s.cfg.MaxClientsCeiling))
				return
			}
			sets = append(sets, func() { set(v) })
		case !sameValue(name, value, was):
			failed(name, "kv cannot change it while it runs (it is "+strconv.Quote(was)+")")
			return
		}
	}
	for _, set := range sets {
		set()
	}
	// As Redis, which trims its slow log after every command while the
	// log is on: a shorter slowlog-max-len drops the oldest entries now.
	if s.slowerThan.Load() >= 0 {
		s.slowlog.trim(s.slowlogMaxLen())
	}
	c.ok()
}

// debug serves DEBUG CRASH-BUCKET name: it crashes one bucket with a panic
// inside bucket.Update, exactly as a faulty update function would, and
// replies once the registry has forgotten it. It is refused unless
// Config.EnableDebugCommand is set.
func (s *Server) debug(ctx context.Context, c *conn, args [][]byte) {
	if !equalFold(args[1], "crash-bucket") { // enabled: see conn.protected
		c.err("ERR unknown subcommand '" + clip(args[1]) + "'. Try DEBUG CRASH-BUCKET <key>.")
		return
	}
	if len(args) != 3 {
		c.wrongArgs("debug|crash-bucket")
		return
	}
	b, ok := s.live(ctx, c, args[2])
	if !ok {
		return
	}
	if b == nil {
		c.err("ERR no such key")
		return
	}
	name := b.Name()
	s.log.Warn("resp: DEBUG CRASH-BUCKET", "bucket", name, "client", c.addr)
	_ = b.Update(func(*bucket.Tx) error {
		panic("kv: DEBUG CRASH-BUCKET " + name)
	})
	if err := s.reg.WaitForgotten(ctx, b); err != nil {
		c.writeErr(err)
		return
	}
	c.ok()
}

func (s *Server) reset(_ context.Context, c *conn, _ [][]byte) {
	if c.ps != nil {
		c.endSubscribed() // disconnected instead if it lost events
	}
	if c.mon != nil {
		// The lines of the commands that ran before RESET, not written
		// yet, leave before its reply: none is dropped silently.
		c.out = append(c.out, c.mon.stop()...)
		c.mon = nil
	}
	c.infoMu.Lock()
	c.name = ""
	c.infoMu.Unlock()
	c.authed = s.cfg.Password == ""
	c.discardTransaction()
	if c.resp3 {
		c.setProto(false) // as Redis: back to RESP2
	}
	c.simple("RESET")
}

// wrongType serves a command of a Redis type kv does not have (strings,
// lists, sets, sorted sets): on an existing key, which is always a hash,
// it is Redis's WRONGTYPE; on a missing key, a read answers as Redis does
// for a missing key and a write is refused.
func (s *Server) wrongType(empty func(*conn), check func(*conn, [][]byte) bool) handlerFunc {
	return func(ctx context.Context, c *conn, args [][]byte) {
		if check != nil && !check(c, args) {
			return
		}
		b, ok := s.live(ctx, c, args[1])
		if !ok {
			return
		}
		if b != nil {
			c.err("WRONGTYPE Operation against a key holding the wrong kind of value")
			return
		}
		if empty == nil {
			c.err("ERR kv stores hashes only: '" + strings.ToLower(clip(args[0])) + "' is not supported")
			return
		}
		empty(c)
	}
}

// rangeIndexes checks LRANGE's start and stop (and ZRANGE's, by rank),
// which Redis reads before it looks the key up: a bad one is an error
// even for a missing key.
func rangeIndexes(c *conn, args [][]byte) bool {
	for _, a := range args[2:4] {
		if _, ok := parseInt(a); !ok {
			c.notInteger()
			return false
		}
	}
	return true
}

// zrangeArgs checks ZRANGE's options and range as Redis 7 does before it
// looks the key up (zrangeGenericCommand), with its errors: a missing
// key's empty answer, or an existing hash's WRONGTYPE, comes only after.
func zrangeArgs(c *conn, args [][]byte) bool {
	const (
		byRank = iota
		byScore
		byLex
	)
	by, chosen, rev, withScores, limited := byRank, false, false, false, false
	for j := 4; j < len(args); j++ {
		switch a := args[j]; {
		case equalFold(a, "withscores"):
			withScores = true
		case equalFold(a, "limit") && len(args)-j-1 >= 2:
			if _, ok := parseInt(args[j+1]); !ok {
				c.notInteger()
				return false
			}
			count, ok := parseInt(args[j+2])
			if !ok {
				c.notInteger()
				return false
			}
			limited = count != -1 // LIMIT offset -1: no limit
			j += 2
		case !rev && equalFold(a, "rev"):
			rev = true
		case !chosen && equalFold(a, "byscore"):
			by, chosen = byScore, true
		case !chosen && equalFold(a, "bylex"):
			by, chosen = byLex, true
		default:
			c.err("ERR syntax error")
			return false
		}
	}
	switch {
	case limited && by == byRank:
		c.err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
		return false
	case withScores && by == byLex:
		c.err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
		return false
	}
	if by == byRank {
		return rangeIndexes(c, args)
	}
	for _, a := range args[2:4] {
		switch by {
		case byScore:
			if !scoreBound(a) {
				c.err("ERR min or max is not a float")
				return false
			}
		case byLex:
			if !(len(a) > 0 && (a[0] == '(' || a[0] == '[') || string(a) == "+" || string(a) == "-") {
				c.err("ERR min or max not valid string range item")
				return false
			}
		}
	}
	return true
}

// scoreBound reports whether b is a score bound as Redis reads one
// (zslParseRangeItem): an optional '(' then what strtod reads whole, not
// NaN. strtod skips leading white space, reads nothing from an empty
// string (0, and its end reached: accepted), and takes an overflow as an
// infinity and an underflow as 0.
func scoreBound(b []byte) bool {
	if len(b) > 0 && b[0] == '(' {
		b = b[1:]
	}
	if len(b) == 0 {
		return true
	}
	// White space alone is not: strtod stops at its start.
	_, _, ok := strtod(strings.TrimLeft(string(b), " \t\n\v\f\r"))
	return ok
}

// What a bucket and each of its pairs cost beyond the bytes of keys and
// values, for MEMORY USAGE: the memory benchmark's figures (README,
// Memory: an empty bucket 3.1 to 3.7 KiB, its goroutine included; a pair
// of an 11-byte field and an 8-byte value 130 bytes).
const (
	memoryPerBucket = 3584
	memoryPerPair   = 112
)

// memory answers MEMORY USAGE key [SAMPLES count] (an estimate of the
// bucket's memory, nil for a missing key: Redis samples 5 pairs unless
// told otherwise, and SAMPLES 0 counts them all) and MEMORY HELP; the
// other subcommands are Redis's allocator's, which kv does not have.
// SAMPLES 0 reads the whole hash (11 ms for a million pairs) for a reply
// of a few bytes, which no reply bound slows down: MEMORY runs on the
// client's own goroutine (flagLong), or 400 of them pipelined held every
// other client of the event loop for 5.7 s.
func (s *Server) memory(ctx context.Context, c *conn, args [][]byte) {
	switch {
	case equalFold(args[1], "help"):
		help := []string{
			"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"USAGE <key> [SAMPLES <count>]",
			"    Return the estimated memory of <key>, in bytes: its bucket and its pairs,",
			"    estimated from <count> of them (default: 5; 0: all of them).",
			"HELP", "    Prints this help.",
		}
		c.help(help)
		return
	case !equalFold(args[1], "usage"):
		c.err("ERR MEMORY " + strings.ToUpper(clip(args[1])) + " is not supported by kv")
		return
	}
	samples := int64(5)
	for j := 3; j < len(args); j += 2 { // as Redis reads them: the last one counts
		if !equalFold(args[j], "samples") || j+1 == len(args) {
			c.syntaxErr()
			return
		}
		n, ok := parseInt(args[j+1])
		switch {
		case !ok:
			c.notInteger()
			return
		case n < 0:
			c.syntaxErr()
			return
		}
		samples = n
	}
	var pairs int
	var bytes int64
	found, ok := s.follow(ctx, c, args[2], func(b *bucket.Bucket) (err error) {
		pairs, bytes, err = b.Bytes(int(min(samples, math.MaxInt32)))
		return err
	})
	switch {
	case !ok:
	case !found:
		c.null()
	default:
		c.integer(memoryPerBucket + int64(pairs)*memoryPerPair + bytes)
	}
}

// subcommandKeyed are the subcommands that name a key, their third
// argument (Redis's key specs for them).
var subcommandKeyed = map[string]bool{
	"object|encoding": true, "object|freq": true, "object|idletime": true, "object|refcount": true,
	"memory|usage": true,
}

// getKeys answers COMMAND GETKEYS command [arg...]: the keys of the
// command line, from the positions the command table gives (those COMMAND
// INFO shows), with Redis 7's errors. A command whose keys only its
// subcommands name is looked at as Redis 7.0 does, by its subcommand: an
// unknown one is an invalid command, and OBJECT's and MEMORY USAGE's key
// is their third argument.
func (s *Server) getKeys(c *conn, line [][]byte) {
	cmd := s.lookup(line[0])
	if cmd == nil {
		c.err("ERR Invalid command specified")
		return
	}
	arity, first, last, step := cmd.arity, cmd.first, cmd.last, cmd.step
	if len(cmd.subs) > 0 && len(line) > 1 {
		i := cmd.subIndex(line[1])
		if i < 0 {
			c.err("ERR Invalid command specified")
			return
		}
		arity, first, last, step = cmd.subs[i].arity, 0, 0, 0
		if subcommandKeyed[cmd.subNames[i]] {
			first, last, step = 2, 2, 1
		}
	}
	switch {
	case first == 0:
		c.err("ERR The command has no key arguments")
		return
	case wrongArity(arity, len(line)):
		c.err("ERR Invalid number of arguments specified for command")
		return
	}
	if last < 0 {
		last += len(line)
	}
	step = max(step, 1)
	var keys [][]byte
	for i := first; i <= last && i < len(line); i += step {
		keys = append(keys, line[i])
	}
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}
