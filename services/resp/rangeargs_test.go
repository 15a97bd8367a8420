package resp

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// LRANGE and ZRANGE, which kv answers for the types it does not have,
// check their arguments before the key, as Redis does: a bad one is an
// error for a missing key, and for a hash before WRONGTYPE. The expected
// replies are redis-server 7.0.15's (redis-cli, on a hash h).
func TestRangeArgumentsCheckedAsRedis(t *testing.T) {
	const (
		notInteger = "-ERR value is not an integer or out of range"
		syntax     = "-ERR syntax error"
		notFloat   = "-ERR min or max is not a float"
		notLex     = "-ERR min or max not valid string range item"
		wrongType  = "-WRONGTYPE Operation against a key holding the wrong kind of value"
		empty      = "*0"
	)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"LRANGE", "nokey", "a", "1"}, notInteger},
		{[]string{"LRANGE", "h", "a", "1"}, notInteger},
		{[]string{"LRANGE", "nokey", "0", "+1"}, notInteger},
		{[]string{"LRANGE", "h", "0", "1"}, wrongType},
		{[]string{"LRANGE", "nokey", "0", "-1"}, empty},
		{[]string{"ZRANGE", "nokey", "a", "b"}, notInteger},
		{[]string{"ZRANGE", "h", "a", "b"}, notInteger},
		{[]string{"ZRANGE", "nokey", "0", "99999999999999999999"}, notInteger},
		{[]string{"ZRANGE", "h", "0", "1"}, wrongType},
		{[]string{"ZRANGE", "h", "0", "1", "BYSCORE"}, wrongType},
		{[]string{"ZRANGE", "nokey", "0", "1"}, empty},
		{[]string{"ZRANGE", "nokey", "0", "1", "BOGUS"}, syntax},
		{[]string{"ZRANGE", "nokey", "0", "1", "REV", "REV"}, syntax},
		{[]string{"ZRANGE", "nokey", "0", "1", "BYSCORE", "BYLEX"}, syntax},
		{[]string{"ZRANGE", "nokey", "0", "1", "LIMIT", "1"}, syntax},
		{[]string{"ZRANGE", "nokey", "0", "1", "LIMIT", "0", "1"}, "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"},
		{[]string{"ZRANGE", "nokey", "0", "1", "LIMIT", "0", "-2"}, "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"},
		{[]string{"ZRANGE", "nokey", "0", "1", "LIMIT", "0", "-1"}, empty},
		{[]string{"ZRANGE", "nokey", "0", "1", "LIMIT", "a", "1", "BYSCORE"}, notInteger},
		{[]string{"ZRANGE", "nokey", "0", "1", "limit", "0", "-1", "BYSCORE", "WITHSCORES", "REV"}, empty},
		{[]string{"ZRANGE", "nokey", "[a", "+", "BYLEX", "WITHSCORES"}, "-ERR syntax error, WITHSCORES not supported in combination with BYLEX"},
		{[]string{"ZRANGE", "nokey", "a", "b", "BYSCORE"}, notFloat},
		{[]string{"ZRANGE", "nokey", "1", "2", "BYLEX"}, notLex},
	}
	for _, bound := range []string{"(1", "(", "(inf", "(-inf", "+inf", "-inf", "inf", "infinity", "1e-400", "(1e400",
		"1.", ".5", "0x1p3", "0x10", "", " 1"} {
		cases = append(cases, struct {
			args []string
			want string
		}{[]string{"ZRANGE", "nokey", bound, "1", "BYSCORE"}, empty})
	}
	for _, bound := range []string{"(nan", "1 ", " ", "-", "1e", "0x", "nan", "-nan", "NaN", "1_0"} {
		cases = append(cases, struct {
			args []string
			want string
		}{[]string{"ZRANGE", "nokey", bound, "1", "BYSCORE"}, notFloat})
	}
	for _, bound := range []string{"[", "(", "[a", "(a", "+", "-"} {
		cases = append(cases, struct {
			args []string
			want string
		}{[]string{"ZRANGE", "nokey", bound, "+", "BYLEX"}, empty})
	}
	for _, bound := range []string{"++", "a", ""} {
		cases = append(cases, struct {
			args []string
			want string
		}{[]string{"ZRANGE", "nokey", bound, "+", "BYLEX"}, notLex})
	}

	ts := start(t, Config{})
	require.NoError(t, ts.client(t).HSet(context.Background(), "h", "f", "v").Err())
	r := ts.raw(t)
	for _, tc := range cases {
		r.send(resp(tc.args...))
		require.Equal(t, tc.want, r.line(), "%q", strings.Join(tc.args, " "))
	}
}
