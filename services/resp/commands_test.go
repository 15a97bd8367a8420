package resp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestConnectionCommands(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t, func(o *redis.Options) { o.ClientName = "tester" })
	ctx := context.Background()

	assert.Equal(t, "PONG", rc.Ping(ctx).Val())
	assert.Equal(t, "hi there", rc.Echo(ctx, "hi there").Val())
	assert.Equal(t, "hello", rc.Do(ctx, "PING", "hello").Val())
	assert.Equal(t, "tester", rc.ClientGetName(ctx).Val())
	id, err := rc.ClientID(ctx).Result()
	require.NoError(t, err)
	assert.Positive(t, id)
	require.NoError(t, rc.Do(ctx, "CLIENT", "SETNAME", "other").Err())
	assert.Equal(t, "other", rc.Do(ctx, "CLIENT", "GETNAME").Val())
	require.NoError(t, rc.Do(ctx, "CLIENT", "SETINFO", "LIB-NAME", "x").Err())
	assert.EqualError(t, rc.Do(ctx, "CLIENT", "SETNAME", "a b").Err(), "ERR Client names cannot contain spaces, newlines or special characters.")
	assert.EqualError(t, rc.Do(ctx, "CLIENT", "NOPE").Err(), "ERR unknown subcommand 'NOPE'. Try CLIENT HELP.")
	list, err := rc.ClientList(ctx).Result()
	require.NoError(t, err)
	assert.Contains(t, list, "name=other")
	mine, err := rc.Do(ctx, "CLIENT", "INFO").Text()
	require.NoError(t, err)
	assert.Contains(t, mine, fmt.Sprintf("id=%d ", id))
	assert.Contains(t, mine, "name=other")
	assert.Equal(t, 1, strings.Count(mine, "\n"), "CLIENT INFO is this client's line of CLIENT LIST")

	require.NoError(t, rc.Do(ctx, "SELECT", "0").Err())
	assert.EqualError(t, rc.Do(ctx, "SELECT", "1").Err(), "ERR DB index is out of range")
	assert.EqualError(t, rc.Do(ctx, "SELECT", "x").Err(), "ERR value is not an integer or out of range")

	hello, err := rc.Do(ctx, "HELLO", "2").Slice()
	require.NoError(t, err)
	assert.Equal(t, "server", hello[0])
	assert.Equal(t, int64(2), hello[5])
	assert.EqualError(t, rc.Do(ctx, "HELLO", "4").Err(), "NOPROTO unsupported protocol version")

	n, err := rc.Do(ctx, "COMMAND", "COUNT").Int()
	require.NoError(t, err)
	assert.Greater(t, n, 40)
	docs, err := rc.Do(ctx, "COMMAND", "DOCS", "hget").Slice()
	require.NoError(t, err)
	assert.Equal(t, "hget", docs[0])
	all, err := rc.Do(ctx, "COMMAND").Slice()
	require.NoError(t, err)
	assert.Len(t, all, n)
	info, err := rc.Do(ctx, "COMMAND", "INFO", "hset", "nope").Slice()
	require.NoError(t, err)
	require.Len(t, info, 2)
	assert.Equal(t, "hset", info[0].([]any)[0])
	assert.Nil(t, info[1])
	ri := ts.raw(t)
	ri.send("COMMAND INFO nope\r\n")
	assert.Equal(t, "*1", ri.line())
	assert.Equal(t, "$-1", ri.line(), "Redis 7's nil for an unknown command, byte for byte")

	require.NoError(t, rc.HSet(ctx, "k", "f", "v").Err())
	text, err := rc.Info(ctx).Result()
	require.NoError(t, err)
	for _, section := range []string{"# Server", "# Clients", "# Memory", "# Stats", "# Keyspace", "db0:keys=1", "connected_clients:", "redis_version:"} {
		assert.Contains(t, text, section)
	}
	text, err = rc.Info(ctx, "keyspace").Result()
	require.NoError(t, err)
	assert.NotContains(t, text, "# Server")
	// A primary without replicas, as ROLE says (clients that pick a
	// primary read role).
	text, err = rc.Info(ctx, "replication").Result()
	require.NoError(t, err)
	assert.Contains(t, text, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n")
	// Redis's CPU section (the process's CPU time so far, in seconds),
	// and Cluster's, which clients read to choose a cluster client.
	text, err = rc.Info(ctx, "cpu", "cluster").Result()
	require.NoError(t, err)
	assert.Regexp(t, `^# CPU\r\nused_cpu_sys:\d+\.\d{6}\r\nused_cpu_user:\d+\.\d{6}\r\n`, text)
	assert.Contains(t, text, "\r\n# Cluster\r\ncluster_enabled:0\r\n")
	var sys, user float64
	_, err = fmt.Sscanf(text, "# CPU\r\nused_cpu_sys:%f\r\nused_cpu_user:%f", &sys, &user)
	require.NoError(t, err)
	assert.Positive(t, sys+user, "the test's server has run")
	text, err = rc.Info(ctx).Result()
	require.NoError(t, err)
	assert.Contains(t, text, "# CPU\r\n", "in the default sections, as in Redis")
	assert.Contains(t, text, "# Errorstats\r\n")
	assert.Contains(t, text, "# Cluster\r\n")
	role, err := rc.Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	assert.Equal(t, []any{"master", int64(0), []any{}}, role)
	assert.Equal(t, int64(1), rc.DBSize(ctx).Val())
	cfg, err := rc.ConfigGet(ctx, "save").Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"save": ""}, cfg)
	before := time.Now().Truncate(time.Microsecond)
	now, err := rc.Time(ctx).Result()
	require.NoError(t, err)
	assert.WithinRange(t, now, before, time.Now(), "TIME: seconds and microseconds")
	cfg, err = rc.ConfigGet(ctx, "maxmemory*").Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"maxmemory": "0", "maxmemory-policy": "noeviction"}, cfg, "kv never evicts")

	r := ts.raw(t)
	r.send("QUIT\r\n")
	assert.Equal(t, "+OK", r.line())
	assert.True(t, r.closed())
}

