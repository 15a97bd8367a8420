package text

import (
	"errors"
	"strings"
)

// ErrUnknownCommand is returned by [Parse] for a line that is not a command:
// an unknown verb (verbs are case-sensitive), the wrong number of arguments,
// or no tokens at all. The server replies UNKNOWN COMMAND to it.
var ErrUnknownCommand = errors.New("text: unknown command")

// Verb is a command's verb.
type Verb uint8

// The verbs of the protocol. Auth exists only on servers with a password.
const (
	Create Verb = iota + 1 // CREATE bucket
	Get                    // GET bucket key
	Put                    // PUT bucket key value
	Delete                 // DELETE bucket key
	Auth                   // AUTH password
)

// String returns the verb as it is written on the wire, or "" for an
// invalid Verb.
func (v Verb) String() string {
	switch v {
	case Create:
		return "CREATE"
	case Get:
		return "GET"
	case Put:
		return "PUT"
	case Delete:
		return "DELETE"
	case Auth:
		return "AUTH"
	}
	return ""
}

// arity is the number of tokens the verb takes after itself.
func (v Verb) arity() int {
	switch v {
	case Create, Auth:
		return 1
	case Get, Delete:
		return 2
	case Put:
		return 3
	}
	return -1
}

// metric returns the command label of the verb in kv's metrics.
func (v Verb) metric() string {
	switch v {
	case Create:
		return "create"
	case Get:
		return "get"
	case Put:
		return "put"
	case Delete:
		return "delete"
	case Auth:
		return "auth"
	}
	return "unknown"
}

// Command is one parsed line. Fields the verb does not take are empty.
type Command struct {
	Verb     Verb
	Bucket   string // CREATE, GET, PUT, DELETE
	Key      string // GET, PUT, DELETE
	Value    string // PUT
	Password string // AUTH
}

// maxTokens is one more than the longest command (PUT bucket key value), so
// that a line with too many tokens is told apart without counting them all.
const maxTokens = 5

// Parse parses one line of the protocol, with or without its line end. The
// line is split on runs of white space as the guide's String.split/1
// splits it: Unicode white space, so "\r", "\n", "\t" and the rest all
// separate tokens and leading or trailing ones are ignored, except the
// non-breaking spaces (U+00A0, U+2007, U+202F), which are part of a token
// ("Divisions do not occur on non-breaking whitespace"); the first token
// is the verb, matched case-sensitively; the number of the other tokens must be the
// verb's arity. Anything else is [ErrUnknownCommand]. Tokens are any other
// bytes, invalid UTF-8 included. Parse does not allocate: the strings of the
// Command share line's memory.
func Parse(line string) (Command, error) {
	var tok [maxTokens]string
	n := 0
	for f := range strings.FieldsFuncSeq(line, isSpace) {
		if n == maxTokens {
			return Command{}, ErrUnknownCommand
		}
		tok[n] = f
		n++
	}
	if n == 0 {
		return Command{}, ErrUnknownCommand
	}
	var v Verb
	switch tok[0] {
	case "CREATE":
		v = Create
	case "GET":
		v = Get
	case "PUT":
		v = Put
	case "DELETE":
		v = Delete
	case "AUTH":
		v = Auth
	default:
		return Command{}, ErrUnknownCommand
	}
	if n-1 != v.arity() {
		return Command{}, ErrUnknownCommand
	}
	c := Command{Verb: v}
	if v == Auth {
		c.Password = tok[1]
		return c, nil
	}
	c.Bucket, c.Key, c.Value = tok[1], tok[2], tok[3]
	return c, nil
}

// String formats c as a line of the protocol, without the line end; Parse
// of the result returns c again when c's fields hold no white space.
func (c Command) String() string {
	switch c.Verb {
	case Create:
		return "CREATE " + c.Bucket
	case Get:
		return "GET " + c.Bucket + " " + c.Key
	case Put:
		return "PUT " + c.Bucket + " " + c.Key + " " + c.Value
	case Delete:
		return "DELETE " + c.Bucket + " " + c.Key
	case Auth:
		return "AUTH " + c.Password
	}
	return ""
}
