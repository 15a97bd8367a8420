package resp

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kvproject/kv/bucket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// CONFIG SET refuses as Redis 7.0.15 does, in its words (checked side by
// side), and a refused CONFIG SET changes nothing, not even the pairs
// before the bad one.
func TestConfigSetErrors(t *testing.T) {
	ts := start(t, Config{Observer: &recordingObserver{failed: map[string]bool{}}, SlowlogMaxLen: 9})
	rc := ts.client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"foo", "bar"}, "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"},
		{[]any{"slowlog-max-len", "abc"}, "ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument couldn't be parsed into an integer"},
		{[]any{"slowlog-max-len", "-5"}, "ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument must be between 0 and 9223372036854775807 inclusive"},
		{[]any{"maxclients", "0"}, "ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be between 1 and 4294967295 inclusive"},
		{[]any{"slowlog-log-slower-than", "-2"}, "ERR CONFIG SET failed (possibly related to argument 'slowlog-log-slower-than') - argument must be between -1 and 9223372036854775807 inclusive"},
		{[]any{"slowlog-max-len", "5", "slowlog-max-len", "6"}, "ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - duplicate parameter"},
		{[]any{"slowlog-max-len", "5", "foo"}, "ERR syntax error"},
		{[]any{"slowlog-max-len"}, "ERR wrong number of arguments for 'config|set' command"},
		// All or nothing: the first pair was good.
		{[]any{"slowlog-max-len", "5", "port", "1"}, "ERR CONFIG SET failed (possibly related to argument 'port') - kv cannot change it while it runs (it is \"" + portOf(t, ts.addr) + "\")"},
		{[]any{"maxclients", "7", "appendonly", "yes"}, "ERR CONFIG SET failed (possibly related to argument 'appendonly') - kv cannot change it while it runs (it is \"no\")"},
	} {
		requireConfigSetError(t, rc, tc.args, tc.want)
	}
	params, err := rc.ConfigGet(ctx, "*").Result()
	require.NoError(t, err)
	assert.Equal(t, "9", params["slowlog-max-len"], "unchanged")
	assert.Equal(t, "10000", params["maxclients"], "unchanged")

	// A fixed parameter may be set to the value it has: a client that
	// turns off Redis's snapshots is answered OK. Names are matched
	// without regard to case.
	require.NoError(t, rc.ConfigSet(ctx, "save", "").Err())
	require.NoError(t, rc.Do(ctx, "CONFIG", "SET", "MAXMEMORY-POLICY", "noeviction", "SLOWLOG-MAX-LEN", "4").Err())
	assert.Equal(t, map[string]string{"slowlog-max-len": "4"}, rc.ConfigGet(ctx, "slowlog-max-len").Val())
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return port
}

// The slow log follows CONFIG SET at once: its threshold, and its length,
// the newest entries kept when it shrinks, in order when it grows again
// after its ring has wrapped.
func TestConfigSetSlowlog(t *testing.T) {
	ts := start(t, Config{Observer: &recordingObserver{failed: map[string]bool{}}, SlowlogSlowerThan: time.Hour, SlowlogMaxLen: 4})
	rc := ts.client(t)
	ctx := context.Background()
	echo := func(n int) {
		for i := range n {
			require.NoError(t, rc.Echo(ctx, strconv.Itoa(i)).Err())
		}
	}
	echo(3)
	assert.Empty(t, rc.SlowLogGet(ctx, -1).Val(), "nothing takes an hour")

	require.NoError(t, rc.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err())
	echo(6) // the ring of 4 wraps
	ids := func() []int64 {
		logged, err := rc.SlowLogGet(ctx, -1).Result()
		require.NoError(t, err)
		var out []int64
		for _, e := range logged {
			out = append(out, e.ID)
		}
		return out
	}
	before := ids()
	require.Len(t, before, 4)
	newest := before[0]
	for i := 1; i < 4; i++ {
		assert.Equal(t, before[i-1]-1, before[i], "newest first, none missing: %v", before)
	}

	require.NoError(t, rc.ConfigSet(ctx, "slowlog-max-len", "2").Err())
	// The CONFIG SET and the SLOWLOG GET before this one are logged too.
	got := ids()
	require.Len(t, got, 2)
	assert.Equal(t, []int64{newest + 2, newest + 1}, got, "the newest kept")

	require.NoError(t, rc.ConfigSet(ctx, "slowlog-max-len", "6").Err())
	echo(3) // with the two kept, the GET and the CONFIG SET: 7 for 6 places
	got = ids()
	require.Len(t, got, 6)
	for i := 1; i < 6; i++ {
		assert.Equal(t, got[i-1]-1, got[i], "newest first, none missing: %v", got)
	}

	require.NoError(t, rc.ConfigSet(ctx, "slowlog-log-slower-than", "-1").Err())
	last := ids()[0]
	echo(3)
	assert.Equal(t, last, ids()[0], "-1: nothing more is kept")
	assert.Equal(t, map[string]string{"slowlog-log-slower-than": "-1", "slowlog-max-len": "6"}, rc.ConfigGet(ctx, "slowlog*").Val())
}

