package resp

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// EXEC runs a transaction only if no watched key changed since WATCH; a
// change by anyone (another client, the client itself, the host through
// the registry) makes it answer a null array and run nothing, as Redis
// does. A read, or a write elsewhere, changes nothing.
func TestWatch(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, EnableDebugCommand: true})
			ctx := context.Background()
			other := ts.client(t)
			// A missing key's watch is told of the buckets made under
			// names that share its count (one in 1,024): "else" must not
			// be one of them, or "still absent" would abort.
			elsewhere := unrelatedName(t, ts, "w")
			for _, tc := range []struct {
				name    string
				setup   []string // run by another client before WATCH
				between func()   // after WATCH, before MULTI
				aborted bool
			}{
				{"nothing", []string{"HSET w f 1"}, func() {}, false},
				{"a read", []string{"HSET w f 1"}, func() { other.HGetAll(ctx, "w") }, false},
				{"a write elsewhere", []string{"HSET w f 1"}, func() { other.HSet(ctx, "else", "f", "1") }, false},
				{"HDEL of a missing field", []string{"HSET w f 1"}, func() { other.HDel(ctx, "w", "nope") }, false},
				{"HSET", []string{"HSET w f 1"}, func() { other.HSet(ctx, "w", "f", "2") }, true},
				{"HSET of the same value", []string{"HSET w f 1"}, func() { other.HSet(ctx, "w", "f", "1") }, true},
				{"HINCRBY", []string{"HSET w f 1"}, func() { other.HIncrBy(ctx, "w", "f", 1) }, true},
				{"HDEL", []string{"HSET w f 1 g 1"}, func() { other.HDel(ctx, "w", "g") }, true},
				{"DEL", []string{"HSET w f 1"}, func() { other.Del(ctx, "w") }, true},
				{"DEL and HSET back", []string{"HSET w f 1"}, func() { other.Del(ctx, "w"); other.HSet(ctx, "w", "f", "1") }, true},
				{"created", nil, func() { other.HSet(ctx, "w", "f", "1") }, true},
				{"still absent", nil, func() { other.HSet(ctx, elsewhere, "f", "1") }, false},
				// Absent at WATCH and at EXEC, but there in between: the
				// watcher may have read it meanwhile, as Redis aborts.
				{"created and deleted", nil, func() { other.HSet(ctx, "w", "f", "1"); other.Del(ctx, "w") }, true},
				{"renamed onto and away", []string{"HSET src f 1"}, func() { other.Rename(ctx, "src", "w"); other.Rename(ctx, "w", "src") }, true},
				{"RENAME away", []string{"HSET w f 1"}, func() { other.Rename(ctx, "w", "else") }, true},
				{"RENAME onto", []string{"HSET w f 1", "HSET src f 2"}, func() { other.Rename(ctx, "src", "w") }, true},
				{"FLUSHALL", []string{"HSET w f 1"}, func() { other.FlushAll(ctx) }, true},
				{"crashed", []string{"HSET w f 1"}, func() { other.Do(ctx, "DEBUG", "CRASH-BUCKET", "w") }, true},
				{"through the registry", []string{"HSET w f 1"}, func() {
					b, ok := ts.root.Registry().Lookup("w")
					require.True(t, ok)
					require.NoError(t, b.Put("f", []byte("host")))
				}, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					require.NoError(t, other.FlushAll(ctx).Err())
					for _, cmd := range tc.setup {
						require.NoError(t, other.Do(ctx, strArgs(cmd)...).Err(), cmd)
					}
					r := ts.raw(t)
					r.send("WATCH w\r\n")
					r.expect("+OK")
					tc.between()
					r.send("MULTI\r\nHSET w mine 1\r\nEXEC\r\n")
					r.expect("+OK", "+QUEUED")
					if tc.aborted {
						r.expect("*-1")
						assert.False(t, other.HExists(ctx, "w", "mine").Val(), "nothing of the transaction ran")
					} else {
						r.expect("*1", ":1")
						assert.True(t, other.HExists(ctx, "w", "mine").Val())
					}
					// EXEC forgot the watched keys: the next one runs.
					other.HSet(ctx, "w", "f", "3")
					r.send("MULTI\r\nHSET w mine 2\r\nEXEC\r\n")
					r.expect("+OK", "+QUEUED", "*1")
					r.line()
				})
			}
		})
	}
}

// unrelatedName returns a name whose buckets do not change the registry's
// Births of name: one whose creation leaves it as it was.
func unrelatedName(t *testing.T, ts *testServer, name string) string {
	t.Helper()
	reg, ctx := ts.root.Registry(), context.Background()
	for i := 0; ; i++ {
		candidate := "else" + strconv.Itoa(i)
		before := reg.Births(name)
		_, err := reg.Create(ctx, candidate)
		require.NoError(t, err)
		require.NoError(t, reg.Delete(ctx, candidate))
		if reg.Births(name) == before {
			return candidate
		}
	}
}

func strArgs(cmd string) []any {
	var args []any
	for _, f := range strings.Fields(cmd) {
		args = append(args, f)
	}
	return args
}