// kv has no cluster support, and says so as Redis does with
// cluster-enabled no: clients that probe for a cluster (CLUSTER INFO,
// CLUSTER SLOTS, READONLY) get Redis's error rather than "unknown
// command", and CLUSTER's subcommands have Redis's names and arities. The
// replies are redis-server 7.0.15's.
func TestClusterCommandsAnswerAsRedisWithoutCluster(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	rc := ts.client(t)
	const disabled = "ERR This instance has cluster support disabled"
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"CLUSTER", "INFO"}, disabled},
		{[]any{"cluster", "slots"}, disabled},
		{[]any{"CLUSTER", "SHARDS"}, disabled},
		{[]any{"CLUSTER", "HELP"}, disabled},
		{[]any{"CLUSTER", "KEYSLOT", "k"}, disabled},
		{[]any{"READONLY"}, disabled},
		{[]any{"READWRITE"}, disabled},
		{[]any{"ASKING"}, disabled},
		{[]any{"CLUSTER"}, "ERR wrong number of arguments for 'cluster' command"},
		{[]any{"CLUSTER", "INFO", "x"}, "ERR wrong number of arguments for 'cluster|info' command"},
		{[]any{"CLUSTER", "BOGUS"}, "ERR unknown subcommand 'BOGUS'. Try CLUSTER HELP."},
		{[]any{"READONLY", "x"}, "ERR wrong number of arguments for 'readonly' command"},
		{[]any{"COMMAND", "GETKEYS", "CLUSTER", "INFO"}, "ERR The command has no key arguments"},
	} {
		assert.EqualError(t, rc.Do(ctx, tc.args...).Err(), tc.want, "%v", tc.args)
	}
	require.NoError(t, rc.Ping(ctx).Err(), "the connection goes on")
}

func TestHashCommands(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()

	assert.Equal(t, int64(2), rc.HSet(ctx, "h", "a", "1", "b", "2").Val())
	assert.Equal(t, int64(1), rc.HSet(ctx, "h", "a", "10", "c", "3").Val())
	assert.Equal(t, int64(0), rc.HSet(ctx, "h", "a", "1").Val())
	assert.True(t, rc.HMSet(ctx, "h", "d", "4").Val())
	assert.True(t, rc.HSetNX(ctx, "h", "e", "5").Val())
	assert.False(t, rc.HSetNX(ctx, "h", "e", "6").Val())
	assert.Equal(t, "5", rc.HGet(ctx, "h", "e").Val())
	assert.ErrorIs(t, rc.HGet(ctx, "h", "zz").Err(), redis.Nil)
	assert.ErrorIs(t, rc.HGet(ctx, "nope", "a").Err(), redis.Nil)
	assert.Equal(t, []any{"1", nil, "2"}, rc.HMGet(ctx, "h", "a", "zz", "b").Val())
	assert.Equal(t, []any{nil, nil}, rc.HMGet(ctx, "nope", "a", "b").Val())
	assert.True(t, rc.HExists(ctx, "h", "a").Val())
	assert.False(t, rc.HExists(ctx, "h", "zz").Val())
	assert.Equal(t, int64(5), rc.HLen(ctx, "h").Val())
	assert.Equal(t, int64(0), rc.HLen(ctx, "nope").Val())
	assert.Equal(t, int64(1), rc.HStrLen(ctx, "h", "a").Val())
	keys := rc.HKeys(ctx, "h").Val()
	slices.Sort(keys)
	assert.Equal(t, []string{"a", "b", "c", "d", "e"}, keys)
	vals := rc.HVals(ctx, "h").Val()
	slices.Sort(vals)
	assert.Equal(t, []string{"1", "2", "3", "4", "5"}, vals)
	assert.Equal(t, map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}, rc.HGetAll(ctx, "h").Val())
	assert.Equal(t, map[string]string{}, rc.HGetAll(ctx, "nope").Val())
	assert.Equal(t, int64(2), rc.HDel(ctx, "h", "d", "e", "zz").Val())
	assert.Equal(t, int64(0), rc.HDel(ctx, "nope", "a").Val())

	assert.Equal(t, int64(15), rc.HIncrBy(ctx, "h", "a", 14).Val())
	assert.Equal(t, int64(-5), rc.HIncrBy(ctx, "h", "new", -5).Val())
	require.NoError(t, rc.HSet(ctx, "h", "x", "abc").Err())
	assert.EqualError(t, rc.HIncrBy(ctx, "h", "x", 1).Err(), "ERR hash value is not an integer")
	assert.EqualError(t, rc.Do(ctx, "HINCRBY", "h", "a", "1.5").Err(), "ERR value is not an integer or out of range")
	require.NoError(t, rc.HSet(ctx, "h", "big", "9223372036854775807").Err())
	assert.EqualError(t, rc.HIncrBy(ctx, "h", "big", 1).Err(), "ERR increment or decrement would overflow")
	assert.Equal(t, 10.5, rc.HIncrByFloat(ctx, "h", "f", 10.5).Val())
	assert.Equal(t, "10.6", rc.Do(ctx, "HINCRBYFLOAT", "h", "f", "0.1").Val())
	assert.EqualError(t, rc.HIncrByFloat(ctx, "h", "x", 1).Err(), "ERR hash value is not a float")
	assert.EqualError(t, rc.Do(ctx, "HINCRBYFLOAT", "h", "f", "abc").Err(), "ERR value is not a valid float")

	fields, cursor, err := rc.HScan(ctx, "h", 0, "", 100).Result()
	require.NoError(t, err)
	assert.Zero(t, cursor)
	assert.Len(t, fields, 2*int(rc.HLen(ctx, "h").Val()))
	fields, _, err = rc.HScan(ctx, "h", 0, "b*", 100).Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "2", "big", "9223372036854775807"}, sortPairs(fields))
	names, _, err := rc.HScanNoValues(ctx, "h", 0, "", 100).Result()
	require.NoError(t, err)
	assert.Len(t, names, int(rc.HLen(ctx, "h").Val()))

	f, err := rc.HRandField(ctx, "h", 1).Result()
	require.NoError(t, err)
	require.Len(t, f, 1)
	assert.True(t, rc.HExists(ctx, "h", f[0]).Val())
	f, err = rc.HRandField(ctx, "h", 100).Result()
	require.NoError(t, err)
	assert.Len(t, f, int(rc.HLen(ctx, "h").Val()))
	f, err = rc.HRandField(ctx, "h", -20).Result()
	require.NoError(t, err)
	assert.Len(t, f, 20)
	kv, err := rc.HRandFieldWithValues(ctx, "h", 2).Result()
	require.NoError(t, err)
	assert.Len(t, kv, 2)
	one, err := rc.Do(ctx, "HRANDFIELD", "h").Text()
	require.NoError(t, err)
	assert.True(t, rc.HExists(ctx, "h", one).Val())
	assert.ErrorIs(t, rc.Do(ctx, "HRANDFIELD", "nope").Err(), redis.Nil)

	// kv keeps an empty bucket until DEL: the one departure from Redis.
	require.NoError(t, rc.HSet(ctx, "e", "only", "1").Err())
	assert.Equal(t, int64(1), rc.HDel(ctx, "e", "only").Val())
	assert.Equal(t, int64(1), rc.Exists(ctx, "e").Val())
	assert.Equal(t, int64(1), rc.Del(ctx, "e").Val())
	assert.Equal(t, int64(0), rc.Exists(ctx, "e").Val())
}

