package resp

import (
	"context"
	"math"
	"math/big"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SCAN and HSCAN read the cursor as Redis 7.0 does, with strtoul: a sign
// is allowed (a minus negates modulo 2^64), and an empty cursor is 0.
// The replies were redis-server 7.0.15's (redis-cli): `HSCAN h ""`,
// `SCAN +0` and `SCAN -0` list everything, `HSCAN h -1` is no error;
// before, kv answered each with ERR invalid cursor.
func TestScanCursorReadAsStrtoul(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"", 0, true}, {"+0", 0, true}, {"-0", 0, true}, {"00", 0, true},
		{"17", 17, true}, {"+17", 17, true}, {"-1", math.MaxUint64, true},
		{"18446744073709551615", math.MaxUint64, true}, {"-18446744073709551615", 1, true},
		{"18446744073709551616", 0, false}, {"-18446744073709551616", 0, false},
		{"-", 0, false}, {"+", 0, false}, {"--1", 0, false}, {"+-1", 0, false}, {"+ 1", 0, false},
		{" 0", 0, false}, {"0 ", 0, false}, {"x", 0, false}, {"0x10", 0, false}, {"1_0", 0, false}, {"1.0", 0, false},
	} {
		got, ok := parseCursor([]byte(tc.in))
		assert.Equal(t, tc.ok, ok, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}

	ts := start(t, Config{})
	ctx := context.Background()
	rc := ts.client(t)
	require.NoError(t, rc.HSet(ctx, "h", "a", "1", "b", "2").Err())
	for _, cur := range []string{"", "+0", "-0"} {
		v, err := rc.Do(ctx, "SCAN", cur).Slice()
		require.NoError(t, err, "SCAN %q", cur)
		assert.Equal(t, []any{"0", []any{"h"}}, v, "SCAN %q", cur)
		v, err = rc.Do(ctx, "HSCAN", "h", cur).Slice()
		require.NoError(t, err, "HSCAN %q", cur)
		require.Len(t, v, 2)
		assert.Equal(t, "0", v[0])
		assert.ElementsMatch(t, []any{"a", "1", "b", "2"}, v[1], "HSCAN %q", cur)
	}
	for _, args := range [][]any{{"SCAN", "-1"}, {"HSCAN", "h", "-1"}, {"HSCAN", "missing", "-5"}} {
		require.NoError(t, rc.Do(ctx, args...).Err(), "%v", args)
	}
	for _, args := range [][]any{{"SCAN", "-"}, {"HSCAN", "h", "+"}, {"HSCAN", "missing", " 0"}, {"SCAN", "-18446744073709551616"}} {
		assert.EqualError(t, rc.Do(ctx, args...).Err(), "ERR invalid cursor", "%v", args)
	}
}

// SCAN's TYPE filters by the type named, even an empty one: TYPE ""
// keeps no key, as in redis-server 7.0.15 (every key is a hash in kv, and
// TYPE hash, in any case, keeps them all). Before, kv took TYPE "" for
// no TYPE at all and listed every key.
func TestScanTypeEmptyKeepsNothing(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	rc := ts.client(t)
	require.NoError(t, rc.HSet(ctx, "h", "a", "1").Err())
	for _, tc := range []struct {
		typ  string
		want []any
	}{
		{"", []any{}}, {"string", []any{}}, {"bogus", []any{}}, {"hash", []any{"h"}}, {"HASH", []any{"h"}},
	} {
		v, err := rc.Do(ctx, "SCAN", "0", "TYPE", tc.typ).Slice()
		require.NoError(t, err, "TYPE %q", tc.typ)
		assert.Equal(t, []any{"0", tc.want}, v, "TYPE %q", tc.typ)
	}
}

// strtoulCursor is Redis 7.0's reading of a cursor, written from C's
// strtoul with arbitrary precision: an optional sign and decimal digits,
// the whole argument; no digits at all is 0 only for the empty string; a
// leading space, or a magnitude past 2^64-1, is an error; a minus negates
// modulo 2^64.
func strtoulCursor(s string) (uint64, bool) {
	if s == "" {
		return 0, true
	}
	neg := s[0] == '-'
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || s == "" || s[0] < '0' || s[0] > '9' || n.Cmp(new(big.Int).SetUint64(math.MaxUint64)) > 0 {
		return 0, false
	}
	if neg {
		return -n.Uint64(), true
	}
	return n.Uint64(), true
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "0", "-1", "+7", "-", "+", "--1", " 1", "18446744073709551615", "18446744073709551616",
		"-18446744073709551615", "0x10", "1_0", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseCursor([]byte(s))
		want, wantOK := strtoulCursor(s)
		if ok != wantOK || got != want {
			t.Fatalf("parseCursor(%q) = %d, %v; want %d, %v", s, got, ok, want, wantOK)
		}
	})
}
