package main

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A transaction's writes reach the disk as one (README: "a transaction's
// writes are one atomic write on disk", for transactions of hash writes
// alone): kv is killed with SIGKILL while concurrent clients run
// transactions, and after each restart every transaction is there whole
// or not at all, and every acknowledged one is there. Each transaction
// writes its tag to 27 buckets and moves one unit between two counters,
// so a half-written one shows as a tag in some of the buckets and not the
// others, or as counters that do not sum to zero; plain writers beside
// them commit the store's writes as they wait for the disk, which would
// cut transactions in two but for the hold (with Registry.HoldWrites
// doing nothing, the test failed in 6 runs of 13, with a goroutine per
// client). Both fsync policies, both serving modes.
func TestKill9KeepsTransactionsWhole(t *testing.T) {
	bin := buildKV(t)
	for _, policy := range []string{"always", "everysec"} {
		for _, perClient := range []bool{false, true} {
			name := policy
			if perClient {
				name += ",goroutine-per-client"
			}
			t.Run(name, func(t *testing.T) { txKill9Rounds(t, bin, policy, perClient) })
		}
	}
}

func txKill9Rounds(t *testing.T, bin, policy string, perClient bool) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--fsync", policy}
	if perClient {
		args = append(args, "--resp-goroutine-per-client")
	}
	buckets := []string{"ta", "tb", "tc"}
	const writers, plainWriters, spread = 6, 4, 8
	var mu sync.Mutex
	acked := map[string]bool{}     // transaction tags acknowledged: must be there, whole
	attempted := map[string]bool{} // sent: may be there, whole

	verify := func(t *testing.T, rc *redis.Client) {
		ctx := context.Background()
		present := map[string]int{}
		var all []string
		for _, b := range buckets {
			all = append(all, b)
			for k := range spread {
				all = append(all, b+"-"+strconv.Itoa(k))
			}
		}
		for _, b := range all {
			pairs, err := rc.HGetAll(ctx, b).Result()
			require.NoError(t, err)
			for tag := range pairs {
				require.True(t, attempted[tag], "%s has %s, never written", b, tag)
				present[tag]++
			}
		}
		for tag, n := range present {
			require.Equal(t, len(all), n, "transaction %s is in %d of %d buckets: not whole", tag, n, len(all))
		}
		for tag := range acked {
			require.Equal(t, len(all), present[tag], "acknowledged transaction %s lost", tag)
		}
		from, err := rc.HGet(ctx, "counters", "from").Int64()
		if err != redis.Nil {
			require.NoError(t, err)
		}
		to, err := rc.HGet(ctx, "counters", "to").Int64()
		if err != redis.Nil {
			require.NoError(t, err)
		}
		require.Zero(t, from+to, "the counters' transfers are whole: from %d, to %d", from, to)
		require.Equal(t, int64(len(present)), to, "one transfer per transaction")
		t.Logf("%d transactions stored whole, %d acknowledged", len(present), len(acked))
	}

	kill9Rounds(t, bin, args, func() int64 { return int64(50 + rand.IntN(400)) }, verify, func(r *crashRound) {
		ctx := context.Background()
		r.plainWriters(plainWriters)
		for i := range writers {
			r.goClient(func(rc *redis.Client) {
				for seq := 0; ; seq++ {
					tag := "r" + strconv.Itoa(r.round) + "-w" + strconv.Itoa(i) + "-" + strconv.Itoa(seq)
					mu.Lock()
					attempted[tag] = true
					mu.Unlock()
					_, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
						for _, b := range buckets {
							p.HSet(ctx, b, tag, seq)
							for k := range spread {
								p.HSet(ctx, b+"-"+strconv.Itoa(k), tag, seq)
							}
						}
						p.HIncrBy(ctx, "counters", "from", -1)
						p.HIncrBy(ctx, "counters", "to", 1)
						return nil
					})
					if err != nil {
						r.failed("transaction", err)
						return
					}
					mu.Lock()
					acked[tag] = true
					mu.Unlock()
					r.acked(1)
				}
			})
		}
	})
}

// RENAME moves a bucket's pairs in one atomic write: kv is killed with
// SIGKILL while clients rename buckets from generation to generation (and
// plain writers commit around them), and after each restart every bucket
// is under exactly one of its names, whole, at its last acknowledged
// generation or the one in flight after it. Some objects are renamed in
// transactions that also record the generation (MULTI; RENAME; HSET gens;
// EXEC): the move is in the transaction's atomic write, so the recorded
// generation is always the name's.
func TestKill9KeepsRenamesWhole(t *testing.T) {
	bin := buildKV(t)
	for _, policy := range []string{"always", "everysec"} {
		t.Run(policy, func(t *testing.T) { renameKill9Rounds(t, bin, policy) })
	}
}

