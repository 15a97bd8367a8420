package resp

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A transaction's replies past MaxReplyBytes are replaced when longer than
// 128 bytes, on the ground that the command has run and that no write's
// reply is that long. HINCRBYFLOAT's is as long as its number (1e200: over
// 200 digits), and HELLO's (which logs in and names the client) is a map of
// 14 entries: their effects stand, and their replies must too, or the
// client is told that a command failed that succeeded.
func TestTransactionKeepsTheRepliesOfCommandsWithEffects(t *testing.T) {
	const limit = 64 << 10
	ts := start(t, Config{MaxReplyBytes: limit})
	ctx := context.Background()
	rc := ts.client(t)
	kib := strings.Repeat("v", 1024)
	require.NoError(t, rc.HSet(ctx, "h", "big", kib).Err())

	conn := rc.Conn()
	t.Cleanup(func() { _ = conn.Close() })
	var incr *redis.FloatCmd
	var hello *redis.Cmd
	_, _ = conn.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for range 70 { // past the limit
			p.HGet(ctx, "h", "big")
		}
		incr = p.HIncrByFloat(ctx, "h", "n", 1e200)
		hello = p.Do(ctx, "HELLO", "2", "SETNAME", "renamed")
		return nil
	})
	stored, err := rc.HGet(ctx, "h", "n").Float64()
	require.NoError(t, err)
	require.Equal(t, 1e200, stored, "HINCRBYFLOAT ran")
	require.NoError(t, incr.Err(), "HINCRBYFLOAT's reply")
	assert.Equal(t, stored, incr.Val())

	name, err := conn.ClientGetName(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, "renamed", name, "HELLO ran")
	assert.NoError(t, hello.Err(), "HELLO's reply")
}
