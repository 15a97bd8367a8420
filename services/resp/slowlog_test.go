package resp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kvproject/kv/internal/store"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SLOWLOG keeps the commands that ran past the threshold, newest first,
// with Redis's fields and its bounds on what is kept of the arguments (32
// of them, 128 bytes each), at most SlowlogMaxLen of them; LEN, RESET and
// the count forms of GET answer as Redis's.
func TestSlowlog(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	ts := start(t, Config{Observer: obs, SlowlogSlowerThan: time.Nanosecond, SlowlogMaxLen: 3})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.Do(ctx, "CLIENT", "SETNAME", "me").Err())
	long := strings.Repeat("x", 200)
	require.NoError(t, rc.HSet(ctx, "k", "f", long).Err())
	many := []any{"HMGET", "k"}
	for range 40 {
		many = append(many, "f")
	}
	require.NoError(t, rc.Do(ctx, many...).Err())

	logged, err := rc.SlowLogGet(ctx, -1).Result()
	require.NoError(t, err)
	require.Len(t, logged, 3, "at most SlowlogMaxLen")
	hmget, hset := logged[0], logged[1]
	assert.Greater(t, hmget.ID, hset.ID, "newest first")
	assert.Equal(t, []string{"hset", "k", "f", long[:128] + "... (72 more bytes)"}, lower(hset.Args))
	require.Len(t, hmget.Args, 32)
	assert.Equal(t, "... (11 more arguments)", hmget.Args[31])
	assert.Equal(t, "me", hmget.ClientName)
	assert.NotEmpty(t, hmget.ClientAddr)
	assert.WithinDuration(t, time.Now(), hmget.Time, time.Minute)

	two, err := rc.SlowLogGet(ctx, 2).Result()
	require.NoError(t, err)
	require.Len(t, two, 2)
	assert.Equal(t, "slowlog", strings.ToLower(two[0].Args[0]), "the GET before")
	n, err := rc.Do(ctx, "SLOWLOG", "LEN").Int64()
	require.NoError(t, err)
	assert.Equal(t, int64(3), n)
	require.NoError(t, rc.Do(ctx, "SLOWLOG", "RESET").Err())
	n, err = rc.Do(ctx, "SLOWLOG", "LEN").Int64()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "the RESET itself, logged as it ends")

	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"SLOWLOG", "GET", "-2"}, "ERR count should be greater than or equal to -1"},
		{[]any{"SLOWLOG", "GET", "abc"}, "ERR count should be greater than or equal to -1"},
		{[]any{"SLOWLOG", "GET", "1", "2"}, "ERR unknown subcommand or wrong number of arguments for 'GET'. Try SLOWLOG HELP."},
		{[]any{"SLOWLOG", "LEN", "x"}, "ERR wrong number of arguments for 'slowlog|len' command"},
		{[]any{"SLOWLOG", "FOO"}, "ERR unknown subcommand 'FOO'. Try SLOWLOG HELP."},
	} {
		err := rc.Do(ctx, tc.args...).Err()
		require.Error(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, err.Error(), "%v", tc.args)
	}
	params, err := rc.ConfigGet(ctx, "slowlog*").Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"slowlog-log-slower-than": "0", "slowlog-max-len": "3"}, params)
}

// Nothing is logged under a negative threshold, nor without an Observer,
// which times the commands.
func TestSlowlogOff(t *testing.T) {
	for name, cfg := range map[string]Config{
		"negative":    {Observer: &recordingObserver{failed: map[string]bool{}}, SlowlogSlowerThan: -1},
		"no observer": {SlowlogSlowerThan: time.Nanosecond},
	} {
		t.Run(name, func(t *testing.T) {
			rc := start(t, cfg).client(t)
			ctx := context.Background()
			require.NoError(t, rc.HSet(ctx, "k", "f", "v").Err())
			logged, err := rc.SlowLogGet(ctx, -1).Result()
			require.NoError(t, err)
			assert.Empty(t, logged)
		})
	}
}

func lower(args []string) []string {
	out := append([]string(nil), args...)
	out[0] = strings.ToLower(out[0])
	return out
}

