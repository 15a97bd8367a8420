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

// OBJECT answers as Redis 7.0.15 does (checked side by side), as far as
// kv has what it reports: a hash table counted once; FREQ in Redis's
// words for a server that does not evict, IDLETIME refused (kv keeps no
// access times); nil for a missing key before any of those; Redis's
// errors for a bad subcommand or arity.
func TestObject(t *testing.T) {
	inBothModes(t, func(t *testing.T, client, restart func() *redis.Client) {
		rc := client()
		ctx := context.Background()
		require.NoError(t, rc.HSet(ctx, "h", "a", "1").Err())
		for _, tc := range []struct {
			args []any
			want any    // a reply
			err  string // or an error
		}{
			{[]any{"OBJECT", "ENCODING", "h"}, "hashtable", ""},
			{[]any{"object", "refcount", "h"}, int64(1), ""},
			{[]any{"OBJECT", "FREQ", "h"}, nil, "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."},
			{[]any{"OBJECT", "IDLETIME", "h"}, nil, "ERR kv keeps no access times: OBJECT IDLETIME is not supported"},
			{[]any{"OBJECT", "ENCODING", "missing"}, redis.Nil, ""},
			{[]any{"OBJECT", "FREQ", "missing"}, redis.Nil, ""},
			{[]any{"OBJECT", "IDLETIME", "missing"}, redis.Nil, ""},
			{[]any{"OBJECT", "ENCODING"}, nil, "ERR wrong number of arguments for 'object|encoding' command"},
			{[]any{"OBJECT", "ENCODING", "h", "x"}, nil, "ERR wrong number of arguments for 'object|encoding' command"},
			{[]any{"OBJECT", "FOO", "h"}, nil, "ERR unknown subcommand 'FOO'. Try OBJECT HELP."},
		} {
			got, err := rc.Do(ctx, tc.args...).Result()
			switch {
			case tc.err != "":
				require.Error(t, err, "%v", tc.args)
				assert.Equal(t, tc.err, err.Error(), "%v", tc.args)
			case tc.want == redis.Nil:
				assert.Equal(t, redis.Nil, err, "%v", tc.args)
			default:
				require.NoError(t, err, "%v", tc.args)
				assert.Equal(t, tc.want, got, "%v", tc.args)
			}
		}
		help, err := rc.Do(ctx, "OBJECT", "HELP").StringSlice()
		require.NoError(t, err)
		assert.Contains(t, help, "ENCODING <key>")
	})
}

// INFO counts the error replies by code, as Redis 7.0.15 does (checked
// side by side): those of commands refused before they ran too, and
// CONFIG RESETSTAT starts them again.
func TestInfoErrorstats(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "h", "a", "1").Err())
	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	assert.Error(t, rc.Do(ctx, "NOSUCH").Err())
	assert.Error(t, rc.Get(ctx, "h").Err())
	assert.Error(t, rc.Do(ctx, "HGET", "h").Err())
	errorstats, err := rc.Info(ctx, "errorstats").Result()
	require.NoError(t, err)
	assert.Equal(t, "# Errorstats\r\nerrorstat_ERR:count=2\r\nerrorstat_WRONGTYPE:count=1\r\n", errorstats)
	assert.Contains(t, rc.Info(ctx, "stats").Val(), "\r\ntotal_error_replies:3\r\n")
	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	assert.Equal(t, "# Errorstats\r\n", rc.Info(ctx, "errorstats").Val())
	assert.Contains(t, rc.Info(ctx, "stats").Val(), "\r\ntotal_error_replies:0\r\n")
}

