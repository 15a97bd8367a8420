package resp

import (
	"context"
	"strings"
	"testing"
	"time"

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
