package resp

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/store"
)

// MULTI queues, EXEC runs the queue in order and answers with every
// reply (a command that fails as it runs has its error there, and the
// others run), DISCARD drops it; misuse gets Redis's errors.
func TestMultiExecDiscard(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			r := ts.raw(t)
			exchange := func(cmd string, want ...string) {
				t.Helper()
				r.send(cmd + "\r\n")
				for _, w := range want {
					require.Equal(t, w, r.line(), cmd)
				}
			}
			exchange("EXEC", "-ERR EXEC without MULTI")
			exchange("DISCARD", "-ERR DISCARD without MULTI")

			exchange("MULTI", "+OK")
			exchange("MULTI", "-ERR MULTI calls can not be nested")
			exchange("HSET h f 1 s text", "+QUEUED")
			exchange("HINCRBY h f 41", "+QUEUED")
			exchange("HINCRBY h s 1", "+QUEUED") // fails as it runs
			exchange("HGET h f", "+QUEUED")
			exchange("EXEC", "*4", ":2", ":42", "-ERR hash value is not an integer", "$2", "42")

			exchange("MULTI", "+OK")
			exchange("HSET h f 0", "+QUEUED")
			exchange("DISCARD", "+OK")
			exchange("HGET h f", "$2", "42")

			// A command refused as it is queued discards the transaction.
			exchange("MULTI", "+OK")
			exchange("HSET h f 0", "+QUEUED")
			exchange("HGET h", "-ERR wrong number of arguments for 'hget' command")
			exchange("NOSUCH x", "-ERR unknown command 'NOSUCH', with args beginning with: 'x' ")
			exchange("SUBSCRIBE kv:created", "-ERR Command not allowed inside a transaction")
			exchange("EXEC", "-EXECABORT Transaction discarded because of previous errors.")
			exchange("HGET h f", "$2", "42")

			// So are the other commands that take their client off the
			// event loop. Redis refuses SAVE and SHUTDOWN as they are
			// queued too, but queues SUBSCRIBE, PSUBSCRIBE and MONITOR
			// (checked against redis-server 7.0.15): a departure the
			// README states.
			for _, cmd := range []string{"SUBSCRIBE kv:created", "PSUBSCRIBE kv:*", "MONITOR", "SAVE", "SHUTDOWN NOSAVE"} {
				exchange("MULTI", "+OK")
				exchange("HSET h f 0", "+QUEUED")
				exchange(cmd, "-ERR Command not allowed inside a transaction")
				exchange("EXEC", "-EXECABORT Transaction discarded because of previous errors.")
			}
			exchange("HGET h f", "$2", "42")

			// A transaction command with arguments is refused, and, as in
			// Redis, aborts the transaction.
			exchange("MULTI", "+OK")
			exchange("HSET h f 0", "+QUEUED")
			exchange("DISCARD now", "-ERR wrong number of arguments for 'discard' command")
			exchange("EXEC", "-EXECABORT Transaction discarded because of previous errors.")
			exchange("HGET h f", "$2", "42")

			// CLIENT LIST shows a client in a transaction, as Redis does.
			exchange("CLIENT ID")
			id := strings.TrimPrefix(r.line(), ":")
			inList := func() map[string]string {
				list, err := ts.client(t).ClientList(context.Background()).Result()
				require.NoError(t, err)
				return clientLines(t, list)[id]
			}
			assert.Equal(t, "-1", inList()["multi"])
			exchange("MULTI", "+OK")
			exchange("HSET h f 0", "+QUEUED")
			exchange("HSET h f 1", "+QUEUED")
			assert.Equal(t, "2", inList()["multi"])
			assert.Equal(t, "x", inList()["flags"])
			exchange("DISCARD", "+OK")
			assert.Equal(t, "-1", inList()["multi"])

			// Inside EXEC, the client is still in its transaction, as in
			// Redis: CLIENT INFO run by EXEC says so.
			exchange("MULTI", "+OK")
			exchange("HSET h f 42", "+QUEUED")
			exchange("CLIENT INFO", "+QUEUED")
			exchange("EXEC", "*2", ":0")
			require.Regexp(t, `^\$\d+$`, r.line())
			info := r.line()
			assert.Contains(t, info, " flags=x ")
			assert.Contains(t, info, " multi=2 ")
			r.line() // the bulk's end
			assert.Equal(t, "-1", inList()["multi"])

			// RESET leaves the transaction; an empty one answers an empty array.
			exchange("MULTI", "+OK")
			exchange("HSET h f 0", "+QUEUED")
			exchange("RESET", "+RESET")
			exchange("EXEC", "-ERR EXEC without MULTI")
			exchange("MULTI", "+OK")
			exchange("EXEC", "*0")
			exchange("HGET h f", "$2", "42")
		})
	}
}