func sortPairs(p []string) []string {
	type kv struct{ k, v string }
	var pairs []kv
	for i := 0; i+1 < len(p); i += 2 {
		pairs = append(pairs, kv{p[i], p[i+1]})
	}
	slices.SortFunc(pairs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	var out []string
	for _, x := range pairs {
		out = append(out, x.k, x.v)
	}
	return out
}

func TestKeyCommands(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()

	for _, k := range []string{"user:1", "user:2", "cart:1", "x"} {
		require.NoError(t, rc.HSet(ctx, k, "f", k).Err())
	}
	assert.Equal(t, int64(3), rc.Exists(ctx, "user:1", "x", "nope", "x").Val())
	assert.Equal(t, "hash", rc.Type(ctx, "x").Val())
	assert.Equal(t, "none", rc.Type(ctx, "nope").Val())
	assert.Equal(t, []string{"user:1", "user:2"}, rc.Keys(ctx, "user:*").Val())
	assert.Equal(t, []string{"cart:1", "user:1", "user:2", "x"}, rc.Keys(ctx, "*").Val())
	assert.Equal(t, []string{"user:2"}, rc.Keys(ctx, "user:[2-3]").Val())
	assert.Equal(t, int64(1), rc.Del(ctx, "x", "nope").Val())
	assert.Equal(t, int64(1), rc.Unlink(ctx, "cart:1").Val())
	assert.Equal(t, int64(2), rc.DBSize(ctx).Val())

	require.NoError(t, rc.Rename(ctx, "user:1", "user:9").Err())
	assert.Equal(t, int64(0), rc.Exists(ctx, "user:1").Val())
	assert.Equal(t, "user:1", rc.HGet(ctx, "user:9", "f").Val())
	require.NoError(t, rc.Rename(ctx, "user:9", "user:2").Err()) // overwrites
	assert.Equal(t, map[string]string{"f": "user:1"}, rc.HGetAll(ctx, "user:2").Val())
	assert.EqualError(t, rc.Rename(ctx, "nope", "b").Err(), "ERR no such key")

	require.NoError(t, rc.FlushAll(ctx).Err())
	assert.Equal(t, int64(0), rc.DBSize(ctx).Val())
	require.NoError(t, rc.HSet(ctx, "again", "f", "v").Err())
	require.NoError(t, rc.FlushDB(ctx).Err(), "FLUSHDB is FLUSHALL: there is one database")
	assert.Equal(t, int64(0), rc.DBSize(ctx).Val())
	// FLUSHALL ASYNC (and SYNC) run as FLUSHALL does: the reply comes once
	// every bucket is gone, so the client that sent it finds none.
	for _, mode := range []string{"ASYNC", "async", "SYNC"} {
		require.NoError(t, rc.HSet(ctx, "again", "f", "v").Err())
		require.NoError(t, rc.Do(ctx, "FLUSHALL", mode).Err(), mode)
		assert.Equal(t, int64(0), rc.Exists(ctx, "again").Val(), mode)
		assert.Equal(t, int64(0), rc.DBSize(ctx).Val(), mode)
	}
	assert.EqualError(t, rc.Do(ctx, "FLUSHALL", "LATER").Err(), "ERR syntax error")

	// Key names are 1 to 4,096 bytes.
	require.NoError(t, rc.HSet(ctx, strings.Repeat("k", 4096), "f", "v").Err())
	for _, bad := range []string{"", strings.Repeat("k", 4097)} {
		err := rc.HSet(ctx, bad, "f", "v").Err()
		require.Error(t, err, "%d bytes", len(bad))
		assert.True(t, strings.HasPrefix(err.Error(), "ERR invalid key"), err.Error())
	}
	assert.Equal(t, int64(1), rc.DBSize(ctx).Val())
}

// TestScanIsStable checks SCAN's promise while buckets come and go: every
// key present for the whole iteration is returned, exactly once here.
func TestScanIsStable(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	stable := map[string]bool{}
	for i := range 300 {
		k := fmt.Sprintf("stable:%d", i)
		stable[k] = true
		require.NoError(t, rc.HSet(ctx, k, "f", "v").Err())
	}
	seen := map[string]int{}
	var cursor uint64
	step := 0
	for {
		keys, next, err := rc.Scan(ctx, cursor, "", 7).Result()
		require.NoError(t, err)
		for _, k := range keys {
			seen[k]++
		}
		// Churn between steps: new keys, and deleted ones.
		require.NoError(t, rc.HSet(ctx, fmt.Sprintf("churn:%d", step), "f", "v").Err())
		if step > 3 {
			require.NoError(t, rc.Del(ctx, fmt.Sprintf("churn:%d", step-3)).Err())
		}
		step++
		cursor = next
		if cursor == 0 {
			break
		}
	}
	for k := range stable {
		assert.Equal(t, 1, seen[k], "key %s", k)
	}
	keys, _, err := rc.Scan(ctx, 0, "stable:1?", 1000).Result()
	require.NoError(t, err)
	assert.Len(t, keys, 10)
	assert.EqualError(t, rc.Do(ctx, "SCAN", "abc").Err(), "ERR invalid cursor")
	assert.EqualError(t, rc.Do(ctx, "SCAN", "0", "COUNT", "0").Err(), "ERR syntax error")
}

// HSCAN walks a large hash in small steps: every field once, with its
// value, while other fields come and go; MATCH filters the page and
// NOVALUES leaves the values out.
func TestHScanIsStable(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	want := map[string]string{}
	for i := range 500 {
		f, v := fmt.Sprintf("f%d", i), fmt.Sprintf("v%d", i)
		want[f] = v
		require.NoError(t, rc.HSet(ctx, "big", f, v).Err())
	}
	seen := map[string]int{}
	var cursor uint64
	for step := 0; ; step++ {
		fields, next, err := rc.HScan(ctx, "big", cursor, "", 7).Result()
		require.NoError(t, err)
		require.Zero(t, len(fields)%2)
		for i := 0; i < len(fields); i += 2 {
			if v, ok := want[fields[i]]; ok {
				assert.Equal(t, v, fields[i+1], fields[i])
			}
			seen[fields[i]]++
		}
		require.NoError(t, rc.HSet(ctx, "big", fmt.Sprintf("churn%d", step), "x").Err())
		if step > 2 {
			require.NoError(t, rc.HDel(ctx, "big", fmt.Sprintf("churn%d", step-2)).Err())
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	for f := range want {
		assert.Equal(t, 1, seen[f], f)
	}
	var matched []string
	for cursor = 0; ; {
		names, next, err := rc.HScanNoValues(ctx, "big", cursor, "f1?", 3).Result()
		require.NoError(t, err)
		matched = append(matched, names...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	assert.ElementsMatch(t, []string{"f10", "f11", "f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19"}, matched)
	fields, next, err := rc.HScan(ctx, "missing", 0, "", 10).Result()
	require.NoError(t, err)
	assert.Empty(t, fields)
	assert.Zero(t, next)
	// As Redis: the cursor is checked, then the key looked up, and only
	// then the options.
	for _, args := range [][]any{{"HSCAN", "missing", "0", "COUNT", "0"}, {"HSCAN", "missing", "0", "FOO"}} {
		v, err := rc.Do(ctx, args...).Slice()
		require.NoError(t, err, "%v", args)
		assert.Equal(t, []any{"0", []any{}}, v, "%v", args)
	}
	assert.EqualError(t, rc.Do(ctx, "HSCAN", "missing", "x", "FOO").Err(), "ERR invalid cursor")
}

// MATCH "" is a pattern, which only an empty name matches, not the
// absence of one; a lone "*" is none, and the last MATCH counts.
func TestScanMatch(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "small", "a", "1", "b", "2", "c", "3", "", "empty").Err())
	require.NoError(t, rc.HSet(ctx, "other", "f", "v").Err())
	all := []string{"", "empty", "a", "1", "b", "2", "c", "3"}
	for _, tc := range []struct {
		name string
		args []any
		want []string // HSCAN: pairs, sorted by field; SCAN: names, sorted
	}{
		{"hscan, no MATCH", []any{"HSCAN", "small", "0"}, all},
		{"hscan, MATCH empty", []any{"HSCAN", "small", "0", "MATCH", ""}, []string{"", "empty"}},
		{"hscan, MATCH star", []any{"HSCAN", "small", "0", "MATCH", "*"}, all},
		{"hscan, MATCH ?", []any{"HSCAN", "small", "0", "MATCH", "?"}, all[2:]},
		{"hscan, the last MATCH counts", []any{"HSCAN", "small", "0", "MATCH", "a", "MATCH", ""}, []string{"", "empty"}},
		{"hscan, MATCH star last", []any{"HSCAN", "small", "0", "MATCH", "", "match", "*"}, all},
		{"hscan NOVALUES, MATCH empty", []any{"HSCAN", "small", "0", "MATCH", "", "NOVALUES"}, []string{""}},
		{"scan, no MATCH", []any{"SCAN", "0"}, []string{"other", "small"}},
		{"scan, MATCH empty", []any{"SCAN", "0", "MATCH", ""}, []string{}},
		{"scan, MATCH star", []any{"SCAN", "0", "MATCH", "*"}, []string{"other", "small"}},
		{"scan, MATCH empty and TYPE", []any{"SCAN", "0", "MATCH", "", "TYPE", "hash"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := rc.Do(ctx, tc.args...).Slice()
			require.NoError(t, err)
			require.Len(t, reply, 2)
			assert.Equal(t, "0", reply[0], "one step covers a small hash and a few keys")
			got := []string{}
			for _, v := range reply[1].([]any) {
				got = append(got, v.(string))
			}
			switch {
			case tc.args[0] == "SCAN", slices.Contains(tc.args, "NOVALUES"):
				slices.Sort(got)
			default:
				got = sortPairs(got)
			}
			if got == nil {
				got = []string{}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestErrorWords(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "h", "f", "v", "zeros", "007", "infinite", "inf").Err())
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"NOSUCH", "a", "b"}, "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "},
		{[]any{"hget", "h"}, "ERR wrong number of arguments for 'hget' command"},
		{[]any{"HSET", "h", "f"}, "ERR wrong number of arguments for 'hset' command"},
		{[]any{"HSET", "h", "f", "v", "g"}, "ERR wrong number of arguments for 'hset' command"},
		{[]any{"GET", "h"}, "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{[]any{"LPUSH", "h", "x"}, "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{[]any{"SET", "s", "x"}, "ERR kv stores hashes only: 'set' is not supported"},
		{[]any{"HINCRBY", "h", "n", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"AUTH", "pw"}, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
		{[]any{"DEBUG", "CRASH-BUCKET", "h"}, "ERR DEBUG command not allowed. Start kv with --enable-debug-command to allow it."},
		{[]any{"HRANDFIELD", "h", "1", "x"}, "ERR syntax error"},
		{[]any{"HRANDFIELD", "h", "-9223372036854775808"}, "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"},
		{[]any{"HRANDFIELD", "h", "-1048577"}, "ERR value is out of range, a negative count must be at least -1048576"},
		// Redis reads the count before the word after it, and then bounds
		// the count with WITHVALUES, all before it looks the key up.
		{[]any{"HRANDFIELD", "h", "abc", "FOO"}, "ERR value is not an integer or out of range"},
		{[]any{"HRANDFIELD", "h", "abc", "WITHVALUES", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"HRANDFIELD", "missing", "abc", "WITHVALUES"}, "ERR value is not an integer or out of range"},
		{[]any{"HRANDFIELD", "h", "-9223372036854775808", "x"}, "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"},
		{[]any{"HRANDFIELD", "h", "1", "WITHVALUES", "x"}, "ERR syntax error"},
		{[]any{"HRANDFIELD", "h", "4611686018427387904", "x"}, "ERR syntax error"},
		{[]any{"HRANDFIELD", "h", "4611686018427387904", "WITHVALUES"}, "ERR value is out of range"},
		{[]any{"HRANDFIELD", "h", "9223372036854775807", "withvalues"}, "ERR value is out of range"},
		{[]any{"HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES"}, "ERR value is out of range"},
		{[]any{"HRANDFIELD", "missing", "-4611686018427387904", "WITHVALUES"}, "ERR value is out of range"},
		{[]any{"HRANDFIELD", "missing", "4611686018427387904", "WITHVALUES"}, "ERR value is out of range"},
		{[]any{"HRANDFIELD", "h", "-4611686018427387903", "WITHVALUES"}, "ERR value is out of range, a negative count must be at least -1048576"},
		{[]any{"HINCRBY", "h", "n", "007"}, "ERR value is not an integer or out of range"},
		{[]any{"HINCRBY", "h", "n", "-0"}, "ERR value is not an integer or out of range"},
		{[]any{"HINCRBY", "h", "n", "+1"}, "ERR value is not an integer or out of range"},
		{[]any{"HINCRBY", "h", "zeros", "1"}, "ERR hash value is not an integer"},
		{[]any{"SELECT", "00"}, "ERR value is not an integer or out of range"},
		{[]any{"SELECT", "9223372036854775807"}, "ERR value is out of range, value must between -2147483648 and 2147483647"},
		{[]any{"SELECT", "2147483648"}, "ERR value is out of range, value must between -2147483648 and 2147483647"},
		{[]any{"SELECT", "-2147483649"}, "ERR value is out of range, value must between -2147483648 and 2147483647"},
		{[]any{"SELECT", "9223372036854775808"}, "ERR value is not an integer or out of range"},
		{[]any{"SELECT", "2147483647"}, "ERR DB index is out of range"},
		{[]any{"SELECT", "-2147483648"}, "ERR DB index is out of range"},
		{[]any{"SELECT", "-1"}, "ERR DB index is out of range"},
		{[]any{"HINCRBYFLOAT", "h", "n", "1_0"}, "ERR value is not a valid float"},
		{[]any{"HINCRBYFLOAT", "h", "n", "nan"}, "ERR value is not a valid float"},
		{[]any{"HINCRBYFLOAT", "h", "n", "inf"}, "ERR value is NaN or Infinity"},
		{[]any{"HINCRBYFLOAT", "h", "infinite", "1"}, "ERR increment would produce NaN or Infinity"},
		{[]any{"COMMAND", "COUNT", "x"}, "ERR wrong number of arguments for 'command|count' command"},
		{[]any{"COMMAND", "LIST", "FILTERBY", "x"}, "ERR syntax error"},
		{[]any{"AUTH", "someone", "pw"}, "WRONGPASS invalid username-password pair or user is disabled."},
		{[]any{"HELLO", "0"}, "NOPROTO unsupported protocol version"},
		{[]any{"HELLO", "1"}, "NOPROTO unsupported protocol version"},
		{[]any{"HELLO", "4"}, "NOPROTO unsupported protocol version"},
		{[]any{"HELLO", "-1"}, "NOPROTO unsupported protocol version"},
		{[]any{"HELLO", "1"}, "NOPROTO unsupported protocol version"},
		{[]any{"HELLO", "9223372036854775807", "SETNAME", "a b"}, "NOPROTO unsupported protocol version"},
		{[]any{"HELLO", "x"}, "ERR Protocol version is not an integer or out of range"},
		{[]any{"CLIENT", "NO-EVICT", "maybe"}, "ERR syntax error"},
		{[]any{"CLIENT", "NO-EVICT", ""}, "ERR syntax error"},
		{[]any{"CLIENT", "no-evict", "onn"}, "ERR syntax error"},
		{[]any{"CLIENT", "NO-TOUCH", "x"}, "ERR syntax error"},
		{[]any{"CLIENT", "NO-EVICT", "on", "x"}, "ERR wrong number of arguments for 'client|no-evict' command"},
		{[]any{"CLIENT", "SETINFO", "LIB-NAME", "a b"}, "ERR LIB-NAME cannot contain spaces, newlines or special characters."},
		// Redis quotes an unknown command's arguments until the list
		// reaches 128 bytes, the last cut to what is left of them.
		{[]any{"NOSUCH", strings.Repeat("x", 100), strings.Repeat("y", 100), "z"},
			"ERR unknown command 'NOSUCH', with args beginning with: '" + strings.Repeat("x", 100) + "' '" + strings.Repeat("y", 25) + "' "},
		{[]any{"NOSUCH", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s"},
			"ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' 'c' 'd' 'e' 'f' 'g' 'h' 'i' 'j' 'k' 'l' 'm' 'n' 'o' 'p' 'q' 'r' 's' "},
		{[]any{"SCAN", "0", "NOVALUES"}, "ERR NOVALUES option can only be used in HSCAN"},
		{[]any{"HSCAN", "h", "0", "COUNT", "0"}, "ERR syntax error"},
	} {
		assert.EqualError(t, rc.Do(ctx, tc.args...).Err(), tc.want, "%v", tc.args)
	}
	// The other types' read commands give the empty answer on a missing key.
	assert.ErrorIs(t, rc.Do(ctx, "GET", "missing").Err(), redis.Nil)
	assert.Equal(t, int64(0), rc.LLen(ctx, "missing").Val())
	members, err := rc.SMembers(ctx, "missing").Result()
	require.NoError(t, err)
	assert.Empty(t, members)
}

// Numbers, counts and commands that Redis answers without an error.
func TestAnswersAsRedis(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		args []any
		want any
	}{
		{[]any{"HINCRBYFLOAT", "f", "hex", "0x10"}, "16"},
		{[]any{"HINCRBYFLOAT", "f", "hex", "-0x1p-1"}, "15.5"},
		{[]any{"HINCRBYFLOAT", "f", "e", "1e3"}, "1000"},
		{[]any{"HINCRBY", "f", "i", "-9223372036854775808"}, int64(math.MinInt64)},
		{[]any{"SELECT", "0"}, "OK"},
		{[]any{"AUTH", "default", "anything"}, "OK"}, // no password: the default user takes any
		{[]any{"HRANDFIELD", "missing", "-1048577"}, []any{}},
		{[]any{"CLIENT", "NO-EVICT", "on"}, "OK"},
		{[]any{"CLIENT", "NO-EVICT", "OFF"}, "OK"},
		{[]any{"CLIENT", "no-touch", "On"}, "OK"},
		{[]any{"CLIENT", "NO-TOUCH", "off"}, "OK"},
		{[]any{"HRANDFIELD", "missing", "4611686018427387903", "WITHVALUES"}, []any{}},
		{[]any{"HRANDFIELD", "missing", "-4611686018427387903", "WITHVALUES"}, []any{}},
		{[]any{"HRANDFIELD", "missing", "9223372036854775807"}, []any{}},
	} {
		got, err := rc.Do(ctx, tc.args...).Result()
		require.NoError(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, got, "%v", tc.args)
	}
	hello, err := rc.Do(ctx, "HELLO", "2", "AUTH", "default", "x").Result()
	require.NoError(t, err)
	assert.NotEmpty(t, hello)

	require.NoError(t, rc.HSet(ctx, "small", "a", "1", "b", "2").Err())
	all, err := rc.Do(ctx, "HRANDFIELD", "small", "3000000000").StringSlice()
	require.NoError(t, err, "a count past the hash's size returns the whole hash")
	assert.ElementsMatch(t, []string{"a", "b"}, all)
	all, err = rc.Do(ctx, "HRANDFIELD", "small", "4611686018427387903", "WITHVALUES").StringSlice()
	require.NoError(t, err, "the largest count WITHVALUES takes")
	assert.Equal(t, []string{"a", "1", "b", "2"}, sortPairs(all))
	some, err := rc.Do(ctx, "HRANDFIELD", "small", "-5").StringSlice()
	require.NoError(t, err)
	assert.Len(t, some, 5, "a negative count repeats fields")

	every, err := rc.Do(ctx, "COMMAND", "LIST").StringSlice()
	require.NoError(t, err)
	hashes, err := rc.Do(ctx, "COMMAND", "LIST", "FILTERBY", "PATTERN", "h*").StringSlice()
	require.NoError(t, err)
	require.NotEmpty(t, hashes)
	assert.Less(t, len(hashes), len(every))
	for _, n := range hashes {
		assert.True(t, strings.HasPrefix(n, "h"), n)
	}
	byCategory, err := rc.Do(ctx, "COMMAND", "LIST", "FILTERBY", "ACLCAT", "@hash").StringSlice()
	require.NoError(t, err)
	assert.Contains(t, byCategory, "hget")
	assert.NotContains(t, byCategory, "ping")
	writes, err := rc.Do(ctx, "COMMAND", "LIST", "FILTERBY", "ACLCAT", "write").StringSlice()
	require.NoError(t, err)
	assert.Contains(t, writes, "hset")
	assert.Contains(t, writes, "del")
	assert.NotContains(t, writes, "hget")
	hget, err := rc.Do(ctx, "COMMAND", "INFO", "hget").Slice()
	require.NoError(t, err)
	assert.Equal(t, []any{"@hash", "@read"}, hget[0].([]any)[6], "hget's ACL categories, as Redis has them (less @fast)")
	for _, tc := range []struct {
		cmd  string
		want []any
	}{
		{"flushall", []any{"@keyspace", "@write", "@dangerous"}},
		{"dbsize", []any{"@keyspace", "@read"}},
		{"keys", []any{"@keyspace", "@read", "@dangerous"}},
		{"hset", []any{"@hash", "@write"}},
		{"ping", []any{"@connection"}},
		// Types kv does not have, as Redis files them (less @fast, @slow).
		{"get", []any{"@string", "@read"}},
		{"lpush", []any{"@list", "@write"}},
		{"smembers", []any{"@set", "@read"}},
		{"zadd", []any{"@sortedset", "@write"}},
	} {
		info, err := rc.Do(ctx, "COMMAND", "INFO", tc.cmd).Slice()
		require.NoError(t, err)
		assert.Equal(t, tc.want, info[0].([]any)[6], tc.cmd)
	}
	// The flags: write for a write, readonly for a read of keys (cluster
	// clients send those to replicas), neither for the others.
	for _, tc := range []struct {
		cmd  string
		want []any
	}{
		{"hset", []any{"write"}},
		{"hget", []any{"readonly"}},
		{"ttl", []any{"readonly"}},
		{"persist", []any{"write"}}, // as Redis, though kv's keys never expire
		{"dbsize", []any{"readonly"}},
		{"ping", []any{"pubsub"}},
		{"wait", []any{}},
		{"memory", []any{}},
		{"object", []any{}}, // its subcommands read keys; the container, as MEMORY, flags none
		{"config", []any{"admin"}},
		{"auth", []any{"no_auth"}},
	} {
		info, err := rc.Do(ctx, "COMMAND", "INFO", tc.cmd).Slice()
		require.NoError(t, err)
		assert.Equal(t, tc.want, info[0].([]any)[2], tc.cmd)
	}
	dangerous, err := rc.Do(ctx, "COMMAND", "LIST", "FILTERBY", "ACLCAT", "dangerous").StringSlice()
	require.NoError(t, err)
	assert.Subset(t, dangerous, []string{"flushall", "flushdb", "keys", "debug"})
	modules, err := rc.Do(ctx, "COMMAND", "LIST", "FILTERBY", "MODULE", "x").StringSlice()
	require.NoError(t, err)
	assert.Empty(t, modules)
	info, err := rc.Do(ctx, "COMMAND", "INFO").Slice()
	require.NoError(t, err)
	assert.Len(t, info, len(every), "COMMAND INFO alone describes every command")
}

// HKEYS, HVALS, HGETALL and HSCAN list an unchanged hash's fields in one
// order, call after call, small hashes and large ones alike (a client may
// pair HKEYS with HVALS).
func TestHashReadsAgreeOnOrder(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	for _, n := range []int{2, 20, 300} {
		name := fmt.Sprintf("h%d", n)
		for i := range n {
			require.NoError(t, rc.HSet(ctx, name, fmt.Sprintf("field:%d", i), fmt.Sprintf("value:%d", i)).Err())
		}
		var firstKeys, firstVals []string
		for range 5 {
			keys, err := rc.HKeys(ctx, name).Result()
			require.NoError(t, err)
			vals, err := rc.HVals(ctx, name).Result()
			require.NoError(t, err)
			pairs, err := rc.Do(ctx, "HGETALL", name).StringSlice()
			require.NoError(t, err)
			scanned, _, err := rc.HScan(ctx, name, 0, "", int64(n)).Result()
			require.NoError(t, err)
			require.Len(t, keys, n)
			require.Len(t, pairs, 2*n)
			for i := range keys {
				assert.Equal(t, keys[i], pairs[2*i], "HKEYS and HGETALL")
				assert.Equal(t, vals[i], pairs[2*i+1], "HVALS and HGETALL")
				assert.Equal(t, strings.Replace(keys[i], "field", "value", 1), vals[i], "pairs match")
			}
			assert.Equal(t, pairs, scanned, "HSCAN")
			if firstKeys == nil {
				firstKeys, firstVals = keys, vals
			}
			assert.Equal(t, firstKeys, keys, "HKEYS call after call")
			assert.Equal(t, firstVals, vals, "HVALS call after call")
		}
	}
}

// The README's example of the order: after HSET h b 1 a 2 c 3, Redis's
// HKEYS follows the order of insertion (b a c, redis-server 7.0.15), kv's
// the cursor order, fixed by the fields' hashes: a c b, as HVALS, HGETALL
// and HSCAN list them.
func TestHashOrderOfTheREADMEsExample(t *testing.T) {
	rc := start(t, Config{}).client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "h", "b", "1", "a", "2", "c", "3").Err())
	assert.Equal(t, []string{"a", "c", "b"}, rc.HKeys(ctx, "h").Val())
	assert.Equal(t, []string{"2", "3", "1"}, rc.HVals(ctx, "h").Val())
	keys, cursor, err := rc.HScan(ctx, "h", 0, "", 10).Result()
	require.NoError(t, err)
	assert.Zero(t, cursor)
	assert.Equal(t, []string{"a", "2", "c", "3", "b", "1"}, keys)
}

func TestAuth(t *testing.T) {
	ts := start(t, Config{Password: "s3cret"})
	ctx := context.Background()

	r := ts.raw(t)
	r.send("HGET a b\r\n")
	assert.Equal(t, "-NOAUTH Authentication required.", r.line())
	r.send("AUTH wrong\r\n")
	assert.Equal(t, "-WRONGPASS invalid username-password pair or user is disabled.", r.line())
	r.send("AUTH s3cret\r\nHSET a b c\r\n")
	assert.Equal(t, "+OK", r.line())
	assert.Equal(t, ":1", r.line())

	bad := ts.client(t, func(o *redis.Options) { o.Password = "nope" })
	assert.Error(t, bad.Ping(ctx).Err())
	none := ts.client(t)
	assert.EqualError(t, none.Ping(ctx).Err(), "NOAUTH Authentication required.")
	good := ts.client(t, func(o *redis.Options) { o.Password = "s3cret" })
	assert.Equal(t, "c", good.HGet(ctx, "a", "b").Val())
	user := ts.client(t, func(o *redis.Options) { o.Username = "default"; o.Password = "s3cret" })
	assert.Equal(t, "c", user.HGet(ctx, "a", "b").Val())
	hello, err := ts.client(t).Do(ctx, "HELLO", "2", "AUTH", "default", "s3cret").Slice()
	require.NoError(t, err)
	assert.Equal(t, "kv", hello[1])

	// As Redis: the arity is checked before the login, and HELLO 3 asks
	// for the login first, and keeps RESP2 until it has it.
	r = ts.raw(t)
	r.send("HGET\r\n")
	assert.Equal(t, "-ERR wrong number of arguments for 'hget' command", r.line())
	r.send("HELLO 3\r\n")
	assert.Equal(t, "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time", r.line())
	r.send("HELLO 3 AUTH default s3cret\r\n")
	assert.Equal(t, "%7", r.line(), "HELLO 3 AUTH logged in, and answers in RESP3")
	for r.line() != "*0" { // the map's pairs, up to modules' empty array
	}
	r.send("HGET a b\r\nHGET a nope\r\n")
	r.expect("$1", "c", "_")
	r.send("HELLO 4\r\n")
	assert.Equal(t, "-NOPROTO unsupported protocol version", r.line())
}

// HELLO's options answer their errors in the order given, as Redis 7.0
// reads them (a bad SETNAME before a wrong AUTH is the name's error, and
// the other way round the password's), but none acts on an error: the
// client is neither logged in nor named.
func TestHelloOptionsOrder(t *testing.T) {
	const (
		badName   = "-ERR Client names cannot contain spaces, newlines or special characters."
		wrongPass = "-WRONGPASS invalid username-password pair or user is disabled."
		noAuth    = "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
	)
	ts := start(t, Config{Password: "s3cret"})
	for _, tc := range []struct {
		name, req, want string
	}{
		{"bad name, then a wrong login", `HELLO 2 SETNAME "a b" AUTH foo pw`, badName},
		{"bad name, then a good login", `HELLO 2 SETNAME "a b" AUTH default s3cret`, badName},
		{"good login, then a bad name", `HELLO 2 AUTH default s3cret SETNAME "a b"`, badName},
		{"wrong login, then a bad name", `HELLO 2 AUTH foo pw SETNAME "a b"`, wrongPass},
		{"bad name, not logged in", `HELLO 2 SETNAME "a b"`, badName},
		{"good name, not logged in", `HELLO 2 SETNAME ok`, noAuth},
		{"good name, then a wrong login", `HELLO 2 SETNAME ok AUTH default pw`, wrongPass},
		{"good login, then a bad word", `HELLO 2 AUTH default s3cret BOGUS`, "-ERR Syntax error in HELLO option 'BOGUS'"},
		{"RESP3, bad name", `HELLO 3 SETNAME "a b" AUTH default s3cret`, badName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.raw(t)
			r.send(tc.req + "\r\n")
			assert.Equal(t, tc.want, r.line())
			r.send("HGET a b\r\n")
			assert.Equal(t, "-NOAUTH Authentication required.", r.line(), "not logged in")
			r.send("AUTH s3cret\r\nCLIENT GETNAME\r\n")
			assert.Equal(t, "+OK", r.line())
			assert.Equal(t, "$-1", r.line(), "not named")
		})
	}

	cn := ts.client(t, func(o *redis.Options) { o.Password = "s3cret" }).Conn() // one connection
	defer cn.Close()
	ctx := context.Background()
	hello, err := cn.Do(ctx, "HELLO", "2", "SETNAME", "first", "AUTH", "default", "s3cret", "SETNAME", "second").Slice()
	require.NoError(t, err)
	assert.Equal(t, "kv", hello[1])
	assert.Equal(t, "second", cn.Do(ctx, "CLIENT", "GETNAME").Val(), "the last SETNAME counts")
}

func TestPipelining(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	cmds, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 1000 {
			p.HSet(ctx, "p", fmt.Sprint(i), i)
			p.HGet(ctx, "p", fmt.Sprint(i))
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, cmds, 2000)
	for i := 0; i < 2000; i += 2 {
		assert.Equal(t, fmt.Sprint(i/2), cmds[i+1].(*redis.StringCmd).Val())
	}

	// A pipeline written in one go on a raw socket, inline and RESP mixed.
	r := ts.raw(t)
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "*3\r\n$4\r\nHGET\r\n$1\r\np\r\n$%d\r\n%d\r\n", len(fmt.Sprint(i)), i)
		b.WriteString("PING\r\n")
	}
	r.send(b.String())
	for i := range 100 {
		assert.Equal(t, fmt.Sprintf("$%d", len(fmt.Sprint(i))), r.line())
		assert.Equal(t, fmt.Sprint(i), r.line())
		assert.Equal(t, "+PONG", r.line())
	}
}