// A lower maxclients refuses the next client and disconnects none; a
// higher one lets clients in again.
func TestConfigSetMaxClients(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	admin := ts.client(t, func(o *redis.Options) { o.PoolSize = 1 })
	other := ts.raw(t)
	other.send("PING\r\n")
	other.expect("+PONG")
	require.NoError(t, admin.ConfigSet(ctx, "maxclients", "2").Err())

	refused := ts.raw(t)
	refused.expect("-ERR max number of clients reached")
	other.send("PING\r\n")
	other.expect("+PONG") // still served
	assert.Equal(t, map[string]string{"maxclients": "2"}, admin.ConfigGet(ctx, "maxclients").Val())

	require.NoError(t, admin.ConfigSet(ctx, "maxclients", "3").Err())
	third := ts.raw(t)
	third.send("PING\r\n")
	third.expect("+PONG")
}

// A shorter slowlog-max-len trims the log at once, as Redis 7 does (it
// trims after every command while the log is on: the CONFIG SET's own),
// and 0 empties it; while the log is off (-1) Redis trims nothing, and
// turning it on again trims. Checked side by side with Redis 7.0.15.
func TestConfigSetSlowlogTrimsAtOnce(t *testing.T) {
	ts := start(t, Config{Observer: &recordingObserver{failed: map[string]bool{}}, SlowlogSlowerThan: time.Nanosecond, SlowlogMaxLen: 10})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.Ping(ctx).Err()) // the client's own commands at connecting
	require.NoError(t, rc.SlowLogReset(ctx).Err())
	for i := range 5 {
		require.NoError(t, rc.Echo(ctx, strconv.Itoa(i)).Err())
	}
	require.NoError(t, rc.ConfigSet(ctx, "slowlog-log-slower-than", "100000000").Err()) // 100 s: nothing more logged
	require.Equal(t, int64(6), rc.SlowLogLen(ctx).Val())

	require.NoError(t, rc.ConfigSet(ctx, "slowlog-max-len", "2").Err())
	assert.Equal(t, int64(2), rc.SlowLogLen(ctx).Val(), "trimmed at the CONFIG SET")
	got := rc.SlowLogGet(ctx, -1).Val()
	require.Len(t, got, 2)
	assert.Equal(t, []string{"echo", "4"}, got[0].Args, "the newest kept")
	assert.Equal(t, []string{"echo", "3"}, got[1].Args)

	require.NoError(t, rc.ConfigSet(ctx, "slowlog-max-len", "0").Err())
	assert.Equal(t, int64(0), rc.SlowLogLen(ctx).Val(), "0 empties the log")
	assert.Empty(t, rc.SlowLogGet(ctx, -1).Val())

	// Off, the log is not trimmed; on again, it is.
	require.NoError(t, rc.Do(ctx, "CONFIG", "SET", "slowlog-log-slower-than", "0", "slowlog-max-len", "10").Err())
	for i := range 3 {
		require.NoError(t, rc.Echo(ctx, strconv.Itoa(i)).Err())
	}
	require.NoError(t, rc.ConfigSet(ctx, "slowlog-log-slower-than", "-1").Err())
	require.NoError(t, rc.ConfigSet(ctx, "slowlog-max-len", "1").Err())
	assert.Equal(t, int64(4), rc.SlowLogLen(ctx).Val(), "off: as it was")
	require.NoError(t, rc.ConfigSet(ctx, "slowlog-log-slower-than", "100000000").Err())
	assert.Equal(t, int64(1), rc.SlowLogLen(ctx).Val(), "on again: trimmed")
	assert.Equal(t, []string{"echo", "2"}, rc.SlowLogGet(ctx, -1).Val()[0].Args)
}

