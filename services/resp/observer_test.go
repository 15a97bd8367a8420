package resp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvproject/kv/internal/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recordingObserver struct {
	mu       sync.Mutex
	commands []string
	elapsed  []time.Duration
	failed   map[string]bool
	clients  int
}

func (o *recordingObserver) ObserveCommand(protocol, command string, elapsed time.Duration, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if protocol != Protocol || elapsed < 0 {
		panic("bad observation")
	}
	o.commands = append(o.commands, command)
	o.elapsed = append(o.elapsed, elapsed)
	if failed {
		o.failed[command] = true
	}
}

func (o *recordingObserver) ObserveClients(protocol string, delta int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clients += delta
}

func (o *recordingObserver) snapshot() ([]string, map[string]bool, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := map[string]bool{}
	for k, v := range o.failed {
		f[k] = v
	}
	return append([]string(nil), o.commands...), f, o.clients
}

func TestObserver(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	ts := start(t, Config{Observer: obs})
	r := ts.raw(t)
	r.send("HSET h f v\r\nhget h f\r\nHGET h\r\nNOSUCH\r\n")
	assert.Equal(t, ":1", r.line())
	assert.Equal(t, "$1", r.line())
	assert.Equal(t, "v", r.line())
	assert.Equal(t, "-ERR wrong number of arguments for 'hget' command", r.line())
	assert.Contains(t, r.line(), "ERR unknown command")
	cmds, failed, clients := obs.snapshot()
	assert.Equal(t, []string{"hset", "hget", "hget", "unknown"}, cmds)
	assert.Equal(t, map[string]bool{"hget": true, "unknown": true}, failed)
	assert.Equal(t, 1, clients)

	require.NoError(t, r.nc.Close())
	require.Eventually(t, func() bool { _, _, n := obs.snapshot(); return n == 0 }, 10*time.Second, time.Millisecond)
}

// A command's latency runs from its start (or the end of the command
// before it in a pipeline) to its end: never over the wait for the client.
func TestObserverLatencyExcludesTheWaitForRequests(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	ts := start(t, Config{Observer: obs})
	r := ts.raw(t)
	const idle = 300 * time.Millisecond
	r.send("PING\r\n")
	assert.Equal(t, "+PONG", r.line())
	time.Sleep(idle) // the client thinks: not the server's time
	r.send("PING\r\nPING\r\n")
	assert.Equal(t, "+PONG", r.line())
	assert.Equal(t, "+PONG", r.line())

	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.Len(t, obs.elapsed, 3)
	for i, d := range obs.elapsed {
		assert.Less(t, d, idle, "command %d", i)
	}
}

// INFO commandstats counts each command's calls, its time, and those
// refused before they ran (rejected) or answered with an error (failed),
// in Redis's format: with a durable store too, where a write is counted
// once it has settled, and for the commands an EXEC runs. It is not among
// INFO's default sections, as in Redis.
func TestInfoCommandstats(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	ds := startDurable(t, t.TempDir(), store.Options{}, func(c *Config) { c.Observer = obs })
	r := ds.raw(t)
	r.send("HSET h f v\r\nHGET h f\r\nHGET h\r\nHINCRBY h f 1\r\nMULTI\r\nHGET h f\r\nHSET h g w\r\nEXEC\r\n")
	r.expect(":1", "$1", "v", "-ERR wrong number of arguments for 'hget' command",
		"-ERR hash value is not an integer", "+OK", "+QUEUED", "+QUEUED", "*2", "$1", "v", ":1")

	stats := map[string]string{}
	info := ds.client(t).Info(context.Background(), "commandstats").Val()
	require.Contains(t, info, "# Commandstats\r\n")
	for _, line := range strings.Split(info, "\r\n") {
		if name, v, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(name, "cmdstat_") {
			stats[name] = v
		}
	}
	counts := func(name string) string {
		v, ok := stats["cmdstat_"+name]
		require.True(t, ok, "cmdstat_%s in %q", name, info)
		var calls, usec, rejected, failed int64
		var perCall float64
		_, err := fmt.Sscanf(v, "calls=%d,usec=%d,usec_per_call=%f,rejected_calls=%d,failed_calls=%d", &calls, &usec, &perCall, &rejected, &failed)
		require.NoError(t, err, v)
		assert.GreaterOrEqual(t, usec, int64(0))
		return fmt.Sprintf("calls=%d rejected=%d failed=%d", calls, rejected, failed)
	}
	assert.Equal(t, "calls=2 rejected=1 failed=0", counts("hget")) // as Redis: the refused one is not a call
	assert.Equal(t, "calls=2 rejected=0 failed=0", counts("hset"))
	assert.Equal(t, "calls=1 rejected=0 failed=1", counts("hincrby"))
	assert.Equal(t, "calls=1 rejected=0 failed=0", counts("exec"))

	rc := ds.client(t)
	assert.NotContains(t, rc.Info(context.Background()).Val(), "# Commandstats", "not a default section")
	assert.Contains(t, rc.Info(context.Background(), "all").Val(), "cmdstat_hget:")
	assert.Contains(t, rc.Info(context.Background(), "everything").Val(), "cmdstat_hget:")

	// CONFIG RESETSTAT starts the counts again: only itself, counted once
	// it has run, and the INFO after it.
	require.NoError(t, rc.ConfigResetStat(context.Background()).Err())
	info = rc.Info(context.Background(), "commandstats", "stats").Val()
	assert.NotContains(t, info, "cmdstat_hget:")
	assert.Contains(t, info, "cmdstat_config|resetstat:calls=1,")
	assert.Contains(t, info, "total_commands_processed:1\r\n", "the INFO itself")
	assert.Contains(t, info, "total_connections_received:0\r\n")
}