func TestInlineCommands(t *testing.T) {
	ts := start(t, Config{})
	r := ts.raw(t)
	r.send("HSET greeting text \"hello world\"\r\n")
	assert.Equal(t, ":1", r.line())
	r.send("hget greeting text\n") // a bare \n, as nc sends
	assert.Equal(t, "$11", r.line())
	assert.Equal(t, "hello world", r.line())
	r.send("\r\nPING\r\n") // empty lines are ignored
	assert.Equal(t, "+PONG", r.line())
	r.send("ECHO \"unbalanced\r\n")
	assert.Equal(t, "-ERR Protocol error: unbalanced quotes in request", r.line())
	assert.True(t, r.closed())
}

// Inline commands are split by redcon's parser, not Redis's, as the
// README's departures say: "\x41" is not decoded (Redis reads "A"), nor
// are "\a" and "\b" (Redis reads a bell and a backspace), a tab does not
// separate words (Redis's sdssplitargs splits on it), and \n inside
// single quotes becomes a newline (Redis keeps the backslash).
func TestInlineCommandsSplitAsRedconSplitsThem(t *testing.T) {
	ts := start(t, Config{})
	r, rc, ctx := ts.raw(t), ts.client(t), context.Background()
	for _, tc := range []struct{ line, field string }{
		{`HSET inline "\x41" v`, "x41"},
		{`HSET inline "\a\b" v`, "ab"},
		{"HSET inline a\tb v", "a\tb"},
		{`HSET inline 'x\ny' v`, "x\ny"},
	} {
		require.NoError(t, rc.Del(ctx, "inline").Err())
		r.send(tc.line + "\r\n")
		r.expect(":1")
		assert.Equal(t, []string{tc.field}, rc.HKeys(ctx, "inline").Val(), "%q", tc.line)
	}
}