// WATCH's own rules, as Redis's: refused inside MULTI (without aborting
// the transaction), the client's own writes count, UNWATCH, DISCARD and
// RESET forget the keys, EXECABORT wins over a changed key, and a second
// WATCH of a key does not forgive a change since the first.
func TestWatchRules(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			ctx := context.Background()
			other := ts.client(t)
			r := ts.raw(t)
			change := func() { require.NoError(t, other.HIncrBy(ctx, "k", "n", 1).Err()) }

			r.send("WATCH\r\n")
			r.expect("-ERR wrong number of arguments for 'watch' command")

			r.send("MULTI\r\nWATCH k\r\nHSET k mine 1\r\nEXEC\r\n")
			r.expect("+OK", "-ERR WATCH inside MULTI is not allowed", "+QUEUED", "*1", ":1")

			r.send("WATCH k\r\nHSET k own 1\r\nMULTI\r\nHGET k own\r\nEXEC\r\n")
			r.expect("+OK", ":1", "+OK", "+QUEUED", "*-1")

			for _, forget := range []struct{ cmd, reply string }{
				{"UNWATCH", "+OK"}, {"RESET", "+RESET"},
			} {
				r.send("WATCH k\r\n")
				r.expect("+OK")
				r.send(forget.cmd + "\r\n")
				r.expect(forget.reply)
				change()
				r.send("MULTI\r\nHGET k own\r\nEXEC\r\n")
				r.expect("+OK", "+QUEUED", "*1", "$1", "1")
			}

			r.send("WATCH k\r\nMULTI\r\nDISCARD\r\n")
			r.expect("+OK", "+OK", "+OK")
			change()
			r.send("MULTI\r\nHGET k own\r\nEXEC\r\n")
			r.expect("+OK", "+QUEUED", "*1", "$1", "1")

			// UNWATCH inside MULTI is queued, and EXEC still checks the keys.
			r.send("WATCH k\r\n")
			r.expect("+OK")
			change()
			r.send("MULTI\r\nUNWATCH\r\nEXEC\r\n")
			r.expect("+OK", "+QUEUED", "*-1")

			r.send("WATCH k\r\n")
			r.expect("+OK")
			change()
			r.send("MULTI\r\nHGET\r\nEXEC\r\n")
			r.expect("+OK", "-ERR wrong number of arguments for 'hget' command",
				"-EXECABORT Transaction discarded because of previous errors.")

			// An EXEC refused before it runs forgets them too.
			r.send("WATCH k\r\n")
			r.expect("+OK")
			change()
			r.send("EXEC x\r\nMULTI\r\nHGET k own\r\nEXEC\r\n")
			r.expect("-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command",
				"+OK", "+QUEUED", "*1", "$1", "1")

			r.send("WATCH k\r\n")
			r.expect("+OK")
			change()
			r.send("WATCH k other\r\nMULTI\r\nHGET k own\r\nEXEC\r\n")
			r.expect("+OK", "+OK", "+QUEUED", "*-1")
		})
	}
}

// What a client watches is bounded by MaxRequestBytes: past it, WATCH is
// refused with an error and the keys before stay watched.
func TestWatchBound(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, MaxRequestBytes: 4096})
			r := ts.raw(t)
			name := strings.Repeat("k", 1000)
			r.send("WATCH " + name + "1 " + name + "2 " + name + "3\r\n")
			r.expect("+OK")
			r.send("WATCH " + name + "4 " + name + "5\r\n")
			r.expect("-ERR too many watched keys: their names pass 4096 bytes")
			// name4 is there when watched: a missing one could share its
			// count of births with name1 (see unrelatedName).
			ts.client(t).HSet(context.Background(), name+"4", "f", "1")
			r.send("UNWATCH\r\nWATCH " + name + "4\r\n")
			r.expect("+OK", "+OK")
			ts.client(t).HSet(context.Background(), name+"1", "f", "1") // no longer watched
			r.send("MULTI\r\nEXEC\r\n")
			r.expect("+OK", "*0")
		})
	}
}

// go-redis's optimistic locking (Watch, TxPipelined, TxFailedErr) works:
// clients that each read a counter, and write it back raised by one in a
// transaction under WATCH, retrying when it fails, lose no increment.
func TestWatchOptimisticIncrements(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			ctx := context.Background()
			rc := ts.client(t, func(o *redis.Options) { o.PoolSize = 8 })
			const clients, each = 8, 50
			var wg sync.WaitGroup
			var mu sync.Mutex
			retries := 0
			errs := make(chan error, clients)
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						for {
							err := rc.Watch(ctx, func(tx *redis.Tx) error {
								n, err := tx.HGet(ctx, "counter", "n").Int()
								if err != nil && !errors.Is(err, redis.Nil) {
									return err
								}
								_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
									p.HSet(ctx, "counter", "n", strconv.Itoa(n+1))
									return nil
								})
								return err
							}, "counter")
							if errors.Is(err, redis.TxFailedErr) {
								mu.Lock()
								retries++
								mu.Unlock()
								continue
							}
							if err != nil {
								errs <- err
								return
							}
							break
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			assert.Equal(t, strconv.Itoa(clients*each), rc.HGet(ctx, "counter", "n").Val())
			t.Logf("%d increments, %d retries", clients*each, retries)
		})
	}
}

// A durable bucket that crashes comes back whole at its next use, but it
// is another bucket: an EXEC watching it fails (a false alarm, which costs
// a retry), and the retry runs.
func TestWatchDurableCrash(t *testing.T) {
	ctx := context.Background()
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncNo})
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "w", "f", "1").Err())
	r := ds.raw(t)
	r.send("WATCH w\r\n")
	r.expect("+OK")
	require.NoError(t, rc.Do(ctx, "DEBUG", "CRASH-BUCKET", "w").Err())
	require.Eventually(t, func() bool { return rc.HGet(ctx, "w", "f").Val() == "1" }, 10*time.Second, time.Millisecond)
	r.send("MULTI\r\nHSET w mine 1\r\nEXEC\r\n")
	r.expect("+OK", "+QUEUED", "*-1")
	r.send("WATCH w\r\nMULTI\r\nHSET w mine 1\r\nEXEC\r\n")
	r.expect("+OK", "+OK", "+QUEUED", "*1", ":1")
}
