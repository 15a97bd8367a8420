package resp

import (
	"fmt"
	"strings"
)

// arg is one argument of a command, in the shape COMMAND DOCS reports and
// redis-cli 7 turns into the hints it shows while a command is typed.
type arg struct {
	name     string
	typ      string // key, string, integer, pattern, pure-token or block
	token    string // the literal word before the value, as MATCH in SCAN
	optional bool
	multiple bool
	args     []arg // a block's arguments
}

// syntax is the argument syntax of the commands that take arguments:
// lower-case words are arguments, upper-case words literal tokens, [ ]
// encloses what is optional, ( ) groups, and "..." repeats the item before
// it.
var syntax = map[string]string{
	"ping":         "[message]",
	"echo":         "message",
	"select":       "index",
	"hello":        "[protover [AUTH username password] [SETNAME clientname]]",
	"auth":         "[username] password",
	"client":       "subcommand [arg...]",
	"cluster":      "subcommand [arg...]",
	"command":      "[subcommand [arg...]]",
	"info":         "[section...]",
	"config":       "subcommand parameter...",
	"memory":       "subcommand [key [SAMPLES count]]",
	"object":       "subcommand [key]",
	"slowlog":      "subcommand [count]",
	"latency":      "subcommand [arg...]",
	"pubsub":       "subcommand [argument...]",
	"flushall":     "[mode]",
	"flushdb":      "[mode]",
	"bgsave":       "[SCHEDULE]",
	"shutdown":     "[mode] [NOW] [FORCE] [ABORT]",
	"debug":        "subcommand [arg...]",
	"exists":       "key...",
	"touch":        "key...",
	"del":          "key...",
	"unlink":       "key...",
	"type":         "key",
	"keys":         "pattern",
	"scan":         "cursor [MATCH pattern] [COUNT count] [TYPE type]",
	"rename":       "key newkey",
	"renamenx":     "key newkey",
	"copy":         "source destination [DB destination-db] [REPLACE]",
	"wait":         "numreplicas timeout",
	"waitaof":      "numlocal numreplicas timeout",
	"ttl":          "key",
	"pttl":         "key",
	"expiretime":   "key",
	"pexpiretime":  "key",
	"persist":      "key",
	"watch":        "key...",
	"hset":         "key (field value)...",
	"hmset":        "key (field value)...",
	"hsetnx":       "key field value",
	"hget":         "key field",
	"hmget":        "key field...",
	"hdel":         "key field...",
	"hexists":      "key field",
	"hlen":         "key",
	"hstrlen":      "key field",
	"hkeys":        "key",
	"hvals":        "key",
	"hgetall":      "key",
	"hincrby":      "key field increment",
	"hincrbyfloat": "key field increment",
	"hscan":        "key cursor [MATCH pattern] [COUNT count] [NOVALUES]",
	"hrandfield":   "key [count [WITHVALUES]]",
	"subscribe":    "channel...",
	"psubscribe":   "pattern...",
	"unsubscribe":  "[channel...]",
	"punsubscribe": "[pattern...]",
	// The other types' commands, which kv answers with WRONGTYPE or the
	// empty answer, have Redis's syntax, shortened where Redis's has
	// alternatives.
	"get":      "key",
	"strlen":   "key",
	"llen":     "key",
	"lrange":   "key start stop",
	"scard":    "key",
	"smembers": "key",
	"zcard":    "key",
	"zrange":   "key start stop [BYSCORE] [BYLEX] [REV] [LIMIT offset count] [WITHSCORES]",
	"set":      "key value [option...]",
	"incr":     "key",
	"append":   "key value",
	"lpush":    "key element...",
	"rpush":    "key element...",
	"sadd":     "key member...",
	"zadd":     "key [NX] [XX] [GT] [LT] [CH] [INCR] (score member)...",
}

// parseSyntax reads a syntax string (see syntax) into arguments.
func parseSyntax(s string) ([]arg, error) {
	r := strings.NewReplacer("[", " [ ", "]", " ] ", "(", " ( ", ")", " ) ", "...", " ... ")
	p := &syntaxParser{toks: strings.Fields(r.Replace(s))}
	args, err := p.seq("")
	if err != nil {
		return nil, fmt.Errorf("resp: syntax %q: %w", s, err)
	}
	return args, nil
}

type syntaxParser struct {
	toks []string
	pos  int
}

// seq reads items up to closer ("" for the end of the string).
func (p *syntaxParser) seq(closer string) ([]arg, error) {
	var args []arg
	for {
		if p.pos == len(p.toks) {
			if closer != "" {
				return nil, fmt.Errorf("missing %q", closer)
			}
			return args, nil
		}
		t := p.toks[p.pos]
		p.pos++
		var a arg
		switch t {
		case closer:
			if len(args) == 0 {
				return nil, fmt.Errorf("empty group before %q", closer)
			}
			return args, nil
		case "[", "(":
			end := map[string]string{"[": "]", "(": ")"}[t]
			inner, err := p.seq(end)
			if err != nil {
				return nil, err
			}
			a = group(inner)
			a.optional = a.optional || t == "["
		case "]", ")", "...":
			return nil, fmt.Errorf("unexpected %q", t)
		default:
			a = word(t)
		}
		if p.pos < len(p.toks) && p.toks[p.pos] == "..." {
			p.pos++
			a.multiple = true
		}
		args = append(args, a)
	}
}

// word is one argument, or a literal token when t is upper case.
func word(t string) arg {
	if strings.ToUpper(t) == t {
		return arg{name: strings.ToLower(t), typ: "pure-token", token: t}
	}
	switch t {
	case "key", "newkey":
		return arg{name: t, typ: "key"}
	case "count", "cursor", "index", "increment", "protover":
		return arg{name: t, typ: "integer"}
	case "pattern":
		return arg{name: t, typ: "pattern"}
	}
	return arg{name: t, typ: "string"}
}

// group is the argument a bracketed or parenthesised sequence stands for:
// the item itself when alone, a value with its token ("MATCH pattern"), or
// a block.
func group(inner []arg) arg {
	switch {
	case len(inner) == 1:
		return inner[0]
	case len(inner) == 2 && inner[0].typ == "pure-token" && inner[1].typ != "pure-token" && inner[1].args == nil:
		a := inner[1]
		a.token = inner[0].token
		return a
	}
	names := make([]string, len(inner))
	for i, a := range inner {
		names[i] = a.name
	}
	return arg{name: strings.Join(names, "_"), typ: "block", args: inner}
}

// docArgs writes arguments as COMMAND DOCS does.
func (c *conn) docArgs(args []arg) {
	c.array(len(args))
	for _, a := range args {
		var flags []string
		if a.optional {
			flags = append(flags, "optional")
		}
		if a.multiple {
			flags = append(flags, "multiple")
		}
		n := 4
		if a.token != "" {
			n += 2
		}
		if len(flags) > 0 {
			n += 2
		}
		if len(a.args) > 0 {
			n += 2
		}
		c.mapLen(n / 2)
		c.bulkString("name")
		c.bulkString(a.name)
		c.bulkString("type")
		c.bulkString(a.typ)
		if a.token != "" {
			c.bulkString("token")
			c.bulkString(a.token)
		}
		if len(flags) > 0 {
			c.bulkString("flags")
			c.setLen(len(flags))
			for _, f := range flags {
				c.simple(f) // a set of status replies, as Redis sends them (redis-cli asserts it)
			}
		}
		if len(a.args) > 0 {
			c.bulkString("arguments")
			c.docArgs(a.args)
		}
	}
}