// An EXEC that Redis refuses before running it (wrong number of
// arguments, not authenticated) discards the transaction there and then,
// with EXECABORT and the reason, as Redis 7 answers (rejectCommand calls
// execCommandAbort): the commands sent next run, they are not queued for
// an EXEC that will never come.
func TestRejectedExecDiscardsTransaction(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, Password: "pw"})
			r := ts.raw(t)
			r.send("EXEC\r\n")
			r.expect("-EXECABORT Transaction discarded because of: NOAUTH Authentication required.")
			r.send("AUTH pw\r\nEXEC now\r\n")
			r.expect("+OK", "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command")

			r.send("MULTI\r\nHSET h f 1\r\nEXEC now\r\n")
			r.expect("+OK", "+QUEUED", "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command")
			r.send("HSET h f 2\r\nHGET h f\r\nEXEC\r\n")
			r.expect(":1", "$1", "2", "-ERR EXEC without MULTI")
			assert.Equal(t, "-1", clientLines(t, ts.client(t, func(o *redis.Options) { o.Password = "pw" }).
				ClientList(context.Background()).Val())[clientID(t, r)]["multi"], "out of the transaction")
		})
	}
}

// clientID returns the id of r's client (CLIENT ID).
func clientID(t *testing.T, r *raw) string {
	t.Helper()
	r.send("CLIENT ID\r\n")
	return strings.TrimPrefix(r.line(), ":")
}

// go-redis's TxPipelined and redis-py's default pipeline() send MULTI,
// the commands and EXEC, and read the replies of the commands from EXEC's
// array: before kv had MULTI, each command ran on its own, and the library
// then reported the whole pipeline failed (a retry ran it twice).
func TestTxPipelined(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			rc := ts.client(t)
			ctx := context.Background()
			var incr *redis.IntCmd
			var get *redis.StringCmd
			_, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, "cart", "apples", 3)
				incr = p.HIncrBy(ctx, "cart", "apples", 2)
				get = p.HGet(ctx, "cart", "apples")
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, int64(5), incr.Val())
			assert.Equal(t, "5", get.Val())

			// A refused command: nothing runs, and the client is told.
			_, err = rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HIncrBy(ctx, "cart", "apples", 1)
				p.Do(ctx, "HGET", "cart") // wrong arity
				return nil
			})
			require.Error(t, err)
			assert.True(t, strings.Contains(err.Error(), "EXECABORT") || strings.Contains(err.Error(), "wrong number of arguments"), err.Error())
			assert.Equal(t, "5", rc.HGet(ctx, "cart", "apples").Val(), "nothing of a discarded transaction ran")
			assert.Equal(t, "PONG", rc.Ping(ctx).Val(), "the connection carries on")
		})
	}
}

// EXEC's writes to a durable store are on disk when it answers, and a
// write of the transaction that fails there has its error among EXEC's
// replies, in its place, while the others stand.
func TestDurableExec(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	faults := &store.Faults{}
	ds := startDurable(t, dir, faultyAlways(faults))
	rc := ds.client(t)
	cmds, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, "a", "f", "1")
		p.HSet(ctx, "b", "f", "2")
		p.HIncrBy(ctx, "a", "n", 5)
		return nil
	})
	require.NoError(t, err)
	require.Len(t, cmds, 3)
	ds.stop()

	ds = startDurable(t, dir, faultyAlways(faults))
	rc = ds.client(t)
	assert.Equal(t, map[string]string{"f": "1", "n": "5"}, rc.HGetAll(ctx, "a").Val())
	assert.Equal(t, map[string]string{"f": "2"}, rc.HGetAll(ctx, "b").Val())

	r := ds.raw(t)
	r.send("MULTI\r\nHGET a f\r\n")
	r.expect("+OK", "+QUEUED")
	faults.FailSyncs(syscall.EIO)
	r.send("HSET a g 1\r\nEXEC\r\n")
	r.expect("+QUEUED", "*2", "$1", "1")
	assert.Contains(t, r.line(), "write failed", "the failed write's reply is its error")
	faults.Clear()
	require.Eventually(t, func() bool { return rc.Ping(ctx).Err() == nil }, 10*time.Second, time.Millisecond)
	assert.NotEqual(t, "1", rc.HGet(ctx, "a", "g").Val(), "the failed write is not visible")
}

// No command of another client runs between a transaction's: a reader
// sees a counter that transactions raise by 500 only at multiples of 500,
// whichever goroutine or loop serves the two clients (a SAVE, refused in
// memory, still moves its client off the event loop first).
func TestExecIsIsolatedFromOtherClients(t *testing.T) {
	for _, mode := range servingModes {
		for _, tc := range []struct {
			name                 string
			writerOwn, readerOwn bool // moved to a goroutine of its own
		}{{"as served", false, false}, {"reader on its own goroutine", false, true}, {"writer on its own goroutine", true, false}} {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				isolationRounds(t, mode.goroutinePerClient, tc.writerOwn, tc.readerOwn)
			})
		}
	}
}

