package main

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The daemon's slow log follows its flags: 0 keeps every command, a
// negative threshold none, a positive one is rounded up to whole
// microseconds, and --slowlog-max-len bounds it (0: none kept);
// CONFIG GET reports them as Redis's parameters.
func TestDaemonSlowlogFlags(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args           []string
		logged         int
		slower, maxLen string
	}{
		{[]string{"--slowlog-slower-than", "0", "--slowlog-max-len", "2"}, 2, "0", "2"},
		{[]string{"--slowlog-slower-than", "-1ms"}, 0, "-1", "128"},
		{[]string{"--slowlog-slower-than", "0", "--slowlog-max-len", "0"}, 0, "0", "0"},
		{nil, -1, "10000", "128"}, // the defaults (what is logged depends on the machine's speed)
		// A part of a microsecond, the slow log's unit, rounds up: 500ns
		// is not 0, every command.
		{[]string{"--slowlog-slower-than", "500ns"}, -1, "1", "128"},
		{[]string{"--slowlog-slower-than", "1001ns"}, -1, "2", "128"},
		{[]string{"--slowlog-slower-than", "1.5ms"}, -1, "1500", "128"},
	} {
		t.Run(tc.slower+"/"+tc.maxLen, func(t *testing.T) {
			l, stop := serveAll(t, tc.args...)
			rc := redis.NewClient(&redis.Options{Addr: l.resp.String()})
			defer rc.Close()
			for range 5 {
				require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())
			}
			params, err := rc.ConfigGet(ctx, "slowlog*").Result()
			require.NoError(t, err)
			assert.Equal(t, map[string]string{"slowlog-log-slower-than": tc.slower, "slowlog-max-len": tc.maxLen}, params)
			if tc.logged >= 0 {
				logged, err := rc.SlowLogGet(ctx, -1).Result()
				require.NoError(t, err)
				assert.Len(t, logged, tc.logged)
			}
			require.NoError(t, rc.Close())
			assert.Equal(t, exitOK, stop())
		})
	}
}

// slowerThan hands resp.Config whole microseconds, rounded up, and a
// nanosecond for 0, which the server drops to 0 µs: every command.
func TestSlowerThan(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{0, time.Nanosecond},
		{1, time.Microsecond},
		{500 * time.Nanosecond, time.Microsecond},
		{time.Microsecond, time.Microsecond},
		{1001 * time.Nanosecond, 2 * time.Microsecond},
		{1500 * time.Microsecond, 1500 * time.Microsecond},
		{-time.Millisecond, -time.Millisecond},
		{-1, -1},
		{math.MaxInt64, math.MaxInt64}, // past the largest whole microsecond: left as is
		{math.MaxInt64 - math.MaxInt64%time.Microsecond, math.MaxInt64 - math.MaxInt64%time.Microsecond},
	} {
		assert.Equal(t, tc.want, slowerThan(tc.in), "slowerThan(%d)", tc.in)
	}
}