// cmdstats returns INFO commandstats's lines, by command.
func cmdstats(t *testing.T, info string) map[string]string {
	t.Helper()
	stats := map[string]string{}
	for _, line := range strings.Split(info, "\r\n") {
		if name, v, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(name, "cmdstat_") {
			stats[strings.TrimPrefix(name, "cmdstat_")] = v
		}
	}
	return stats
}

// As in Redis 7 (call() counts only what ran; rejectCommand counts the
// rest), a command refused before it ran counts in rejected_calls alone:
// not in calls nor in usec, and so a command only ever refused is listed
// with calls=0 and usec_per_call=0.00. A command refused as MULTI queues
// it (its arity) is rejected too, not failed. Redis 7.0.15, for the
// requests below: cmdstat_hget:calls=1,...,rejected_calls=3,failed_calls=0
// and cmdstat_hlen:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,
// failed_calls=0.
func TestInfoCommandstatsRejectedAsRedis(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	ts := start(t, Config{Observer: obs, Password: "pw"})
	r := ts.raw(t)
	r.send("HGET h f\r\nAUTH pw\r\nHGET h\r\nHLEN\r\nMULTI\r\nHGET h\r\nEXEC\r\nHGET h f\r\n")
	r.expect("-NOAUTH Authentication required.", "+OK",
		"-ERR wrong number of arguments for 'hget' command",
		"-ERR wrong number of arguments for 'hlen' command",
		"+OK", "-ERR wrong number of arguments for 'hget' command",
		"-EXECABORT Transaction discarded because of previous errors.", "$-1")
	r.send("INFO commandstats\r\n")
	r.line()
	var info strings.Builder
	for line := r.line(); line != ""; line = r.line() {
		info.WriteString(line + "\r\n")
	}
	stats := cmdstats(t, info.String())
	assert.Regexp(t, `^calls=1,usec=\d+,usec_per_call=[0-9.]+,rejected_calls=3,failed_calls=0$`, stats["hget"])
	assert.Equal(t, "calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0", stats["hlen"])
	assert.Regexp(t, `^calls=1,.*,rejected_calls=0,failed_calls=1$`, stats["exec"])
}

// total_commands_processed counts the commands that ran, as Redis's does:
// not one refused (its arity, an unknown name) nor one queued by MULTI
// until EXEC runs it (checked against Redis 7.0.15: 4).
func TestTotalCommandsProcessedCountsWhatRan(t *testing.T) {
	r := start(t, Config{}).raw(t)
	r.send("CONFIG RESETSTAT\r\nHGET h\r\nNOSUCH\r\nMULTI\r\nHGET h f\r\nEXEC\r\nINFO stats\r\n")
	r.expect("+OK")
	r.line() // HGET h: wrong number of arguments
	r.line() // NOSUCH: unknown command
	r.expect("+OK", "+QUEUED", "*1", "$-1")
	r.line() // the INFO's length
	var total string
	for {
		line := r.line()
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			total = v
		}
		if line == "" {
			break
		}
	}
	assert.Equal(t, "4", total, "MULTI, EXEC, the HGET it ran, and the INFO")
}