func isolationRounds(t *testing.T, goroutinePerClient, writerOwn, readerOwn bool) {
	ts := start(t, Config{GoroutinePerClient: goroutinePerClient})
	ctx := context.Background()
	one := func(o *redis.Options) { o.PoolSize = 1 } // one connection: the one moved
	writer, reader := ts.client(t, one), ts.client(t, one)
	for _, moved := range []struct {
		rc  *redis.Client
		own bool
	}{{writer, writerOwn}, {reader, readerOwn}} {
		if moved.own {
			require.Error(t, moved.rc.Do(ctx, "SAVE").Err(), "no backups in memory")
		}
	}
	const step, rounds = 500, 20
	done := make(chan error, 1)
	go func() {
		for range rounds {
			_, err := writer.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for range step {
					p.HIncrBy(ctx, "c", "n", 1)
				}
				return nil
			})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	seen := 0
	for {
		select {
		case err := <-done:
			require.NoError(t, err)
			assert.Equal(t, strconv.Itoa(step*rounds), reader.HGet(ctx, "c", "n").Val())
			t.Logf("%d reads between transactions", seen)
			return
		default:
		}
		v, err := reader.HGet(ctx, "c", "n").Int()
		if err == redis.Nil {
			continue
		}
		require.NoError(t, err)
		require.Zero(t, v%step, "a read saw a transaction half done: %d", v)
		seen++
	}
}

// The memory a transaction keeps is bounded by MaxRequestBytes, the
// arguments' slices included: a command of many empty arguments keeps 24
// bytes of slice header for each, which counting the arguments' bytes
// alone took for nothing (a client could make the server keep any amount
// of memory for a few bytes of count).
func TestMultiQueueBoundCountsEveryArgument(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			const limit = 64 << 10
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, MaxRequestBytes: limit})
			r := ts.raw(t)
			// HDEL k and 2,000 empty fields: 12 KB to send, 48 KB of
			// argument slices to keep.
			var b strings.Builder
			b.WriteString("*2002\r\n$4\r\nHDEL\r\n$1\r\nk\r\n")
			for range 2000 {
				b.WriteString("$0\r\n\r\n")
			}
			cmd := b.String()
			const n = 40 // 1.9 MB kept: thirty times the bound
			r.send("MULTI\r\n")
			require.Equal(t, "+OK", r.line())
			refused := 0
			for range n {
				r.send(cmd)
				if l := r.line(); l != "+QUEUED" {
					assert.Contains(t, l, "transaction too large")
					refused++
				}
			}
			assert.Greater(t, refused, 0, "the queued commands keep more than MaxRequestBytes")
			r.send("EXEC\r\n")
			if refused > 0 {
				require.Equal(t, "-EXECABORT Transaction discarded because of previous errors.", r.line())
			}
		})
	}
}

// The observer (kv_commands_total, the latency histograms) sees a queued
// command when EXEC runs it, with its result then: a HINCRBY that fails in
// EXEC counts as failed (not EXEC, which ran), and a command of a
// discarded transaction, which never ran, is not counted. A command
// refused as it is queued counts as failed, as before.
func TestMultiObservedWhenRun(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			obs := &recordingObserver{failed: map[string]bool{}}
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, Observer: obs})
			r := ts.raw(t)
			r.send("MULTI\r\nHSET h s text\r\nHINCRBY h s 1\r\nEXEC\r\n")
			r.expect("+OK", "+QUEUED", "+QUEUED", "*2", ":1", "-ERR hash value is not an integer")
			cmds, failed, _ := obs.snapshot()
			assert.Equal(t, []string{"multi", "hset", "hincrby", "exec"}, cmds)
			assert.Equal(t, map[string]bool{"hincrby": true}, failed, "EXEC ran; HINCRBY failed")

			r.send("MULTI\r\nHDEL h s\r\nDISCARD\r\n")
			r.expect("+OK", "+QUEUED", "+OK")
			r.send("MULTI\r\nHGET h\r\nEXEC\r\n")
			r.expect("+OK", "-ERR wrong number of arguments for 'hget' command", "-EXECABORT Transaction discarded because of previous errors.")
			cmds, failed, _ = obs.snapshot()
			assert.Equal(t, []string{"multi", "hset", "hincrby", "exec", "multi", "discard", "multi", "hget", "exec"}, cmds)
			assert.Equal(t, map[string]bool{"hincrby": true, "hget": true, "exec": true}, failed)
		})
	}
}