// CONFIG RESETSTAT starts INFO's counters of connections and of clients
// disconnected for being slow again from zero, as the README says: a
// client refused past maxclients, and the counts a slow subscriber and a
// slow monitor raise when they are disconnected (set here as their
// disconnection sets them: TestSlowMonitorIsDisconnected and the slow
// subscribers' tests show those). Before, only commandstats, the commands
// and the connections received were checked.
func TestConfigResetStatZeroesTheConnectionCounters(t *testing.T) {
	ts := start(t, Config{MaxClients: 1})
	r := ts.raw(t)
	refused := ts.raw(t)
	refused.expect("-ERR max number of clients reached")
	assert.True(t, refused.closed())
	ts.srv.kicked.Add(2)
	ts.srv.monitorsKicked.Add(3)
	stat := func(name string) string {
		t.Helper()
		r.send("INFO stats\r\n")
		require.Regexp(t, `^\$\d+$`, r.line())
		value := ""
		for {
			line := r.line()
			if line == "" {
				return value
			}
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				value = v
			}
		}
	}
	assert.Equal(t, "1", stat("rejected_connections"))
	assert.Equal(t, "2", stat("slow_subscribers_disconnected"))
	assert.Equal(t, "3", stat("slow_monitors_disconnected"))
	r.send("CONFIG RESETSTAT\r\n")
	r.expect("+OK")
	for _, name := range []string{"rejected_connections", "slow_subscribers_disconnected", "slow_monitors_disconnected", "total_connections_received"} {
		assert.Equal(t, "0", stat(name), name)
	}
}

// An EXEC refused before it ran (its arity, a client not logged in) is
// answered one error, EXECABORT with the reason, and Redis 7.0.15 counts
// it once, as EXECABORT (checked side by side): not also as the error it
// replaces, which the client never sees.
func TestInfoErrorstatsExecAbortCountsOnce(t *testing.T) {
	ts := start(t, Config{Password: "secret"})
	rc := ts.client(t, func(o *redis.Options) { o.Password = "secret" })
	ctx := context.Background()
	anon := ts.raw(t)
	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	anon.send("EXEC\r\n")
	anon.expect("-EXECABORT Transaction discarded because of: NOAUTH Authentication required.")
	err := rc.Do(ctx, "EXEC", "x").Err()
	require.Error(t, err)
	assert.Equal(t, "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command", err.Error())
	assert.Equal(t, "# Errorstats\r\nerrorstat_EXECABORT:count=2\r\n", rc.Info(ctx, "errorstats").Val())
	assert.Contains(t, rc.Info(ctx, "stats").Val(), "\r\ntotal_error_replies:2\r\n")
}

// INFO's sections come in Redis 7.0.15's order (checked side by side),
// those kv has: an empty Modules after CPU, Commandstats between it and
// Errorstats, Latencystats after that, before Cluster and Keyspace; and total_error_replies after rejected_connections, as in
// Redis's Stats. Scripts that split INFO by position, and readers that
// diff kv's INFO with Redis's, see the same layout.
func TestInfoSectionsInRedisOrder(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "h", "a", "1").Err())
	headers := func(text string) []string {
		var names []string
		for _, line := range strings.Split(text, "\r\n") {
			if name, ok := strings.CutPrefix(line, "# "); ok {
				names = append(names, name)
			}
		}
		return names
	}
	all := []string{"Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU", "Modules", "Commandstats", "Errorstats", "Latencystats", "Cluster", "Keyspace"}
	for _, args := range [][]string{{"everything"}, {"all"}, {"default", "commandstats", "latencystats"}} {
		text, err := rc.Info(ctx, args...).Result()
		require.NoError(t, err)
		assert.Equal(t, all, headers(text), "INFO %v", args)
	}
	text, err := rc.Info(ctx, "keyspace", "commandstats", "errorstats").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"Commandstats", "Errorstats", "Keyspace"}, headers(text))
	assert.Equal(t, "# Modules\r\n", rc.Info(ctx, "modules").Val(), "empty: kv loads no modules")
	assert.Equal(t, []string{"Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU", "Modules",
		"Errorstats", "Cluster", "Keyspace"}, headers(rc.Info(ctx).Val()), "the default sections")
	assert.Regexp(t, `\r\nrejected_connections:\d+\r\n(.*\r\n)*total_error_replies:\d+\r\n`, rc.Info(ctx, "stats").Val())
}