// CONFIG GET reports the slowlog-log-slower-than that CONFIG SET was
// given, to the top of its range, as Redis does: microseconds past 292
// years do not fit a time.Duration, and were reported as 9223372036854775.
func TestConfigSetSlowerThanRoundTrips(t *testing.T) {
	ts := start(t, Config{Observer: &recordingObserver{failed: map[string]bool{}}, SlowlogSlowerThan: time.Nanosecond})
	rc := ts.client(t)
	ctx := context.Background()
	for _, v := range []string{"9223372036854775", "9223372036854776", "1000000000000000000", "9223372036854775807", "-1", "0", "1"} {
		require.NoError(t, rc.ConfigSet(ctx, "slowlog-log-slower-than", v).Err(), v)
		assert.Equal(t, map[string]string{"slowlog-log-slower-than": v}, rc.ConfigGet(ctx, "slowlog-log-slower-than").Val(), v)
	}
	require.NoError(t, rc.ConfigSet(ctx, "slowlog-log-slower-than", "9223372036854775807").Err())
	require.NoError(t, rc.SlowLogReset(ctx).Err())
	require.NoError(t, rc.Echo(ctx, "x").Err())
	assert.Equal(t, int64(0), rc.SlowLogLen(ctx).Val(), "nothing takes that long")
}

// As Redis 7.0.15 (checked side by side), CONFIG SET looks at every name
// before any value: an unknown or repeated name later in the command is
// the error, not an earlier bad value; the repeated name is quoted as the
// client spelt it.
func TestConfigSetNamesBeforeValues(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"slowlog-max-len", "abc", "foo", "bar"}, "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"},
		{[]any{"maxclients", "0", "maxclients", "5"}, "ERR CONFIG SET failed (possibly related to argument 'maxclients') - duplicate parameter"},
		{[]any{"SLOWLOG-MAX-LEN", "5", "Slowlog-Max-Len", "6"}, "ERR CONFIG SET failed (possibly related to argument 'Slowlog-Max-Len') - duplicate parameter"},
		{[]any{"port", "1", "foo", "bar"}, "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"},
		{[]any{"SLOWLOG-MAX-LEN", "x"}, "ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument couldn't be parsed into an integer"},
	} {
		requireConfigSetError(t, rc, tc.args, tc.want)
	}
}

// A fixed parameter "set" to the value it has is answered OK when the
// value is spelt as Redis 7 reads it: yes/no and a policy without regard
// to case, a size with a unit (checked side by side with Redis 7.0.15).
func TestConfigSetFixedAsRedisReads(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()
	for _, args := range [][]any{
		{"appendonly", "NO"},
		{"maxmemory-policy", "NoEviction"},
		{"maxmemory", "0mb"},
		{"maxmemory", "0GB"},
		{"proto-max-bulk-len", "16mb"},
		{"proto-max-bulk-len", "16384KB"},
	} {
		assert.NoError(t, rc.Do(ctx, append([]any{"CONFIG", "SET"}, args...)...).Err(), "%v", args)
	}
	for _, args := range [][]any{
		{"appendonly", "yes"},
		{"maxmemory", "1"},
		{"maxmemory", "-0"},
		{"maxmemory", "0xb"},
		{"proto-max-bulk-len", "16m"}, // 16000000
	} {
		assert.Error(t, rc.Do(ctx, append([]any{"CONFIG", "SET"}, args...)...).Err(), "%v", args)
	}
}

