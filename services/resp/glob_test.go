package resp

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/kvproject/kv/registry"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisMatch is a reference for globMatch, written from the behaviour of
// Redis's stringmatchlen (util.c): recursive on '*', with its early exit
// once the rest of the pattern has failed from every position, and its
// limit on nesting.
func redisMatch(p, s string) bool {
	skip := false
	return redisMatchFrom(p, s, &skip, 0)
}

func redisMatchFrom(p, s string, skip *bool, nesting int) bool {
	if nesting > 1000 {
		return false
	}
	// at reads the pattern as C does: past its end is a NUL.
	at := func(i int) byte {
		if i < len(p) {
			return p[i]
		}
		return 0
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if redisMatchFrom(p[1:], s, skip, nesting+1) {
					return true
				}
				if *skip {
					return false
				}
				s = s[1:]
			}
			*skip = true
			return false
		case '?':
			s = s[1:]
		case '[':
			p = p[1:]
			not := at(0) == '^'
			if not {
				p = p[1:]
			}
			match := false
			for {
				if at(0) == '\\' && len(p) >= 2 {
					p = p[1:]
					if p[0] == s[0] {
						match = true
					}
				} else if at(0) == ']' {
					break
				} else if len(p) == 0 {
					// Unterminated: Redis steps back onto the last byte,
					// which the step below takes.
					p = " "
					break
				} else if len(p) >= 3 && p[1] == '-' {
					lo, hi, c := int8(p[0]), int8(p[2]), int8(s[0]) // C's signed chars, as on x86-64
					if lo > hi {
						lo, hi = hi, lo
					}
					if lo <= c && c <= hi {
						match = true
					}
					p = p[2:]
				} else if p[0] == s[0] {
					match = true
				}
				p = p[1:]
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", false}, // Redis: an empty string matches only an empty pattern
		{"**", "", false},
		{"*", "anything", true},
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h*llo", "hllo", true},
		{"h*llo", "heeeello", true},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true}, // a reversed range is swapped
		{"h[a-b]llo", "hcllo", false},
		{`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false},
		{`[\]]`, "]", true},
		{`a\`, `a\`, true},  // a trailing backslash is itself
		{"[abc", "b", true}, // an unterminated class runs to the end
		{"[]", "]", false},  // an empty class matches nothing
		{"[", "[", false},
		{"[a-]x", "]", true}, // Redis: a range a-], and the class goes on
		{"[a-]x", "x", true},
		{"[a-]x", "-", false},
		{"[a-\xe9]", "b", false}, // Redis on x86-64: a range of signed chars, 0xe9 below 'a'
		{"[a-\xe9]", "\xf0", true},
		{"[\x00-\xff]", "\x80", false}, // 0 down to -1: nothing above 0x7f
		{"*a*b*c", "xaxbxc", true},
		{"*a*b*c", "xaxbxcx", false},
		{"a*", "a", true},
		{"a**", "a", true},
		{"a*?", "a", false},
		{strings.Repeat("*a", 30) + "b", strings.Repeat("a", 40), false},
		{strings.Repeat("*a", 1000), strings.Repeat("a", 1000), true},
		{strings.Repeat("*a", 1001), strings.Repeat("a", 1001), false}, // past Redis's 1,000 levels
		{strings.Repeat("*a", 1001) + "*", strings.Repeat("a", 1001), false},
		{strings.Repeat("a*", 1001), strings.Repeat("a", 1001), true}, // the last group is free
	} {
		assert.Equal(t, tc.want, redisMatch(tc.p, tc.s), "reference: %q against %q", tc.p, tc.s)
		assert.Equal(t, tc.want, globMatch(tc.p, tc.s), "%q against %q", tc.p, tc.s)
	}
}

// FuzzGlobMatch checks globMatch (KEYS, SCAN MATCH, PSUBSCRIBE) against
// the reference, Redis's behaviour, on any pattern and name.
func FuzzGlobMatch(f *testing.F) {
	for _, seed := range [][2]string{
		{"h*llo", "hello"}, {"h[^a-c]llo", "hdllo"}, {`\[*\]`, "[x]"}, {"[a-]x", "x"},
		{"*?*?[ab", "xyb"}, {"[\\", "\\"}, {"**a*", "ba"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 64 || len(s) > 64 {
			return // the reference recurses on each '*'
		}
		want := redisMatch(p, s)
		if got := globMatch(p, s); got != want {
			t.Fatalf("%q against %q: %v, Redis says %v", p, s, got, want)
		}
		// Within a limit: the same answer in as many steps as it took,
		// and none in one step fewer.
		got, steps, ok := globMatchWithin(p, s, steps(p, s))
		if !ok || got != want {
			t.Fatalf("%q against %q within its own %d steps: %v (ok %v), Redis says %v", p, s, steps, got, ok, want)
		}
		if _, _, ok := globMatchWithin(p, s, steps-1); ok && steps > 0 {
			t.Fatalf("%q against %q: done within %d steps, where it took %d", p, s, steps-1, steps)
		}
	})
}

// steps is how many steps globMatchWithin takes to match s against p.
func steps(p, s string) int {
	_, n, _ := globMatchWithin(p, s, math.MaxInt)
	return n
}

// A pattern that costs the length of the names times its own (Redis's
// algorithm, and kv's) spends its command's budget and is refused, in
// no more than the budget and one step (a class's length); patterns short
// of pathological, over many names, are not.
func TestGlobBudget(t *testing.T) {
	long := strings.Repeat("a", 64<<10)
	for _, tc := range []struct {
		name, p string
		names   []string
		ok      bool
	}{
		{"a run against longer runs", "*" + strings.Repeat("a", 32<<10) + "b", []string{long}, false},
		{"a long class at each byte", "[" + strings.Repeat("x", 8<<20) + "]", manyNames(30), false},
		{"stars against a long name", "*a*a*a*a*a*a*a*b", []string{long}, true},
		{"many names", "user:[0-9]*:session*", manyNames(100_000), true},
		{"a long literal", strings.Repeat("ab", 2048), manyNames(10_000), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := newGlobBudget()
			granted, spent := globBaseSteps, 0
			ok := true
			for _, n := range tc.names {
				granted += globStepsPerByte * (len(n) + min(len(tc.p), globPatternCredit))
				before := budget.left + globStepsPerByte*(len(n)+min(len(tc.p), globPatternCredit))
				want := globMatch(tc.p, n)
				var match bool
				match, ok = budget.match(tc.p, n)
				spent += before - budget.left
				if !ok {
					break
				}
				require.Equal(t, want, match, "%q", n)
			}
			require.Equal(t, tc.ok, ok)
			if ok {
				return
			}
			assert.LessOrEqual(t, spent, granted+len(tc.p), "spent at most the budget and one class")
			// What the match would have cost without a budget: more than
			// four times that.
			left := 4 * granted
			for _, n := range tc.names {
				_, steps, ok := globMatchWithin(tc.p, n, left)
				if !ok {
					return
				}
				left -= steps
			}
			t.Fatalf("the names cost less than four times the budget (%d steps): not a pathological pattern", granted)
		})
	}
}

// manyNames returns n names like a keyspace's.
func manyNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("user:%d:session:%x", i, i*7919)
	}
	return names
}

// Every command that matches a client's pattern refuses one that costs
// the length of the names times its own, rather than hold every client of
// the event loop (a 128 KiB pattern held them 19 seconds), and the
// connection goes on.
func TestCostlyPatternsAreRefused(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	rc := ts.client(t)
	for i := range 20 {
		require.NoError(t, rc.HSet(ctx, strings.Repeat("a", registry.MaxNameLen-1)+string(rune('A'+i)), "f", "v").Err())
	}
	require.NoError(t, rc.HSet(ctx, "fields", strings.Repeat("a", 64<<10), "v").Err())
	run := "*" + strings.Repeat("a", registry.MaxNameLen/2) + "b"
	class := "[" + strings.Repeat("x", 8<<20) + "]"
	for _, tc := range []struct {
		name string
		args []any
	}{
		{"KEYS", []any{"KEYS", run}},
		{"SCAN", []any{"SCAN", 0, "MATCH", run, "COUNT", 100}},
		{"HSCAN", []any{"HSCAN", "fields", 0, "MATCH", "*" + strings.Repeat("a", 32<<10) + "b"}},
		{"COMMAND LIST", []any{"COMMAND", "LIST", "FILTERBY", "PATTERN", class}},
		{"CONFIG GET", []any{"CONFIG", "GET", class}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.EqualError(t, rc.Do(ctx, tc.args...).Err(), errGlobTooCostly)
			assert.Equal(t, "PONG", rc.Ping(ctx).Val())
		})
	}
	// The same names and patterns short of pathological: answered.
	keys, err := rc.Keys(ctx, "*aaaa[A-Z]").Result()
	require.NoError(t, err)
	assert.Len(t, keys, 20)
	names, _, err := rc.Scan(ctx, 0, "a*B", 100).Result()
	require.NoError(t, err)
	assert.Len(t, names, 1)
	fields, _, err := rc.HScan(ctx, "fields", 0, "*aaa", 10).Result()
	require.NoError(t, err)
	assert.Len(t, fields, 2)
}

// globMatch is globMatchWithin without a bound on its steps, for the tests
// that hold the matching to Redis's.
func globMatch(p, s string) bool {
	match, _, _ := globMatchWithin(p, s, math.MaxInt)
	return match
}

// The event budget refuses one 2 KB literal after a '*' against a 4 KB
// bucket name, and the same 2 KB of subscription split into 32 patterns of
// 62 bytes, which cost as many steps at each event: each pattern brings a
// credit for the channel's bytes, but an event's credits are bounded in
// all. (Before the bound, 10,000 such patterns, 640 KB, took 2.6 s of CPU
// on the daemon at every bucket created, with no disconnection.)
func TestEventBudgetBoundsSplitPatterns(t *testing.T) {
	ch := ChannelBucketPrefix + strings.Repeat("a", 4000)
	one := "kv:bucket:*" + strings.Repeat("a", 2000) + "b"
	b := newEventGlobBudget()
	_, ok := b.match(one, ch)
	require.False(t, ok, "the commit's example is refused")
	_, oneSteps, _ := globMatchWithin(one, ch, 1<<40)

	b = newEventGlobBudget()
	total, passed := 0, true
	for i := range 32 {
		p := "*" + strings.Repeat("a", 60) + "b" + string(rune('A'+i))
		_, steps, _ := globMatchWithin(p, ch, 1<<40)
		total += steps
		if _, ok := b.match(p, ch); !ok {
			passed = false
			break
		}
	}
	t.Logf("one 2 KB pattern: %d steps (refused); 32 patterns of 62 bytes: %d steps", oneSteps, total)
	assert.False(t, passed && total >= oneSteps/2,
		"patterns costing %d steps an event pass, where one of the same bytes costing %d is refused", total, oneSteps)

	// Ordinary patterns, even many, stay well within it: 10,000 that name
	// a prefix, and 200 that start with a '*', against the 4 KB name.
	b = newEventGlobBudget()
	for i := range 10000 {
		_, ok := b.match("kv:bucket:user"+strconv.Itoa(i)+":*", ch)
		require.True(t, ok, "prefix pattern %d", i)
	}
	for i := range 200 {
		_, ok := b.match("*"+strconv.Itoa(i), ch)
		require.True(t, ok, "leading-star pattern %d", i)
	}
}
