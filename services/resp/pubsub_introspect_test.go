package resp

import (
	"context"
	"fmt"
	"strings"
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

// pubsubCounts returns PUBSUB's view: every channel with its count, and NUMPAT.
func pubsubCounts(t *testing.T, ts *testServer) (map[string]int, int) {
	t.Helper()
	ts.srv.subscribed.mu.Lock()
	defer ts.srv.subscribed.mu.Unlock()
	ch := map[string]int{}
	for k, v := range ts.srv.subscribed.channels {
		ch[k] = v
	}
	return ch, len(ts.srv.subscribed.patterns)
}

func requireCountsZero(t *testing.T, ts *testServer) {
	t.Helper()
	require.Eventually(t, func() bool {
		ch, np := pubsubCounts(t, ts)
		return len(ch) == 0 && np == 0
	}, 10*time.Second, time.Millisecond)
}

// Every way a subscriber leaves takes its names out of PUBSUB's counts.
func TestPubsubCountsFollowEveryWayOut(t *testing.T) {
	ts := start(t, Config{MaxRequestBytes: 4096, SubscriberMailbox: 4, WriteTimeout: 50 * time.Millisecond})
	ctx := context.Background()
	rc := ts.client(t)

	// twice the same, then unsubscribe all with no arguments
	a := ts.raw(t)
	a.send("SUBSCRIBE x x y\r\nPSUBSCRIBE p* p*\r\n")
	a.expect("*3", "$9", "subscribe", "$1", "x", ":1", "*3", "$9", "subscribe", "$1", "x", ":1", "*3", "$9", "subscribe", "$1", "y", ":2",
		"*3", "$10", "psubscribe", "$2", "p*", ":3", "*3", "$10", "psubscribe", "$2", "p*", ":3")
	ch, np := pubsubCounts(t, ts)
	assert.Equal(t, map[string]int{"x": 1, "y": 1}, ch)
	assert.Equal(t, 1, np)
	a.send("UNSUBSCRIBE\r\n")
	a.expect("*3", "$11", "unsubscribe", "$1", "x", ":2", "*3", "$11", "unsubscribe", "$1", "y", ":1")
	a.send("PUNSUBSCRIBE\r\n")
	a.expect("*3", "$12", "punsubscribe", "$2", "p*", ":0")
	requireCountsZero(t, ts)

	// too many subscriptions: those before stay, then QUIT
	b := ts.raw(t)
	b.send("SUBSCRIBE a " + strings.Repeat("z", 5000) + "\r\n")
	b.expect("*3", "$9", "subscribe", "$1", "a", ":1")
	assert.True(t, strings.HasPrefix(b.line(), "-ERR too many subscriptions"))
	ch, _ = pubsubCounts(t, ts)
	assert.Equal(t, map[string]int{"a": 1}, ch)
	b.send("QUIT\r\n")
	b.expect("+OK")
	requireCountsZero(t, ts)

	// CLIENT KILL
	k := ts.raw(t)
	k.send("CLIENT SETNAME victim\r\nSUBSCRIBE kv:created\r\n")
	k.expect("+OK", "*3", "$9", "subscribe", "$10", "kv:created", ":1")
	require.NoError(t, rc.Do(ctx, "CLIENT", "KILL", "SKIPME", "yes", "TYPE", "pubsub").Err())
	assert.True(t, k.closed())
	requireCountsZero(t, ts)

	// kicked as slow
	slow := ts.raw(t)
	slow.send("PSUBSCRIBE *\r\nSUBSCRIBE kv:created\r\n")
	slow.expect("*3", "$10", "psubscribe", "$1", "*", ":1")
	for i := 0; ts.srv.kicked.Load() == 0; i++ {
		require.Less(t, i, 1_000_000)
		name := fmt.Sprintf("b%d-%s", i, string(make([]byte, 2000)))
		require.NoError(t, rc.HSet(ctx, name, "f", "v").Err())
		require.NoError(t, rc.Del(ctx, name).Err())
	}
	requireCountsZero(t, ts)

	// RESET, and a transaction refuses SUBSCRIBE
	r := ts.raw(t)
	r.send("MULTI\r\nSUBSCRIBE m\r\nDISCARD\r\nSUBSCRIBE m\r\nRESET\r\n")
	r.expect("+OK", "-ERR Command not allowed inside a transaction", "+OK", "*3", "$9", "subscribe", "$1", "m", ":1", "+RESET")
	requireCountsZero(t, ts)
}

// Many clients subscribing and leaving at once leave the counts at 0.
func TestPubsubCountsUnderConcurrentClients(t *testing.T) {
	ts := start(t, Config{})
	const n = 16
	subscribed := make(chan *raw, n)
	for i := range n {
		r := ts.raw(t)
		go func() {
			r.send(fmt.Sprintf("SUBSCRIBE c%d shared\r\nPSUBSCRIBE p%d shared*\r\n", i%3, i%2))
			for range 4 * 6 { // four replies of six lines
				r.line()
			}
			subscribed <- r
		}()
	}
	var rs []*raw
	for range n {
		rs = append(rs, <-subscribed)
	}
	ch, np := pubsubCounts(t, ts)
	assert.Equal(t, map[string]int{"c0": 6, "c1": 5, "c2": 5, "shared": n}, ch)
	assert.Equal(t, 3, np)
	done := make(chan struct{})
	for i, r := range rs {
		go func() {
			defer func() { done <- struct{}{} }()
			if i%2 == 0 {
				_, _ = r.nc.Write([]byte("UNSUBSCRIBE\r\nRESET\r\n"))
			}
			r.nc.Close()
		}()
	}
	for range n {
		<-done
	}
	requireCountsZero(t, ts)
}

// PUBSUB's errors name the subcommand as sent, and its HELP is Redis's
// (redis-server 7.0.15): with SHARDCHANNELS, SHARDNUMSUB and "Prints".
func TestPubsubErrorsAndHelpAsRedis(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	rc := ts.client(t)
	err := rc.Do(ctx, "PUBSUB", "channels", "a", "b").Err()
	require.Error(t, err)
	assert.Equal(t, "ERR unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP.", err.Error())
	err = rc.Do(ctx, "PUBSUB", "ShardChannels", "a", "b").Err()
	require.Error(t, err)
	assert.Equal(t, "ERR unknown subcommand or wrong number of arguments for 'ShardChannels'. Try PUBSUB HELP.", err.Error())
	help, err := rc.Do(ctx, "PUBSUB", "HELP").StringSlice()
	require.NoError(t, err)
	assert.Equal(t, []string{
		"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"CHANNELS [<pattern>]",
		"    Return the currently active channels matching a <pattern> (default: '*').",
		"NUMPAT",
		"    Return number of subscriptions to patterns.",
		"NUMSUB [<channel> ...]",
		"    Return the number of subscribers for the specified channels, excluding",
		"    pattern subscriptions(default: no channels).",
		"SHARDCHANNELS [<pattern>]",
		"    Return the currently active shard level channels matching a <pattern> (default: '*').",
		"SHARDNUMSUB [<shardchannel> ...]",
		"    Return the number of subscribers for the specified shard level channel(s)",
		"HELP",
		"    Prints this help.",
	}, help)
}
