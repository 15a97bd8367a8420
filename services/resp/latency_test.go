package resp

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A call counts in the first power-of-two bucket from 1,024 ns that holds
// its latency, reported as Redis reports its buckets (1, 2, 4, 8, 16, 33,
// 66 µs... as redis-server 7.0.15 answers).
func TestLatencyHistogramBuckets(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		bucket int
	}{
		{0, 0}, {1, 0}, {1024, 0}, {1999, 0}, {2000, 1}, {2048, 1}, {3000, 2}, {8 * time.Microsecond, 3},
		{time.Millisecond, 10}, {time.Second, 20}, {30 * 24 * time.Hour, latencyBuckets - 1},
	} {
		var h latencyHistogram
		h.record(tc.d)
		assert.Equal(t, int64(1), h[tc.bucket].Load(), "%v", tc.d)
	}
	var bounds []int64
	for i := range 7 {
		bounds = append(bounds, bucketMicros(i))
	}
	assert.Equal(t, []int64{1, 2, 4, 8, 16, 33, 66}, bounds)
	assert.Equal(t, int64(1056), bucketMicros(10))
}

// A call lands in the bucket Redis 7.0.15 reports it in: its HDR
// histogram counts at each power-of-two level the sub-bucket that holds
// the level (up to 1,032·2^i-1 ns: 132 µs is in its 132 bucket), and
// records at most 1 s, reported as 1073741 (DEBUG SLEEP 0.0009, 0.3 and
// 1.5 answer 1056, 541065 and 1073741 there).
func TestLatencyHistogramBucketsAsRedis(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		time.Microsecond:        1,
		1500:                    1, // Redis times in whole microseconds
		2 * time.Microsecond:    2,
		3 * time.Microsecond:    4,
		33 * time.Microsecond:   33,
		66 * time.Microsecond:   66,
		132 * time.Microsecond:  132,
		132500:                  132,
		264 * time.Microsecond:  264,
		900 * time.Microsecond:  1056,
		1050 * time.Microsecond: 1056,
		300 * time.Millisecond:  541065,
		541 * time.Millisecond:  541065,
		600 * time.Millisecond:  1073741,
		1500 * time.Millisecond: 1073741,
		time.Hour:               1073741,
	} {
		var h latencyHistogram
		h.record(d)
		got := int64(-1)
		for i := range h {
			if h[i].Load() == 1 {
				got = bucketMicros(i)
			}
		}
		assert.Equal(t, want, got, "%v", d)
	}
}

// LATENCY HISTOGRAM answers each command's calls by latency, cumulative,
// in Redis 7's shape; CONFIG RESETSTAT empties it; the latency monitor's
// subcommands answer as Redis's with the monitor off.
func TestLatencyCommand(t *testing.T) {
	ctx := context.Background()
	rc := start(t, Config{Observer: discardObserver{}}).client(t)
	require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())
	for range 3 {
		require.NoError(t, rc.HGet(ctx, "h", "f").Err())
	}
	got, err := rc.Do(ctx, "LATENCY", "HISTOGRAM", "hget", "nosuch", "HSET", "hget").Slice()
	require.NoError(t, err)
	require.Len(t, got, 4, "hget and hset, each once, in the order asked; nosuch left out")
	assert.Equal(t, "hget", got[0])
	assert.Equal(t, "hset", got[2])
	for i, calls := range map[int]int64{1: 3, 3: 1} {
		h := got[i].([]any)
		require.Len(t, h, 4)
		assert.Equal(t, []any{"calls", calls}, h[:2])
		assert.Equal(t, "histogram_usec", h[2])
		buckets := h[3].([]any)
		require.NotEmpty(t, buckets)
		require.Zero(t, len(buckets)%2)
		var bound, cumulative int64
		for j := 0; j < len(buckets); j += 2 {
			b, n := buckets[j].(int64), buckets[j+1].(int64)
			assert.Greater(t, b, bound, "the bounds grow")
			assert.Greater(t, n, cumulative, "only buckets that hold calls, counted cumulatively")
			bound, cumulative = b, n
		}
		assert.Equal(t, calls, cumulative)
	}
	all, err := rc.Do(ctx, "LATENCY", "HISTOGRAM").Slice()
	require.NoError(t, err)
	names := []any{}
	for i := 0; i < len(all); i += 2 {
		names = append(names, all[i])
	}
	assert.Subset(t, names, []any{"hget", "hset", "latency|histogram"}, "subcommands by their own names, as Redis 7")

	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	got, err = rc.Do(ctx, "LATENCY", "HISTOGRAM", "hget").Slice()
	require.NoError(t, err)
	assert.Empty(t, got, "CONFIG RESETSTAT empties the histograms")
	assert.Equal(t, map[string]string{"latency-monitor-threshold": "0", "latency-tracking": "yes"},
		rc.ConfigGet(ctx, "latency-*").Val())

	for _, tc := range []struct {
		args []any
		want any
	}{
		{[]any{"LATENCY", "LATEST"}, []any{}},
		{[]any{"LATENCY", "HISTORY", "command"}, []any{}},
		{[]any{"LATENCY", "RESET"}, int64(0)},
		{[]any{"LATENCY", "RESET", "command", "fork"}, int64(0)},
	} {
		v, err := rc.Do(ctx, tc.args...).Result()
		require.NoError(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, v, "%v", tc.args)
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"LATENCY", "GRAPH", "command"}, "ERR No samples available for event 'command'"},
		{[]any{"LATENCY"}, "ERR wrong number of arguments for 'latency' command"},
		{[]any{"LATENCY", "bogus"}, "ERR unknown subcommand 'bogus'. Try LATENCY HELP."},
		{[]any{"LATENCY", "LATEST", "x"}, "ERR wrong number of arguments for 'latency|latest' command"},
	} {
		assert.EqualError(t, rc.Do(ctx, tc.args...).Err(), tc.want, "%v", tc.args)
	}
	doctor, err := rc.Do(ctx, "LATENCY", "DOCTOR").Text()
	require.NoError(t, err)
	assert.Contains(t, doctor, "LATENCY HISTOGRAM")
	help, err := rc.Do(ctx, "LATENCY", "HELP").StringSlice()
	require.NoError(t, err)
	assert.Contains(t, help, "HISTOGRAM [COMMAND ...]")

	// In RESP3, maps.
	ts := start(t, Config{Observer: discardObserver{}})
	r := ts.raw(t)
	r.hello3()
	r.send("PING\r\nLATENCY HISTOGRAM ping\r\n")
	r.expect("+PONG", "%1", "$4", "ping", "%2", "$5", "calls", ":1", "$14", "histogram_usec", "%1")

	// Without an Observer no command is timed: no histograms.
	plain := start(t, Config{}).client(t)
	require.NoError(t, plain.Ping(ctx).Err())
	got, err = plain.Do(ctx, "LATENCY", "HISTOGRAM").Slice()
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Equal(t, map[string]string{"latency-tracking": "no"}, plain.ConfigGet(ctx, "latency-tracking").Val())
}