// A longer slow log after its ring has wrapped, with no shorter one in
// between, keeps its entries newest first, none lost; INFO reports a
// maxclients CONFIG SET changed.
func TestConfigSetSlowlogGrowsAfterWrap(t *testing.T) {
	ts := start(t, Config{Observer: &recordingObserver{failed: map[string]bool{}}, SlowlogSlowerThan: time.Nanosecond, SlowlogMaxLen: 4})
	rc := ts.client(t)
	ctx := context.Background()
	require.NoError(t, rc.Ping(ctx).Err())
	for i := range 6 { // the ring of 4 wraps
		require.NoError(t, rc.Echo(ctx, strconv.Itoa(i)).Err())
	}
	require.NoError(t, rc.ConfigSet(ctx, "slowlog-max-len", "7").Err())
	require.NoError(t, rc.Echo(ctx, "6").Err())
	var args [][]string
	for _, e := range rc.SlowLogGet(ctx, -1).Val() {
		args = append(args, e.Args)
	}
	assert.Equal(t, [][]string{
		{"echo", "6"}, {"config", "set", "slowlog-max-len", "7"},
		{"echo", "5"}, {"echo", "4"}, {"echo", "3"}, {"echo", "2"},
	}, args)

	require.NoError(t, rc.ConfigSet(ctx, "maxclients", "17").Err())
	assert.Contains(t, rc.Info(ctx, "clients").Val(), "maxclients:17\r\n")
}

// CONFIG SET maxclients stops at Config.MaxClientsCeiling (what the
// daemon's open-file limit leaves), in Redis's words.
func TestConfigSetMaxClientsCeiling(t *testing.T) {
	ts := start(t, Config{MaxClients: 3, MaxClientsCeiling: 5})
	rc := ts.client(t)
	ctx := context.Background()
	err := rc.ConfigSet(ctx, "maxclients", "6").Err()
	require.Error(t, err)
	assert.Equal(t, "ERR CONFIG SET failed (possibly related to argument 'maxclients') - "+
		"The operating system is not able to handle the specified number of clients, try with 5", err.Error())
	assert.Equal(t, map[string]string{"maxclients": "3"}, rc.ConfigGet(ctx, "maxclients").Val())
	require.NoError(t, rc.ConfigSet(ctx, "maxclients", "5").Err())
	assert.Equal(t, map[string]string{"maxclients": "5"}, rc.ConfigGet(ctx, "maxclients").Val())
}

// requireConfigSetError requires CONFIG SET args to fail with want.
func requireConfigSetError(t *testing.T, rc *redis.Client, args []any, want string) {
	t.Helper()
	err := rc.Do(context.Background(), append([]any{"CONFIG", "SET"}, args...)...).Err()
	require.Error(t, err, "%v", args)
	assert.Equal(t, want, err.Error(), "%v", args)
}

// CONFIG SET timeout applies to the clients connected already, on the
// event loop and on goroutines of their own: a shorter timeout closes a
// client idle for longer, a subscriber is never closed for idling (even
// when a later CONFIG SET wakes it after it has idled past the timeout),
// and 0 keeps every client.
func TestConfigSetTimeout(t *testing.T) {
	for _, mode := range []struct {
		name      string
		perClient bool
	}{{"event loop", false}, {"goroutine per client", true}} {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{IdleTimeout: time.Hour, GoroutinePerClient: mode.perClient})
			sub := ts.raw(t)
			sub.send(resp("SUBSCRIBE", "kv:created"))
			sub.expect("*3", "$9", "subscribe", "$10", "kv:created", ":1")
			idle := ts.raw(t)
			idle.send("PING\r\n")
			idle.expect("+PONG")
			set := func(secs string) {
				admin := ts.raw(t)
				admin.send(resp("CONFIG", "SET", "timeout", secs))
				admin.expect("+OK")
			}
			set("1")
			require.True(t, idle.closedWithin(10*time.Second), "an hour's deadline gives way to a second's")
			set("1") // wakes the subscriber, idle for over a second now
			set("0")
			kept := ts.raw(t)
			kept.send("PING\r\n")
			kept.expect("+PONG")
			require.False(t, kept.closedWithin(2500*time.Millisecond), "timeout 0: no client is closed for idling")
			kept.send("PING\r\n")
			kept.expect("+PONG")
			sub.send("PING\r\n")
			sub.expect("*2", "$4", "pong", "$0", "")
			kept.send(resp("CONFIG", "GET", "timeout"))
			kept.expect("*2", "$7", "timeout", "$1", "0")
		})
	}
}