// kv's keys never expire: TTL and its kin answer what Redis answers for a
// key without a timeout (-1, PERSIST 0) and for a missing key (-2).
func TestKeysNeverExpire(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())
	for _, cmd := range []string{"TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"} {
		got, err := rc.Do(ctx, cmd, "h").Int64()
		require.NoError(t, err, cmd)
		assert.Equal(t, int64(-1), got, "%s of a key", cmd)
		got, err = rc.Do(ctx, cmd, "nope").Int64()
		require.NoError(t, err, cmd)
		assert.Equal(t, int64(-2), got, "%s of a missing key", cmd)
	}
	assert.Equal(t, time.Duration(-1), rc.TTL(ctx, "h").Val(), "go-redis's TTL: -1 as a Duration")
	assert.False(t, rc.Persist(ctx, "h").Val())
	assert.False(t, rc.Persist(ctx, "nope").Val())
	assert.EqualError(t, rc.Do(ctx, "TTL").Err(), "ERR wrong number of arguments for 'ttl' command")
}

// COMMAND GETKEYS names a command line's keys from the command table's
// positions, with Redis 7's errors (checked against redis-server 7.0.15).
func TestCommandGetKeys(t *testing.T) {
	rc := start(t, Config{}).client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		args []any
		want []string
	}{
		{[]any{"HSET", "k", "f", "v"}, []string{"k"}},
		{[]any{"hget", "k", "f"}, []string{"k"}},
		{[]any{"DEL", "a", "b", "c"}, []string{"a", "b", "c"}},
		{[]any{"RENAME", "a", "b"}, []string{"a", "b"}},
		{[]any{"WATCH", "a", "b"}, []string{"a", "b"}},
	} {
		keys, err := rc.CommandGetKeys(ctx, tc.args...).Result()
		require.NoError(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, keys, "%v", tc.args)
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"COMMAND", "GETKEYS", "foo", "bar"}, "ERR Invalid command specified"},
		{[]any{"COMMAND", "GETKEYS", "HSET", "k"}, "ERR Invalid number of arguments specified for command"},
		{[]any{"COMMAND", "GETKEYS", "PING", "x"}, "ERR The command has no key arguments"},
		{[]any{"COMMAND", "GETKEYS", "KEYS", "*"}, "ERR The command has no key arguments"},
		{[]any{"COMMAND", "GETKEYS", "CLIENT", "LIST"}, "ERR The command has no key arguments"},
		{[]any{"COMMAND", "GETKEYS", "HSET"}, "ERR wrong number of arguments for 'command|getkeys' command"},
	} {
		err := rc.Do(ctx, tc.args...).Err()
		require.Error(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, err.Error(), "%v", tc.args)
	}
}

