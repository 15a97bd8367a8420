package resp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