// A client in MONITOR mode may ask OBJECT HELP, which reads no key, but
// not OBJECT ENCODING (or REFCOUNT...), as Redis 7.0.15 answers (checked
// side by side): object|help has no readonly flag, the others have.
func TestObjectOfAMonitor(t *testing.T) {
	ts := start(t, Config{})
	require.NoError(t, ts.client(t).HSet(context.Background(), "h", "a", "1").Err())
	mon := ts.raw(t)
	monitorOf(mon)
	for _, sub := range []string{"ENCODING", "refcount", "FREQ", "IDLETIME"} {
		mon.send(resp("OBJECT", sub, "h"))
		mon.expect("-ERR Replica can't interact with the keyspace")
	}
	mon.send(resp("OBJECT", "help"))
	n, err := strconv.Atoi(strings.TrimPrefix(mon.line(), "*"))
	require.NoError(t, err)
	require.Positive(t, n)
	for range n {
		assert.True(t, strings.HasPrefix(mon.line(), "+"))
	}
	_, args := mon.shown()
	assert.Equal(t, `"OBJECT" "help"`, args)
}

// A protocol error is an error reply, counted as Redis 7.0.15 counts it
// (checked side by side): errorstat_ERR, before the client is closed.
func TestInfoErrorstatsCountsProtocolErrors(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	bad := ts.raw(t)
	bad.send("*1\r\n$abc\r\n")
	bad.expect("-ERR Protocol error: invalid bulk length")
	assert.True(t, bad.closed())
	assert.Equal(t, "# Errorstats\r\nerrorstat_ERR:count=1\r\n", rc.Info(ctx, "errorstats").Val())
	assert.Contains(t, rc.Info(ctx, "stats").Val(), "\r\ntotal_error_replies:1\r\n")
}

// Past maxErrorCodes distinct codes, a new code is counted in
// total_error_replies alone, and the codes already listed go on counting:
// the section cannot grow without bound.
func TestErrorStatsBoundsTheCodes(t *testing.T) {
	var e errorStats
	for i := range maxErrorCodes + 10 {
		e.count("CODE" + strconv.Itoa(i) + " message")
	}
	e.count("CODE0 again")
	total, lines := e.totals()
	assert.Equal(t, int64(maxErrorCodes+11), total)
	assert.Len(t, lines, maxErrorCodes)
	assert.Contains(t, lines, "errorstat_CODE0:count=2")
	assert.NotContains(t, lines, "errorstat_CODE"+strconv.Itoa(maxErrorCodes)+":count=1")
}

// A transaction's reply dropped for its length once the replies pass
// MaxReplyBytes (see execTx) is one error reply, counted once: also when
// the reply dropped was itself an error, never sent (OBJECT FREQ's, of
// 172 bytes). Each error the client reads is one in INFO, as in Redis.
func TestInfoErrorstatsCountsADroppedErrorOnce(t *testing.T) {
	ts := start(t, Config{MaxReplyBytes: 4 << 10})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.HSet(ctx, "h", "big", strings.Repeat("v", 1024)).Err())
	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	cmds, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for range 8 {
			p.HGet(ctx, "h", "big")
		}
		for range 3 {
			p.Do(ctx, "OBJECT", "FREQ", "h")
		}
		return nil
	})
	require.Error(t, err)
	errs := 0
	for _, cmd := range cmds {
		if cmd.Err() != nil {
			errs++
		}
	}
	require.EqualError(t, cmds[len(cmds)-1].Err(), "ERR reply too large: the transaction's replies already pass 4096 bytes")
	assert.Equal(t, "# Errorstats\r\nerrorstat_ERR:count="+strconv.Itoa(errs)+"\r\n", rc.Info(ctx, "errorstats").Val())
	assert.Contains(t, rc.Info(ctx, "stats").Val(), "\r\ntotal_error_replies:"+strconv.Itoa(errs)+"\r\n")
}