// COMMAND GETKEYS of a command with subcommands looks at the subcommand,
// as Redis 7.0 does: OBJECT ENCODING's and MEMORY USAGE's key is their
// third argument, an unknown subcommand is an invalid command, and the
// subcommand's arity counts (redis-server 7.0.15's replies). Before, kv
// answered that these commands have no key arguments.
func TestCommandGetKeysOfSubcommands(t *testing.T) {
	rc := start(t, Config{}).client(t)
	ctx := context.Background()
	for _, args := range [][]any{
		{"OBJECT", "ENCODING", "k"}, {"object", "freq", "k"}, {"OBJECT", "IDLETIME", "k"}, {"OBJECT", "refcount", "k"},
		{"MEMORY", "USAGE", "k"}, {"MEMORY", "USAGE", "k", "SAMPLES", "5"},
	} {
		keys, err := rc.CommandGetKeys(ctx, args...).Result()
		require.NoError(t, err, "%v", args)
		assert.Equal(t, []string{"k"}, keys, "%v", args)
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"OBJECT", "BOGUS", "k"}, "ERR Invalid command specified"},
		{[]any{"MEMORY", "BOGUS", "k"}, "ERR Invalid command specified"},
		{[]any{"CLIENT", "BOGUS"}, "ERR Invalid command specified"},
		{[]any{"OBJECT", "ENCODING"}, "ERR Invalid number of arguments specified for command"},
		{[]any{"OBJECT", "ENCODING", "k", "x"}, "ERR Invalid number of arguments specified for command"},
		{[]any{"MEMORY", "USAGE"}, "ERR Invalid number of arguments specified for command"},
		{[]any{"OBJECT", "HELP"}, "ERR The command has no key arguments"},
		{[]any{"MEMORY", "DOCTOR"}, "ERR The command has no key arguments"},
		{[]any{"CONFIG", "GET", "x"}, "ERR The command has no key arguments"},
	} {
		err := rc.Do(ctx, append([]any{"COMMAND", "GETKEYS"}, tc.args...)...).Err()
		require.Error(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, err.Error(), "%v", tc.args)
	}
}

