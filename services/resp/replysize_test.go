package resp

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHRandFieldNegativeCountIsBoundedInBytes: a negative count repeats
// fields, so a short command could make a reply of any size from one large
// field or value (HRANDFIELD h -1048576 WITHVALUES on a 1 MiB value asks
// for 1 TiB: kv's RSS passed 3.5 GB within seconds, as Redis's does). Such a
// reply may not pass MaxReplyBytes unless the hash itself is as large (what
// HGETALL would return).
func TestHRandFieldNegativeCountIsBoundedInBytes(t *testing.T) {
	const limit = 64 << 10
	ts := start(t, Config{MaxReplyBytes: limit})
	ctx := context.Background()
	rc := ts.client(t)
	kib := strings.Repeat("v", 1024)
	require.NoError(t, rc.HSet(ctx, "value", "f", kib).Err())
	require.NoError(t, rc.HSet(ctx, "field", kib, "v").Err())

	const tooLarge = "ERR value is out of range, the fields a negative count asks for pass 65536 bytes"
	assert.EqualError(t, rc.Do(ctx, "HRANDFIELD", "value", "-100", "WITHVALUES").Err(), tooLarge)
	assert.EqualError(t, rc.Do(ctx, "HRANDFIELD", "field", "-100").Err(), tooLarge)

	// Under the limit, or no larger than the hash: answered as before.
	pairs, err := rc.HRandFieldWithValues(ctx, "value", -10).Result()
	require.NoError(t, err)
	assert.Len(t, pairs, 10)
	fields, err := rc.HRandField(ctx, "field", -60).Result()
	require.NoError(t, err)
	assert.Len(t, fields, 60)
	for i := range 100 {
		require.NoError(t, rc.HSet(ctx, "large", strings.Repeat("k", 1021)+string(rune('A'+i%26))+string(rune('A'+i/26)), "v").Err())
	}
	fields, err = rc.HRandField(ctx, "large", -100).Result()
	require.NoError(t, err)
	assert.Len(t, fields, 100)
	// A positive count returns each field once at most: never more than
	// the hash.
	fields, err = rc.HRandField(ctx, "field", 100).Result()
	require.NoError(t, err)
	assert.Len(t, fields, 1)
}

// TestHMGetRepeatsAreBoundedInBytes: HMGET answers a field as often as it
// is named, so one large value named over and over could make a reply of
// any size (a 1 MiB value named a million times, in an 8 MB request, asks
// for 1 TiB). Past MaxReplyBytes, its values may be no more than the hash
// holds; the refusal leaves the connection and the hash as they were.
func TestHMGetRepeatsAreBoundedInBytes(t *testing.T) {
	const limit = 64 << 10
	ts := start(t, Config{MaxReplyBytes: limit})
	ctx := context.Background()
	rc := ts.client(t)
	kib := strings.Repeat("v", 1024)
	require.NoError(t, rc.HSet(ctx, "one", "f", kib).Err())

	named := func(field string, n int) []string {
		fields := make([]string, n)
		for i := range fields {
			fields[i] = field
		}
		return fields
	}
	const tooLarge = "ERR value is out of range, the values HMGET asks for pass 65536 bytes, more than the hash holds"
	assert.EqualError(t, rc.HMGet(ctx, "one", named("f", 100)...).Err(), tooLarge)
	assert.EqualError(t, rc.HMGet(ctx, "one", append(named("missing", 1000), named("f", 65)...)...).Err(), tooLarge)

	// Under the limit: answered, repeats and all.
	values, err := rc.HMGet(ctx, "one", named("f", 60)...).Result()
	require.NoError(t, err)
	require.Len(t, values, 60)
	assert.Equal(t, kib, values[59])
	// Missing fields cost their nulls only, however many.
	values, err = rc.HMGet(ctx, "one", named("missing", 100_000)...).Result()
	require.NoError(t, err)
	assert.Len(t, values, 100_000)

	// Past the limit, but no more than the hash holds (what HVALS
	// returns): answered.
	fields := make([]string, 100)
	for i := range fields {
		fields[i] = "f" + strconv.Itoa(i)
		require.NoError(t, rc.HSet(ctx, "large", fields[i], kib).Err())
	}
	values, err = rc.HMGet(ctx, "large", fields...).Result()
	require.NoError(t, err)
	require.Len(t, values, 100)
	assert.Equal(t, kib, values[99])
	assert.EqualError(t, rc.HMGet(ctx, "large", append(fields, "f0")...).Err(), tooLarge, "one more than the hash holds")

	// The same connection goes on, within a transaction too.
	assert.Equal(t, kib, rc.HGet(ctx, "one", "f").Val())
	cmds, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HMGet(ctx, "one", named("f", 100)...)
		p.HGet(ctx, "one", "f")
		return nil
	})
	require.Error(t, err)
	require.Len(t, cmds, 2)
	assert.EqualError(t, cmds[0].Err(), tooLarge)
	assert.Equal(t, kib, cmds[1].(*redis.StringCmd).Val())
}

