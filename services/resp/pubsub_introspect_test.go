package resp

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// PUBSUB CHANNELS, NUMSUB and NUMPAT count the subscriptions across
// clients as Redis 7 does (checked against redis-server 7.0.15), and
// forget those of a client that unsubscribes, resets or leaves.
func TestPubsubIntrospection(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()

	a := ts.raw(t)
	a.send("SUBSCRIBE kv:created kv:exited\r\n")
	a.expect("*3", "$9", "subscribe", "$10", "kv:created", ":1", "*3", "$9", "subscribe", "$9", "kv:exited", ":2")
	b := ts.raw(t)
	b.send("SUBSCRIBE kv:created\r\nPSUBSCRIBE kv:* kv:bucket:*\r\n")
	b.expect("*3", "$9", "subscribe", "$10", "kv:created", ":1",
		"*3", "$10", "psubscribe", "$4", "kv:*", ":2", "*3", "$10", "psubscribe", "$11", "kv:bucket:*", ":3")
	p := ts.raw(t)
	p.send("PSUBSCRIBE kv:*\r\n")
	p.expect("*3", "$10", "psubscribe", "$4", "kv:*", ":1")

	channels, err := rc.PubSubChannels(ctx, "*").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"kv:created", "kv:exited"}, channels)
	channels, err = rc.PubSubChannels(ctx, "kv:c*").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"kv:created"}, channels)
	numsub, err := rc.PubSubNumSub(ctx, "kv:created", "kv:exited", "nope").Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"kv:created": 2, "kv:exited": 1, "nope": 0}, numsub)
	numpat, err := rc.PubSubNumPat(ctx).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(2), numpat, "kv:* twice counts once")

	a.send("UNSUBSCRIBE kv:exited\r\n")
	a.expect("*3", "$11", "unsubscribe", "$9", "kv:exited", ":1")
	b.send("RESET\r\n")
	b.expect("+RESET")
	require.NoError(t, p.nc.Close())
	require.Eventually(t, func() bool {
		n, err := rc.PubSubNumPat(ctx).Result()
		return err == nil && n == 0
	}, 10*time.Second, time.Millisecond, "the patterns of the clients that reset or left are gone")
	numsub, err = rc.PubSubNumSub(ctx, "kv:created", "kv:exited").Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"kv:created": 1, "kv:exited": 0}, numsub)

	for _, tc := range []struct {
		args []any
		want any
	}{
		{[]any{"PUBSUB", "SHARDCHANNELS"}, []any{}},
		{[]any{"PUBSUB", "SHARDNUMSUB", "x"}, []any{"x", int64(0)}},
		{[]any{"PUBSUB", "NUMSUB"}, []any{}},
		{[]any{"PUBSUB", "CHANNELS"}, []any{"kv:created"}},
	} {
		got, err := rc.Do(ctx, tc.args...).Result()
		require.NoError(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, got, "%v", tc.args)
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"PUBSUB", "CHANNELS", "a", "b"}, "ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP."},
		{[]any{"PUBSUB", "NUMPAT", "x"}, "ERR wrong number of arguments for 'pubsub|numpat' command"},
		{[]any{"PUBSUB", "FOO"}, "ERR unknown subcommand 'FOO'. Try PUBSUB HELP."},
		{[]any{"PUBSUB"}, "ERR wrong number of arguments for 'pubsub' command"},
	} {
		err := rc.Do(ctx, tc.args...).Err()
		require.Error(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, err.Error(), "%v", tc.args)
	}
}