// Redis prints an argument into an error as a C string, up to its first
// NUL byte (checked against redis-server 7.0.15); kv used to send the NUL
// and the bytes after it.
func TestErrorsQuoteArgumentsUpToANUL(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"FOO", "a\x00bcd"}, "ERR unknown command 'FOO', with args beginning with: 'a' "},
		{[]any{"FO\x00OBAR", "x"}, "ERR unknown command 'FO', with args beginning with: 'x' "},
		{[]any{"FOO", "\x00\xff", strings.Repeat("y", 130)}, "ERR unknown command 'FOO', with args beginning with: '' '" + strings.Repeat("y", 125) + "' "},
		{[]any{"CLIENT", "XY\x00ZW", "q"}, "ERR unknown subcommand 'XY'. Try CLIENT HELP."},
		{[]any{"COMMAND", "XY\x00ZW"}, "ERR unknown subcommand 'XY'. Try COMMAND HELP."},
		{[]any{"HELLO", "2", "FO\x00O"}, "ERR Syntax error in HELLO option 'FO'"},
		{[]any{"CLIENT", "KILL", "TYPE", "ab\x00c"}, "ERR Unknown client type 'ab'"},
		{[]any{"CONFIG", "SET", "x\x00y", "1"}, "ERR Unknown option or number of arguments for CONFIG SET - 'x'"},
	} {
		assert.EqualError(t, rc.Do(ctx, tc.args...).Err(), tc.want, "%q", tc.args)
	}
}