// With a store, a write that EXEC runs is observed once it has settled,
// under its own name, failed if its sync fails; EXEC itself once.
func TestDurableExecObserved(t *testing.T) {
	dir := t.TempDir()
	faults := &store.Faults{}
	obs := &recordingObserver{failed: map[string]bool{}}
	ds := startDurable(t, dir, faultyAlways(faults),
		func(c *Config) { c.Observer = obs })
	r := ds.raw(t)
	r.send("MULTI\r\nHSET a f 1\r\nHGET a f\r\nEXEC\r\n")
	r.expect("+OK", "+QUEUED", "+QUEUED", "*2", ":1", "$1", "1")
	cmds, failed, _ := obs.snapshot()
	assert.Equal(t, []string{"multi", "hget", "exec", "hset"}, cmds, "the write once it has settled")
	assert.Empty(t, failed)

	r.send("MULTI\r\nHSET a g 1\r\n")
	r.expect("+OK", "+QUEUED")
	faults.FailSyncs(syscall.EIO)
	r.send("EXEC\r\n")
	require.Equal(t, "*1", r.line())
	assert.Contains(t, r.line(), "write failed")
	cmds, failed, _ = obs.snapshot()
	assert.Equal(t, []string{"multi", "hget", "exec", "hset", "multi", "exec", "hset"}, cmds)
	assert.Equal(t, map[string]bool{"hset": true}, failed)
	faults.Clear()
	rc := ds.client(t)
	require.Eventually(t, func() bool { return rc.HSet(context.Background(), "a", "h", "1").Err() == nil },
		10*time.Second, time.Millisecond, "the store writes again")
}

// A subcommand is checked as Redis checks it, before it runs and as it is
// queued: unknown, or with the wrong number of arguments, it is refused,
// and in MULTI it makes EXEC discard the transaction (before, CLIENT ID x
// was queued, and failed inside EXEC while the others ran).
func TestSubcommandsCheckedAsQueued(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			r := ts.raw(t)
			for _, tc := range []struct{ cmd, err string }{
				{"CLIENT ID x", "-ERR wrong number of arguments for 'client|id' command"},
				{"CLIENT NOPE", "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP."},
				{"COMMAND COUNT x", "-ERR wrong number of arguments for 'command|count' command"},
				{"COMMAND NOPE", "-ERR unknown subcommand 'NOPE'. Try COMMAND HELP."},
				{"CONFIG GET", "-ERR wrong number of arguments for 'config|get' command"},
				{"CONFIG SET a", "-ERR wrong number of arguments for 'config|set' command"},
				{"CONFIG NOPE", "-ERR unknown subcommand 'NOPE'. Try CONFIG HELP."},
			} {
				r.send(tc.cmd + "\r\n")
				r.expect(tc.err)
				r.send("MULTI\r\nHSET h f 1\r\n" + tc.cmd + "\r\nEXEC\r\n")
				r.expect("+OK", "+QUEUED", tc.err, "-EXECABORT Transaction discarded because of previous errors.")
			}
			r.send("HEXISTS h f\r\nMULTI\r\nCLIENT GETNAME\r\nCONFIG GET databases\r\nEXEC\r\n")
			r.expect(":0", "+OK", "+QUEUED", "+QUEUED", "*2", "$-1", "*2", "$9", "databases", "$1", "1")
		})
	}
}

// holdRecorder is a registry that counts the HoldWrites under way.
type holdRecorder struct {
	Registry
	held atomic.Int32
}

func (h *holdRecorder) HoldWrites() (release func()) {
	h.held.Add(1)
	inner := h.Registry.HoldWrites()
	return func() {
		h.held.Add(-1)
		inner()
	}
}

// EXEC runs its commands under the registry's HoldWrites, so that their
// writes reach the store as one atomic write (a crash keeps all or none;
// the store's tests show the hold's effect), and releases it when they
// have run; a command outside a transaction holds nothing.
func TestExecHoldsItsWritesTogether(t *testing.T) {
	rec := new(holdRecorder)
	var seen []int32 // HoldWrites under way when a command looked "h" up
	var mu sync.Mutex
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncEverySec}, func(c *Config) {
		rec.Registry = c.Registry
		c.Registry = rec
		c.testHookLive = func(b *bucket.Bucket) {
			if b.Name() == "h" {
				mu.Lock()
				seen = append(seen, rec.held.Load())
				mu.Unlock()
			}
		}
	})
	r := ds.raw(t)
	r.send("HSET h f 1\r\nHGET h f\r\n")
	r.expect(":1", "$1", "1")
	r.send("MULTI\r\nHSET h g 1\r\nHGET h g\r\nEXEC\r\n")
	r.expect("+OK", "+QUEUED", "+QUEUED", "*2", ":1", "$1", "1")
	r.send("HGET h g\r\n")
	r.expect("$1", "1")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int32{0, 1, 0}, seen)
	assert.Zero(t, rec.held.Load(), "released")
}