// usec_per_call is usec over calls, and CONFIG RESETSTAT clears every
// count of a command: a command only failed is no longer listed, and the
// time of the calls before it is not kept.
func TestResetStatClearsEveryCount(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	rc := start(t, Config{Observer: obs}).client(t)
	ctx := context.Background()
	stat := func(name string) (calls, usec int64, perCall float64, listed bool) {
		t.Helper()
		v, ok := cmdstats(t, rc.Info(ctx, "commandstats").Val())[name]
		if !ok {
			return 0, 0, 0, false
		}
		var rejected, failed int64
		_, err := fmt.Sscanf(v, "calls=%d,usec=%d,usec_per_call=%f,rejected_calls=%d,failed_calls=%d", &calls, &usec, &perCall, &rejected, &failed)
		require.NoError(t, err, v)
		return calls, usec, perCall, true
	}
	big := []any{"HSET", "big"}
	for i := range 50000 {
		big = append(big, fmt.Sprintf("f%d", i), "v")
	}
	for range 3 { // each takes milliseconds
		require.NoError(t, rc.Do(ctx, big...).Err())
	}
	calls, usec, perCall, listed := stat("hset")
	require.True(t, listed)
	require.Equal(t, int64(3), calls)
	require.Positive(t, usec)
	assert.InDelta(t, float64(usec)/float64(calls), perCall, 0.01)

	require.NoError(t, rc.HSet(ctx, "h", "f", "x").Err())
	require.Error(t, rc.HIncrBy(ctx, "h", "f", 1).Err())
	_, _, _, listed = stat("hincrby")
	require.True(t, listed)

	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	_, _, _, listed = stat("hincrby")
	assert.False(t, listed, "its failed call is forgotten too")
	require.NoError(t, rc.HSet(ctx, "h", "g", "y").Err())
	calls, after, _, _ := stat("hset")
	assert.Equal(t, int64(1), calls)
	assert.Less(t, after, usec, "the time of the calls before RESETSTAT is forgotten")
}

// A subcommand counts under its own name, as Redis 7 counts it (checked
// against redis-server 7.0.15): CLIENT ID as client|id, its arity error
// too; CLIENT alone, refused for its arity, under client; an unknown
// subcommand nowhere. LATENCY HISTOGRAM names them alike.
func TestCommandstatsSubcommands(t *testing.T) {
	ctx := context.Background()
	rc := start(t, Config{Observer: discardObserver{}}).client(t)
	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	require.NoError(t, rc.ClientID(ctx).Err())
	require.NoError(t, rc.ClientID(ctx).Err())
	require.NoError(t, rc.ConfigGet(ctx, "maxclients").Err())
	require.Error(t, rc.Do(ctx, "CONFIG", "BOGUS").Err())
	require.Error(t, rc.Do(ctx, "CLIENT").Err())
	require.Error(t, rc.Do(ctx, "CLIENT", "ID", "x").Err())
	stats := cmdstats(t, rc.Info(ctx, "commandstats").Val())
	counts := map[string]string{}
	for name, v := range stats {
		var calls, usec, rejected, failed int64
		var perCall float64
		_, err := fmt.Sscanf(v, "calls=%d,usec=%d,usec_per_call=%f,rejected_calls=%d,failed_calls=%d", &calls, &usec, &perCall, &rejected, &failed)
		require.NoError(t, err, v)
		counts[name] = fmt.Sprintf("calls=%d rejected=%d failed=%d", calls, rejected, failed)
	}
	assert.Equal(t, map[string]string{
		"config|resetstat": "calls=1 rejected=0 failed=0",
		"client|id":        "calls=2 rejected=1 failed=0",
		"config|get":       "calls=1 rejected=0 failed=0",
		"client":           "calls=0 rejected=1 failed=0",
	}, counts)

	for _, names := range [][]any{{"client"}, {"CLIENT|ID"}, {"client|id", "client"}} {
		got, err := rc.Do(ctx, append([]any{"LATENCY", "HISTOGRAM"}, names...)...).Slice()
		require.NoError(t, err)
		require.Len(t, got, 2, "%v", names)
		assert.Equal(t, "client|id", got[0], "%v", names)
	}
	got, err := rc.Do(ctx, "LATENCY", "HISTOGRAM", "config", "client|nosuch", "nosuch|id").Slice()
	require.NoError(t, err)
	require.Len(t, got, 4)
	assert.Equal(t, []any{"config|get", "config|resetstat"}, []any{got[0], got[2]})
}

// DEBUG on a server that does not enable it is refused before it runs,
// as Redis refuses a protected command: counted as rejected, and in MULTI
// refused as it is queued, which aborts the transaction (checked against
// redis-server 7.0.15 with enable-debug-command no).
func TestDebugOffIsRejected(t *testing.T) {
	ts := start(t, Config{Observer: discardObserver{}})
	r := ts.raw(t)
	r.send("MULTI\r\nDEBUG CRASH-BUCKET h\r\nEXEC\r\nDEBUG CRASH-BUCKET h\r\nDEBUG\r\n")
	r.expect("+OK", "-"+errDebugOff, "-EXECABORT Transaction discarded because of previous errors.",
		"-"+errDebugOff, "-ERR wrong number of arguments for 'debug' command")
	stats := cmdstats(t, ts.client(t).Info(context.Background(), "commandstats").Val())
	assert.True(t, strings.HasPrefix(stats["debug"], "calls=0,usec=0,usec_per_call=0.00,rejected_calls=3,failed_calls=0"), stats["debug"])
}