// A client on a goroutine of its own whose command outlasts the timeout
// that CONFIG SET sets meanwhile is not idle when its reply goes out: its
// idle time counts from then, not from the read of the command (the wake
// that CONFIG SET gave it must not close it at once).
func TestConfigSetTimeoutLongCommand(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ts := start(t, Config{IdleTimeout: time.Hour, GoroutinePerClient: true,
		testHookLive: func(b *bucket.Bucket) {
			if b.Name() == "slow" {
				once.Do(func() { close(entered); <-release })
			}
		}})
	require.NoError(t, ts.client(t).HSet(context.Background(), "slow", "f", "v").Err())
	long := ts.raw(t)
	long.send("HGET slow f\r\n")
	<-entered
	admin := ts.raw(t)
	// Two seconds: from its reply, the client reads it, waits 500 ms
	// (below) and sends its PING, all within the timeout; with a second,
	// a loaded machine had 500 ms for what is not the wait.
	admin.send(resp("CONFIG", "SET", "timeout", "2"))
	admin.expect("+OK")
	// Connected after the command was read: once it idles out, the
	// command has run for longer than the timeout.
	require.True(t, ts.raw(t).closedWithin(20*time.Second))
	close(release)
	long.expect("$1", "v")
	require.False(t, long.closedWithin(500*time.Millisecond), "closed as its reply went out, idle for no time")
	long.send("PING\r\n")
	long.expect("+PONG")
}

// CONFIG GET names a parameter as the argument that first selected it
// spelled it, as Redis 7.0 does: a name in another case comes back in
// that case, a pattern gives the parameter's own name, and a parameter
// selected twice is reported once. The replies were redis-server
// 7.0.15's; before, kv always answered with the lower-case name.
func TestConfigGetEchoesTheNameAsSpelled(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	rc := ts.client(t)
	for _, tc := range []struct {
		args []any
		want map[string]string
	}{
		{[]any{"MAXMEMORY"}, map[string]string{"MAXMEMORY": "0"}},
		{[]any{"Maxmemory-Policy"}, map[string]string{"Maxmemory-Policy": "noeviction"}},
		{[]any{"MAXMEMORY", "maxmemory"}, map[string]string{"MAXMEMORY": "0"}},
		{[]any{"maxmemory", "MAXMEMORY"}, map[string]string{"maxmemory": "0"}},
		{[]any{"MAXMEMORY", "maxmemory*"}, map[string]string{"MAXMEMORY": "0", "maxmemory-policy": "noeviction"}},
		{[]any{"maxmemory*", "MAXMEMORY"}, map[string]string{"maxmemory": "0", "maxmemory-policy": "noeviction"}},
		{[]any{"MAXMEMORY-P*"}, map[string]string{"maxmemory-policy": "noeviction"}},
		{[]any{"SAVE", "Save"}, map[string]string{"SAVE": ""}},
		{[]any{`max\memory`}, map[string]string{}}, // no pattern: the name of no parameter
	} {
		v, err := rc.Do(ctx, append([]any{"CONFIG", "GET"}, tc.args...)...).Slice()
		require.NoError(t, err, "%v", tc.args)
		got := map[string]string{}
		for i := 0; i+1 < len(v); i += 2 {
			got[v[i].(string)] = v[i+1].(string)
		}
		assert.Len(t, v, 2*len(tc.want), "%v: once each", tc.args)
		assert.Equal(t, tc.want, got, "%v", tc.args)
	}
}