// The slow log is readable by every client: as Redis does, it shows
// "(redacted)" for the secrets of AUTH and HELLO ... AUTH, leaves out EXEC
// (its commands are logged one by one: Redis's skip_slowlog) and the
// commands refused before they ran (NOAUTH, arity, unknown), which Redis
// never calls. Checked against redis-server 7.0.15.
func TestSlowlogAsRedis(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	ts := start(t, Config{Observer: obs, Password: "secret", SlowlogSlowerThan: time.Nanosecond})
	r := ts.raw(t)
	r.send("GET x\r\nAUTH secret\r\nHELLO 2 AUTH default secret SETNAME nm\r\n")
	r.expect("-NOAUTH Authentication required.", "+OK", "*14")
	for r.line() != "*0" { // HELLO's map, up to its empty modules array
	}
	r.send("FOO bar\r\nHGET a\r\nMULTI\r\nPING\r\nEXEC\r\n")
	r.line()
	r.line()
	r.expect("+OK", "+QUEUED", "*1", "+PONG")
	rc := ts.client(t, func(o *redis.Options) { o.Password = "secret" })
	ctx := context.Background()
	logged, err := rc.SlowLogGet(ctx, -1).Result()
	require.NoError(t, err)
	var got []string
	for i := len(logged) - 1; i >= 0; i-- {
		got = append(got, strings.Join(logged[i].Args, " "))
	}
	assert.NotContains(t, strings.Join(got, "|"), "secret")
	assert.Equal(t, []string{
		"AUTH (redacted)",
		"HELLO 2 AUTH (redacted) (redacted) SETNAME nm",
		"MULTI",
		"PING",
	}, got[:4])
	for _, g := range got {
		assert.NotEqual(t, "EXEC", g)
		assert.NotContains(t, []string{"GET x", "FOO bar", "HGET a"}, g, "refused before it ran")
	}
}

// Once SlowlogMaxLen entries are kept, each new one replaces the oldest:
// GET lists the newest first, with their ids, however often it wrapped.
func TestSlowlogKeepsTheNewest(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	rc := start(t, Config{Observer: obs, SlowlogSlowerThan: time.Nanosecond, SlowlogMaxLen: 3}).client(t)
	ctx := context.Background()
	require.NoError(t, rc.Do(ctx, "SLOWLOG", "RESET").Err())
	for i := range 7 {
		require.NoError(t, rc.Echo(ctx, i).Err())
	}
	logged, err := rc.SlowLogGet(ctx, -1).Result()
	require.NoError(t, err)
	var got []string
	for _, e := range logged {
		got = append(got, strings.Join(e.Args, " "))
	}
	assert.Equal(t, []string{"echo 6", "echo 5", "echo 4"}, got)
	assert.Equal(t, logged[0].ID-1, logged[1].ID)
	two, err := rc.SlowLogGet(ctx, 2).Result()
	require.NoError(t, err)
	require.Len(t, two, 2)
	assert.Equal(t, "slowlog", strings.ToLower(two[0].Args[0]))
	assert.Equal(t, "echo 6", strings.Join(two[1].Args, " "))
}

// The secrets of AUTH and HELLO ... AUTH are "(redacted)" wherever they
// stand among HELLO's options (after SETNAME too, as Redis's helloCommand
// walks them) and however long they are: a secret past 128 bytes is not
// shown cut, its first 128 bytes included.
func TestSlowlogRedactsSecretsWhereverTheyAre(t *testing.T) {
	long := strings.Repeat("s", 200)
	obs := &recordingObserver{failed: map[string]bool{}}
	ts := start(t, Config{Observer: obs, Password: long, SlowlogSlowerThan: time.Nanosecond})
	r := ts.raw(t)
	r.send("AUTH " + long + "\r\nHELLO 2 SETNAME nm AUTH default " + long + "\r\n")
	r.expect("+OK", "*14")
	for r.line() != "*0" { // HELLO's map, up to its empty modules array
	}
	rc := ts.client(t, func(o *redis.Options) { o.Password = long })
	logged, err := rc.SlowLogGet(context.Background(), -1).Result()
	require.NoError(t, err)
	var got []string
	for i := len(logged) - 1; i >= 0; i-- {
		got = append(got, strings.Join(logged[i].Args, " "))
	}
	assert.NotContains(t, strings.Join(got, "|"), "sss")
	require.GreaterOrEqual(t, len(got), 2)
	assert.Equal(t, []string{
		"AUTH (redacted)",
		"HELLO 2 SETNAME nm AUTH (redacted) (redacted)",
	}, got[:2])
}