// TestTransactionRepliesAreBoundedInBytes: a transaction's replies leave
// only once all are built, and a short transaction could read one large
// hash over and over (100,000 HGETALLs of a 1 MiB hash in 3 MB: 100 GiB).
// Once they pass MaxReplyBytes, a later reply longer than 128 bytes is an
// error; the writes' replies are kept, and the commands all run.
func TestTransactionRepliesAreBoundedInBytes(t *testing.T) {
	const limit = 64 << 10
	ts := start(t, Config{MaxReplyBytes: limit})
	ctx := context.Background()
	rc := ts.client(t)
	kib := strings.Repeat("v", 1024)
	require.NoError(t, rc.HSet(ctx, "h", "big", kib, "small", "s").Err())

	cmds, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for range 100 {
			p.HGet(ctx, "h", "big")
		}
		p.HSet(ctx, "h", "written", "w")
		p.HGet(ctx, "h", "small")
		p.HGetAll(ctx, "h")
		return nil
	})
	require.Error(t, err)
	require.Len(t, cmds, 103)
	const tooLarge = "ERR reply too large: the transaction's replies already pass 65536 bytes"
	kept := 0
	for i, cmd := range cmds[:100] {
		if cmd.Err() == nil {
			require.Equal(t, kept, i, "the replies kept come first")
			assert.Equal(t, kib, cmd.(*redis.StringCmd).Val())
			kept++
			continue
		}
		assert.EqualError(t, cmd.Err(), tooLarge)
	}
	assert.Equal(t, limit/1033+1, kept, "the replies up to the one that passes the limit ($1024 and the value: 1,033 bytes each)")
	require.NoError(t, cmds[100].Err(), "a write's reply is kept")
	assert.Equal(t, int64(1), cmds[100].(*redis.IntCmd).Val())
	require.NoError(t, cmds[101].Err(), "a short reply is kept")
	assert.Equal(t, "s", cmds[101].(*redis.StringCmd).Val())
	assert.EqualError(t, cmds[102].Err(), tooLarge)

	// Everything ran; the connection goes on.
	assert.Equal(t, "w", rc.HGet(ctx, "h", "written").Val())
	assert.Len(t, rc.HGetAll(ctx, "h").Val(), 3)
}

// TestClientListIDListsEachClientOnce: CLIENT LIST ID named a client as
// often as its id came, so that one id repeated made a reply of any size
// from a short request (a million repeats in 7 MB: a 243 MB reply, 2.4 GB
// allocated, every other client of the event loop held for 1.3 s). Each
// client is listed once, in the order first named: the reply is never
// larger than CLIENT LIST's.
func TestClientListIDListsEachClientOnce(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	rc := ts.client(t, func(o *redis.Options) { o.PoolSize = 1 })
	other := ts.client(t, func(o *redis.Options) { o.PoolSize = 1 })
	me, err := rc.ClientID(ctx).Result()
	require.NoError(t, err)
	them, err := other.ClientID(ctx).Result()
	require.NoError(t, err)
	ids := func(list string) []string {
		var got []string
		for _, l := range strings.Split(strings.TrimSuffix(list, "\n"), "\n") {
			got = append(got, strings.TrimPrefix(strings.Fields(l)[0], "id="))
		}
		return got
	}
	a, b := strconv.FormatInt(me, 10), strconv.FormatInt(them, 10)

	list, err := rc.Do(ctx, "CLIENT", "LIST", "ID", b, a, b, "999999", a, b).Text()
	require.NoError(t, err)
	assert.Equal(t, []string{b, a}, ids(list), "each once, in the order first named; an unknown id is skipped")

	args := []any{"CLIENT", "LIST", "ID"}
	for range 100_000 {
		args = append(args, a)
	}
	list, err = rc.Do(ctx, args...).Text()
	require.NoError(t, err)
	assert.Equal(t, []string{a}, ids(list))

	// An id that is not a number is still refused, wherever it comes.
	assert.EqualError(t, rc.Do(ctx, "CLIENT", "LIST", "ID", a, "x").Err(), "ERR Invalid client ID")
}

// TestCommandInfoAndDocsRepeatsAreBounded: COMMAND INFO and COMMAND DOCS
// described a command as often as it was named, so that one name repeated
// made a reply of any size from a short request (a million repeats of
// "hset" in 10 MB: an 80 MB reply from INFO, a 400 MB one from DOCS, 3 GB
// allocated, every other client of the event loop held for 1.5 s). DOCS,
// a map, names each command once; INFO, an array that answers each name in
// its place, refuses a reply that repeats a command past MaxReplyBytes.
func TestCommandInfoAndDocsRepeatsAreBounded(t *testing.T) {
	const limit = 64 << 10
	ts := start(t, Config{MaxReplyBytes: limit})
	ctx := context.Background()
	rc := ts.client(t)
	named := func(sub string, names ...string) []any {
		args := []any{"COMMAND", sub}
		for range 10_000 {
			for _, n := range names {
				args = append(args, n)
			}
		}
		return args
	}

	docs, err := rc.Do(ctx, named("DOCS", "hset", "HGET", "nosuch")...).Slice()
	require.NoError(t, err)
	require.Len(t, docs, 4, "each command once")
	assert.Equal(t, "hset", docs[0])
	assert.Equal(t, "hget", docs[2])

	const tooLarge = "ERR value is out of range, the commands COMMAND INFO repeats pass 65536 bytes"
	assert.EqualError(t, rc.Do(ctx, named("INFO", "hset")...).Err(), tooLarge)
	// Under the limit, repeats and all; unknown names cost their nulls.
	info, err := rc.Do(ctx, "COMMAND", "INFO", "hset", "hset", "nosuch").Slice()
	require.NoError(t, err)
	require.Len(t, info, 3)
	assert.Equal(t, info[0], info[1])
	assert.Nil(t, info[2])
	info, err = rc.Do(ctx, named("INFO", "nosuch")...).Slice()
	require.NoError(t, err)
	assert.Len(t, info, 10_000)
	// The same connection goes on.
	assert.Equal(t, "PONG", rc.Ping(ctx).Val())
}

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
