package resp

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// MEMORY USAGE estimates a key's memory from its bucket and its pairs (all
// of them with SAMPLES 0), answers nil for a missing key, and refuses its
// options as Redis does; MEMORY HELP lists it, and Redis's allocator's
// subcommands are refused by name.
func TestMemoryUsage(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "h", "f", "v", "field", strings.Repeat("x", 1000)).Err())

	_, err := rc.MemoryUsage(ctx, "missing").Result()
	require.ErrorIs(t, err, redis.Nil)
	all := int64(memoryPerBucket + 2*memoryPerPair + len("f") + len("v") + len("field") + 1000)
	for _, args := range [][]any{
		{"MEMORY", "USAGE", "h", "SAMPLES", "0"},
		{"MEMORY", "USAGE", "h", "samples", "3", "SAMPLES", "0"}, // the last one counts
		{"MEMORY", "USAGE", "h", "SAMPLES", "2"},
	} {
		n, err := rc.Do(ctx, args...).Int64()
		require.NoError(t, err, "%v", args)
		assert.Equal(t, all, n, "%v", args)
	}
	sampled, err := rc.MemoryUsage(ctx, "h", 1).Result()
	require.NoError(t, err)
	assert.Contains(t, []int64{
		memoryPerBucket + 2*memoryPerPair + 2*2,
		memoryPerBucket + 2*memoryPerPair + 2*1005,
	}, sampled, "one pair, scaled to two")
	n, err := rc.MemoryUsage(ctx, "h").Result()
	require.NoError(t, err)
	assert.Equal(t, all, n, "5 samples cover both pairs")

	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"MEMORY", "USAGE", "h", "SAMPLES", "-1"}, "ERR syntax error"},
		{[]any{"MEMORY", "USAGE", "h", "SAMPLES", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"MEMORY", "USAGE", "h", "SAMPLES"}, "ERR syntax error"},
		{[]any{"MEMORY", "USAGE", "h", "foo"}, "ERR syntax error"},
		{[]any{"MEMORY", "USAGE"}, "ERR wrong number of arguments for 'memory|usage' command"},
		{[]any{"MEMORY", "FOO"}, "ERR unknown subcommand 'FOO'. Try MEMORY HELP."},
		{[]any{"MEMORY", "DOCTOR"}, "ERR MEMORY DOCTOR is not supported by kv"},
	} {
		err := rc.Do(ctx, tc.args...).Err()
		require.Error(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, err.Error(), "%v", tc.args)
	}
	help, err := rc.Do(ctx, "MEMORY", "HELP").StringSlice()
	require.NoError(t, err)
	assert.Contains(t, fmt.Sprint(help), "USAGE <key> [SAMPLES <count>]")

	// It reads the whole hash for a short reply: its client leaves the
	// event loop first, so that no other client waits for it.
	other := ts.client(t)
	require.NoError(t, other.Ping(ctx).Err())
	wantLoopClients(t, ts, 1) // other: rc has left already
}
