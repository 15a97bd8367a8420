package resp

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSyntax(t *testing.T) {
	key := arg{name: "key", typ: "key"}
	cases := []struct {
		in   string
		want []arg
	}{
		{"", nil},
		{"key", []arg{key}},
		{"key...", []arg{{name: "key", typ: "key", multiple: true}}},
		{"[message]", []arg{{name: "message", typ: "string", optional: true}}},
		{"key (field value)...", []arg{key, {name: "field_value", typ: "block", multiple: true, args: []arg{
			{name: "field", typ: "string"}, {name: "value", typ: "string"}}}}},
		{"cursor [MATCH pattern]", []arg{{name: "cursor", typ: "integer"},
			{name: "pattern", typ: "pattern", token: "MATCH", optional: true}}},
		{"key [count [WITHVALUES]]", []arg{key, {name: "count_withvalues", typ: "block", optional: true, args: []arg{
			{name: "count", typ: "integer"}, {name: "withvalues", typ: "pure-token", token: "WITHVALUES", optional: true}}}}},
		{"[channel...]", []arg{{name: "channel", typ: "string", optional: true, multiple: true}}},
	}
	for _, tc := range cases {
		got, err := parseSyntax(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"[key", "key]", "()", "... key", "(a b"} {
		_, err := parseSyntax(bad)
		assert.Error(t, err, bad)
	}
}

func TestEverySyntaxNamesACommand(t *testing.T) {
	ts := start(t, Config{})
	for name, syn := range syntax {
		cmd, ok := ts.srv.cmds[name]
		require.True(t, ok, name)
		assert.NotEmpty(t, cmd.args, "%s: %q", name, syn)
	}
	// And every command that takes arguments has its syntax, for COMMAND
	// DOCS and redis-cli's hints.
	for name, cmd := range ts.srv.cmds {
		if cmd.arity != 1 && name != "quit" {
			assert.Contains(t, syntax, name, "COMMAND DOCS has no arguments for %s", name)
		}
	}
}

// redis-cli 7 builds its hints from COMMAND DOCS and aborts at start-up
// unless each argument's flags are status replies, as Redis sends them.
func TestCommandDocsArgumentsAsRedisSendsThem(t *testing.T) {
	ts := start(t, Config{})
	nc, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = nc.Write([]byte("COMMAND DOCS hscan\r\n"))
	require.NoError(t, err)
	// The reply ends with its last argument, [NOVALUES]: read up to it.
	rd := bufio.NewReader(nc)
	var lines []string
	for !strings.HasSuffix(strings.Join(lines, "|"), "$8|NOVALUES|$5|flags|*1|+optional") {
		line, err := rd.ReadString('\n')
		require.NoError(t, err, "read so far: %q", lines)
		lines = append(lines, strings.TrimSuffix(line, "\r\n"))
	}
	reply := strings.Join(lines, "|")
	for _, want := range []string{
		"$9|arguments", "$4|name|$3|key|$4|type|$3|key",
		"$4|name|$6|cursor|$4|type|$7|integer",
		"$4|name|$7|pattern|$4|type|$7|pattern|$5|token|$5|MATCH|$5|flags|*1|+optional",
		"$5|token|$5|COUNT|$5|flags|*1|+optional",
	} {
		assert.Contains(t, reply, want)
	}
}