func renameKill9Rounds(t *testing.T, bin, policy string) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--fsync", policy}
	const objects, fields, plainWriters = 6, 10, 3
	const txFrom = 4                       // objects from txFrom on are renamed in transactions
	acked := make([]atomic.Int64, objects) // each object's last acknowledged generation
	name := func(obj int, gen int64) string { return "obj" + strconv.Itoa(obj) + ":" + strconv.FormatInt(gen, 10) }

	// verify also takes each object's generation on disk as acknowledged:
	// an unacknowledged rename that landed is where the object is now.
	verify := func(t *testing.T, rc *redis.Client) {
		ctx := context.Background()
		for obj := range objects {
			names, err := rc.Keys(ctx, "obj"+strconv.Itoa(obj)+":*").Result()
			require.NoError(t, err)
			require.Len(t, names, 1, "object %d is under exactly one name: %v", obj, names)
			gen, err := strconv.ParseInt(names[0][len("obj"+strconv.Itoa(obj)+":"):], 10, 64)
			require.NoError(t, err)
			a := acked[obj].Load()
			require.True(t, gen == a || gen == a+1, "object %d at generation %d; acknowledged %d", obj, gen, a)
			pairs, err := rc.HGetAll(ctx, names[0]).Result()
			require.NoError(t, err)
			require.Len(t, pairs, fields, "object %d is whole", obj)
			for f, v := range pairs {
				require.Equal(t, "obj"+strconv.Itoa(obj)+"/"+f, v)
			}
			if obj >= txFrom {
				recorded, err := rc.HGet(ctx, "gens", strconv.Itoa(obj)).Int64()
				require.NoError(t, err)
				require.Equal(t, gen, recorded, "object %d: its transactions are whole", obj)
			}
			acked[obj].Store(gen)
		}
	}

	// The objects, at generation 0.
	addr, cmd, exited := startBinary(t, bin, args...)
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	ctx := context.Background()
	for obj := range objects {
		for f := range fields {
			require.NoError(t, rc.HSet(ctx, name(obj, 0), "f"+strconv.Itoa(f), "obj"+strconv.Itoa(obj)+"/f"+strconv.Itoa(f)).Err())
		}
		require.NoError(t, rc.HSet(ctx, "gens", strconv.Itoa(obj), 0).Err())
	}
	require.NoError(t, rc.Close())
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	<-exited

	kill9Rounds(t, bin, args, func() int64 { return int64(20 + rand.IntN(200)) }, verify, func(r *crashRound) {
		ctx := context.Background()
		r.plainWriters(plainWriters)
		for obj := range objects {
			r.goClient(func(rc *redis.Client) {
				for gen := acked[obj].Load(); ; gen++ {
					var err error
					if obj >= txFrom {
						_, err = rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.Rename(ctx, name(obj, gen), name(obj, gen+1))
							p.HSet(ctx, "gens", strconv.Itoa(obj), gen+1)
							return nil
						})
					} else {
						err = rc.Rename(ctx, name(obj, gen), name(obj, gen+1)).Err()
					}
					if err != nil {
						r.failed("rename", err)
						return
					}
					acked[obj].Store(gen + 1)
					r.acked(1)
				}
			})
		}
	})
}

// crashRound is one round of a kill -9 test (see kill9Rounds): clients
// started with goClient run against kv at addr until it is killed.
type crashRound struct {
	t      *testing.T
	round  int
	addr   string
	cmd    *exec.Cmd
	killAt int64
	count  atomic.Int64
	killed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// kill kills kv with SIGKILL, once.
func (r *crashRound) kill() {
	r.once.Do(func() {
		close(r.killed) // first: an operation that fails from here on may be the kill's
		assert.NoError(r.t, r.cmd.Process.Kill())
	})
}

// acked counts n acknowledged operations, and kills kv once killAt of them
// have been.
func (r *crashRound) acked(n int64) {
	if c := r.count.Add(n); c >= r.killAt && c-n < r.killAt {
		r.kill()
	}
}

// failed reports an operation's failure, unless the kill may explain it.
func (r *crashRound) failed(what string, err error) {
	select {
	case <-r.killed:
	default:
		r.t.Errorf("%s before the kill failed: %v", what, err)
	}
}

// goClient runs fn on a goroutine of the round (wg) with a client of its
// own, closed when fn returns. PoolSize above 1: one failed dial (kv was
// killed before the client connected) must not start go-redis's
// background redialer, which outlives Close by up to a second.
func (r *crashRound) goClient(fn func(rc *redis.Client)) {
	r.wg.Go(func() {
		rc := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, PoolSize: 4})
		defer rc.Close()
		fn(rc)
	})
}

// plainWriters starts n clients that write to buckets of their own until
// kv is killed: each of their waits for the disk commits what has been
// written so far, among the operations under test.
func (r *crashRound) plainWriters(n int) {
	for i := range n {
		r.goClient(func(rc *redis.Client) {
			for seq := 0; ; seq++ {
				if rc.HSet(context.Background(), "plain"+strconv.Itoa(i), "f", seq).Err() != nil {
					return // killed
				}
			}
		})
	}
}

// kill9Rounds runs kv from bin with args three times: each time it checks
// the data with verify, then runs work's clients (started with the round's
// goClient) until kv is killed with SIGKILL, once killAt() operations are
// acknowledged or after 5 seconds. Then it starts kv once more, verifies,
// and stops it.
func kill9Rounds(t *testing.T, bin string, args []string, killAt func() int64, verify func(*testing.T, *redis.Client), work func(*crashRound)) {
	for round := range 3 {
		addr, cmd, exited := startBinary(t, bin, args...)
		check := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		verify(t, check)
		require.NoError(t, check.Close())

		r := &crashRound{t: t, round: round, addr: addr, cmd: cmd, killAt: killAt(), killed: make(chan struct{})}
		deadline := time.AfterFunc(5*time.Second, r.kill) // bound the round
		work(r)
		r.wg.Wait()
		deadline.Stop()
		<-exited
		t.Logf("round %d: killed after %d acknowledged operations", round, r.count.Load())
	}
	addr, cmd, exited := startBinary(t, bin, args...)
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	verify(t, rc)
	require.NoError(t, rc.Close())
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	<-exited
}