// Redis's bounds are limits, not thresholds: a command of exactly 32
// arguments keeps them all, and an argument of exactly 128 bytes is kept
// whole.
func TestSlowlogBoundsAreInclusive(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	rc := start(t, Config{Observer: obs, SlowlogSlowerThan: time.Nanosecond}).client(t)
	ctx := context.Background()
	exact := strings.Repeat("x", 128)
	args := []any{"HMGET", exact}
	for i := range 30 {
		args = append(args, fmt.Sprintf("f%d", i))
	}
	require.NoError(t, rc.Do(ctx, args...).Err())
	logged, err := rc.SlowLogGet(ctx, 1).Result()
	require.NoError(t, err)
	require.Len(t, logged, 1)
	hmget := logged[0]
	require.Len(t, hmget.Args, 32)
	assert.Equal(t, exact, hmget.Args[1])
	assert.Equal(t, "f29", hmget.Args[31])
}

// SLOWLOG GET 0 answers no entry, as Redis's does: only -1 means all.
func TestSlowlogGetZero(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	rc := start(t, Config{Observer: obs, SlowlogSlowerThan: time.Nanosecond}).client(t)
	ctx := context.Background()
	require.NoError(t, rc.Echo(ctx, "a").Err())
	logged, err := rc.SlowLogGet(ctx, 0).Result()
	require.NoError(t, err)
	assert.Empty(t, logged)
}

// A RESET of a log that has wrapped starts the ring again: the entries
// logged after it are listed newest first, as before any wrap.
func TestSlowlogResetAfterWrap(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	rc := start(t, Config{Observer: obs, SlowlogSlowerThan: time.Nanosecond, SlowlogMaxLen: 3}).client(t)
	ctx := context.Background()
	require.NoError(t, rc.Do(ctx, "SLOWLOG", "RESET").Err())
	for i := range 3 { // the RESET and two echoes fill it; the third wraps it
		require.NoError(t, rc.Echo(ctx, i).Err())
	}
	require.NoError(t, rc.Do(ctx, "SLOWLOG", "RESET").Err())
	require.NoError(t, rc.Echo(ctx, "a").Err())
	logged, err := rc.SlowLogGet(ctx, -1).Result()
	require.NoError(t, err)
	var got []string
	for _, e := range logged {
		got = append(got, strings.ToLower(strings.Join(e.Args, " ")))
	}
	assert.Equal(t, []string{"echo a", "slowlog reset"}, got)
	for range 3 { // and it wraps again in order
		require.NoError(t, rc.Echo(ctx, "b").Err())
	}
	logged, err = rc.SlowLogGet(ctx, -1).Result()
	require.NoError(t, err)
	require.Len(t, logged, 3)
	for i := 1; i < len(logged); i++ {
		assert.Equal(t, logged[i-1].ID-1, logged[i].ID, "newest first")
	}
}

// With a durable store, a write answered once it is on disk is logged too
// (its run, without the wait for the disk).
func TestSlowlogDurableWrite(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	ds := startDurable(t, t.TempDir(), store.Options{}, func(c *Config) {
		c.Observer = obs
		c.SlowlogSlowerThan = time.Nanosecond
	})
	rc := ds.client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "k", "f", "v").Err())
	logged, err := rc.SlowLogGet(ctx, -1).Result()
	require.NoError(t, err)
	var got []string
	for _, e := range logged {
		got = append(got, strings.ToLower(strings.Join(e.Args, " ")))
	}
	assert.Contains(t, got, "hset k f v")
}
