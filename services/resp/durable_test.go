package resp

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
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
	"github.com/kvproject/kv/services"
)

// testBackups writes checkpoints of st into fresh directories under base
// and keeps the last one only. base is made with the test, not at Save:
// Save runs inside a fuzz target too (SAVE, BGSAVE), where the *testing.F
// that startDurable got must not be called (its TempDir panics), and
// where thousands of checkpoints would fill the disk.
type testBackups struct {
	base string
	st   *store.Store

	mu   sync.Mutex
	last string
}

func (b *testBackups) Save() (string, error) {
	parent, err := os.MkdirTemp(b.base, "save")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(parent, "checkpoint")
	if err := b.st.Checkpoint(dir); err != nil {
		_ = os.RemoveAll(parent)
		return "", err
	}
	b.mu.Lock()
	prev := b.last
	b.last = dir
	b.mu.Unlock()
	if prev != "" {
		_ = os.RemoveAll(filepath.Dir(prev))
	}
	return dir, nil
}

func (b *testBackups) LastSave() time.Time { return b.st.LastSave() }

func (b *testBackups) Sync() error { return b.st.Sync() }

func (b *testBackups) lastDir() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// durableServer is a tree on a store in dir, with its RESP listener; stop
// stops the tree and closes the store (also done at the test's end).
type durableServer struct {
	*testServer
	st      *store.Store
	backups *testBackups
	stop    func()
}

// faultyAlways is the store of most fault tests: every write on disk
// before its reply (FsyncAlways), faults injected through faults, and a
// failed write retried after a millisecond.
func faultyAlways(faults *store.Faults) store.Options {
	return store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Millisecond}
}

func startDurable(t testing.TB, dir string, opts store.Options, configure ...func(*Config)) *durableServer {
	t.Helper()
	st, err := store.Open(dir, opts)
	require.NoError(t, err)
	root := services.New(services.Config{StopTimeout: 5 * time.Second, Store: st})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	backups := &testBackups{base: t.TempDir(), st: st}
	cfg := Config{
		Registry: root.Registry(), Events: root.Events(), Listener: ln,
		EnableDebugCommand: true, Backups: backups, GoroutinePerClient: goroutinePerClient,
	}
	for _, f := range configure {
		f(&cfg)
	}
	srv := New(cfg)
	root.Add(srv)
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	<-srv.Ready()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-errc
		require.NoError(t, st.Close())
	}
	t.Cleanup(stop)
	return &durableServer{testServer: &testServer{root: root, srv: srv, addr: srv.Addr().String()}, st: st, backups: backups, stop: stop}
}

func TestDurableDataSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ds := startDurable(t, dir, store.Options{Fsync: store.FsyncAlways})
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "cart", "apples", "3", "pears", "5").Err())
	require.NoError(t, rc.HSet(ctx, "gone", "x", "1").Err())
	require.NoError(t, rc.HSet(ctx, "old", "k", "v").Err())
	require.NoError(t, rc.HIncrBy(ctx, "cart", "apples", 2).Err())
	require.NoError(t, rc.HDel(ctx, "cart", "pears").Err())
	require.NoError(t, rc.Del(ctx, "gone").Err())
	require.NoError(t, rc.Rename(ctx, "old", "new").Err())
	ds.stop()

	ds = startDurable(t, dir, store.Options{Fsync: store.FsyncAlways})
	rc = ds.client(t)
	assert.Equal(t, int64(2), rc.DBSize(ctx).Val(), "stored buckets count before they are loaded")
	assert.Equal(t, []string{"cart", "new"}, rc.Keys(ctx, "*").Val())
	assert.Zero(t, ds.root.Buckets().Running(), "no bucket is loaded before its first use")
	assert.Equal(t, map[string]string{"apples": "5"}, rc.HGetAll(ctx, "cart").Val())
	assert.Equal(t, map[string]string{"k": "v"}, rc.HGetAll(ctx, "new").Val())
	assert.Equal(t, int64(0), rc.Exists(ctx, "gone", "old").Val())
	// Each loaded bucket's goroutine starts as suture gets to it.
	require.Eventually(t, func() bool { return ds.root.Buckets().Running() == 2 }, 10*time.Second, time.Millisecond)

	require.NoError(t, rc.FlushAll(ctx).Err())
	assert.Equal(t, int64(0), rc.DBSize(ctx).Val())
	ds.stop()
	ds = startDurable(t, dir, store.Options{})
	assert.Equal(t, int64(0), ds.client(t).DBSize(ctx).Val(), "FLUSHALL empties the store")
}

// A bucket that crashes keeps its data: its next use loads it from disk.
func TestDurableBucketCrashLosesNothing(t *testing.T) {
	ctx := context.Background()
	ds := startDurable(t, t.TempDir(), store.Options{})
	rc := ds.client(t)
	want := map[string]string{}
	for i := range 100 {
		k, v := "f"+strconv.Itoa(i), "v"+strconv.Itoa(i)
		require.NoError(t, rc.HSet(ctx, "b", k, v).Err())
		want[k] = v
	}
	require.NoError(t, rc.Do(ctx, "DEBUG", "CRASH-BUCKET", "b").Err())
	assert.Equal(t, 0, ds.root.Buckets().Running(), "the crashed bucket is gone from memory")
	assert.Equal(t, []string{"b"}, rc.Keys(ctx, "*").Val(), "but not from the keyspace")
	assert.Equal(t, want, rc.HGetAll(ctx, "b").Val())
	require.NoError(t, rc.HSet(ctx, "b", "after", "1").Err())
	assert.Equal(t, "1", rc.HGet(ctx, "b", "after").Val())
}

// A write that fails below the store is reported to its client, is not
// visible, and writes succeed again once the fault clears.
func TestDurableFailedWriteIsReportedAndNotVisible(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(*store.Faults)
	}{
		{"failed sync", func(f *store.Faults) { f.FailSyncs(syscall.EIO) }},
		{"full disk", func(f *store.Faults) { f.FailWrites(syscall.ENOSPC) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			faults := &store.Faults{}
			ds := startDurable(t, dir, faultyAlways(faults))
			rc := ds.client(t)
			require.NoError(t, rc.HSet(ctx, "b", "before", "1").Err())
			require.NoError(t, rc.HSet(ctx, "cold", "f", "v").Err())
			require.NoError(t, rc.Do(ctx, "DEBUG", "CRASH-BUCKET", "cold").Err()) // stored, not loaded

			tc.inject(faults)
			err := rc.HSet(ctx, "b", "during", "2").Err()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "write failed")
			err = rc.HSet(ctx, "other", "during", "2").Err()
			require.Error(t, err, "a new bucket cannot be written either")
			assert.NotEqual(t, "2", rc.HGet(ctx, "b", "during").Val(), "the failed write is not visible")
			err = rc.HGet(ctx, "cold", "f").Err()
			require.Error(t, err, "a bucket the store cannot load now is not reported absent")
			assert.NotEqual(t, redis.Nil, err)
			// The names of the stored buckets are known in memory: KEYS and
			// DBSIZE answer without the store, and the bucket whose creation
			// failed is not among them.
			assert.ElementsMatch(t, []string{"b", "cold"}, rc.Keys(ctx, "*").Val())
			assert.Equal(t, int64(2), rc.DBSize(ctx).Val())

			faults.Clear()
			require.Eventually(t, func() bool {
				return rc.HSet(ctx, "b", "after", "3").Err() == nil
			}, 10*time.Second, time.Millisecond)
			assert.Equal(t, map[string]string{"before": "1", "after": "3"}, rc.HGetAll(ctx, "b").Val())
			assert.Equal(t, "v", rc.HGet(ctx, "cold", "f").Val())
			ds.stop()

			ds = startDurable(t, dir, store.Options{})
			assert.Equal(t, map[string]string{"before": "1", "after": "3"}, ds.client(t).HGetAll(ctx, "b").Val())
		})
	}
}

// A pipeline of writes waits for the disk once, before its replies leave;
// each reply still answers its own write: a write whose sync fails gets an
// error in its place among the other replies, and is not visible.
func TestDurablePipelineRepliesFollowEachWrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	faults := &store.Faults{}
	obs := &recordingObserver{failed: map[string]bool{}}
	ds := startDurable(t, dir, faultyAlways(faults),
		func(c *Config) { c.Observer = obs })
	rc := ds.client(t)

	cmds, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, "p", "a", "1")
		p.HIncrBy(ctx, "p", "n", 5)
		p.HSetNX(ctx, "p", "a", "2")
		p.HMSet(ctx, "p", "b", "2", "c", "3")
		p.HDel(ctx, "p", "c")
		p.HIncrByFloat(ctx, "p", "x", 1.5)
		p.HGetAll(ctx, "p")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, int64(1), cmds[0].(*redis.IntCmd).Val())
	assert.Equal(t, int64(5), cmds[1].(*redis.IntCmd).Val())
	assert.False(t, cmds[2].(*redis.BoolCmd).Val())
	assert.True(t, cmds[3].(*redis.BoolCmd).Val())
	assert.Equal(t, int64(1), cmds[4].(*redis.IntCmd).Val())
	assert.Equal(t, 1.5, cmds[5].(*redis.FloatCmd).Val())
	want := map[string]string{"a": "1", "n": "5", "b": "2", "x": "1.5"}
	assert.Equal(t, want, cmds[6].(*redis.MapStringStringCmd).Val())

	// The first write after the fault is made and recorded, and its sync
	// fails; the store then refuses writes at once. Both replies are
	// errors, each in its own place.
	faults.FailSyncs(syscall.EIO)
	cmds, _ = rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, "p", "a", "changed")
		p.Ping(ctx)
		p.HSet(ctx, "q", "f", "v")
		p.Echo(ctx, "last")
		return nil
	})
	require.Len(t, cmds, 4)
	require.Error(t, cmds[0].Err())
	assert.Contains(t, cmds[0].Err().Error(), "write failed")
	assert.Equal(t, "PONG", cmds[1].(*redis.StatusCmd).Val())
	require.Error(t, cmds[2].Err())
	assert.Equal(t, "last", cmds[3].(*redis.StringCmd).Val())
	observed, failed, _ := obs.snapshot()
	assert.Subset(t, observed, []string{"hset", "hincrby", "hsetnx", "hmset", "hdel", "hincrbyfloat", "ping", "echo"},
		"every command is observed once, a write once it has settled")
	hsets := 0
	for _, c := range observed {
		if c == "hset" {
			hsets++
		}
	}
	assert.Equal(t, 3, hsets, "each HSET observed once")
	assert.True(t, failed["hset"], "the write whose sync failed counts as failed")
	assert.False(t, failed["hincrby"])

	faults.Clear()
	require.Eventually(t, func() bool {
		return rc.HSet(ctx, "p", "after", "1").Err() == nil
	}, 10*time.Second, time.Millisecond)
	want["after"] = "1"
	assert.Equal(t, want, rc.HGetAll(ctx, "p").Val(), "the failed write is not visible")
	ds.stop()

	ds = startDurable(t, dir, store.Options{})
	assert.Equal(t, want, ds.client(t).HGetAll(ctx, "p").Val())
}

// A SAVE pipelined after a write saves that write: the write's reply comes
// before SAVE's, and a connection's commands run in order. (A review found
// the write left out: it waited in the store's open group, to be
// committed when the connection answered the pipeline.)
func TestDurablePipelinedSaveHoldsTheWriteBeforeIt(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []store.Fsync{store.FsyncAlways, store.FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			ds := startDurable(t, t.TempDir(), store.Options{Fsync: policy})
			rc := ds.client(t)
			require.NoError(t, rc.HSet(ctx, "a", "old", "1").Err())

			pipe := rc.Pipeline()
			hset := pipe.HSet(ctx, "a", "f", "v")
			save := pipe.Save(ctx)
			_, err := pipe.Exec(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(1), hset.Val())
			require.Equal(t, "OK", save.Val())

			cp, err := store.Open(ds.backups.lastDir(), store.Options{Fsync: policy})
			require.NoError(t, err)
			defer func() { require.NoError(t, cp.Close()) }()
			pairs, found, err := cp.Load("a")
			require.NoError(t, err)
			require.True(t, found)
			assert.Equal(t, "v", string(pairs["f"]), "the checkpoint holds the HSET answered before SAVE")
		})
	}
}

// BGSAVE writes a checkpoint kv can start from, with the same data.
func TestDurableStartFromBGSAVE(t *testing.T) {
	ctx := context.Background()
	ds := startDurable(t, t.TempDir(), store.Options{})
	rc := ds.client(t)
	assert.Equal(t, int64(0), rc.LastSave(ctx).Val())
	assert.Equal(t, map[string]string{"appendonly": "yes"}, rc.ConfigGet(ctx, "appendonly").Val())
	want := map[string]map[string]string{}
	for i := range 20 {
		name := "b" + strconv.Itoa(i)
		want[name] = map[string]string{}
		for j := range 10 {
			require.NoError(t, rc.HSet(ctx, name, "f"+strconv.Itoa(j), strconv.Itoa(i*j)).Err())
			want[name]["f"+strconv.Itoa(j)] = strconv.Itoa(i * j)
		}
	}
	require.NoError(t, rc.Do(ctx, "SAVE").Err())
	saved := rc.LastSave(ctx).Val()
	assert.NotZero(t, saved)

	first := ds.backups.lastDir()
	require.Equal(t, "Background saving started", rc.BgSave(ctx).Val())
	ds.stop() // waits for the BGSAVE
	dir := ds.backups.lastDir()
	require.NotEqual(t, first, dir)

	cp := startDurable(t, dir, store.Options{})
	crc := cp.client(t)
	got := map[string]map[string]string{}
	for _, name := range crc.Keys(ctx, "*").Val() {
		got[name] = crc.HGetAll(ctx, name).Val()
	}
	assert.Equal(t, want, got)
}

// failingBackups is testBackups whose Save fails while fail is set, and
// panics while panics is.
type failingBackups struct {
	*testBackups
	fail, panics atomic.Bool
}

func (b *failingBackups) Save() (string, error) {
	if b.panics.Load() {
		panic("checkpoint: corrupted state")
	}
	if b.fail.Load() {
		return "", errors.New("no space left on device")
	}
	return b.testBackups.Save()
}

// startFailingBackups is startDurable with its Backups a failingBackups.
func startFailingBackups(t *testing.T, configure ...func(*Config)) (*durableServer, *failingBackups) {
	t.Helper()
	var fb *failingBackups
	ds := startDurable(t, t.TempDir(), store.Options{}, append(configure, func(c *Config) {
		fb = &failingBackups{testBackups: c.Backups.(*testBackups)}
		c.Backups = fb
	})...)
	return ds, fb
}

// INFO's Persistence section says, in Redis's fields, whether a store is
// under the buckets and how the last SAVE or BGSAVE went: a script that
// runs BGSAVE and polls LASTSAVE tells a failed save (only logged before)
// from one still running by rdb_last_bgsave_status and
// rdb_bgsave_in_progress, as with Redis.
func TestInfoPersistence(t *testing.T) {
	ctx := context.Background()
	ds, fb := startFailingBackups(t)
	rc := ds.client(t)
	persistence := func() map[string]string {
		info, err := rc.InfoMap(ctx, "persistence").Result()
		require.NoError(t, err)
		require.Contains(t, info, "Persistence")
		return info["Persistence"]
	}
	got := persistence()
	assert.Equal(t, map[string]string{
		"loading": "0", "async_loading": "0", "rdb_bgsave_in_progress": "0", "rdb_last_save_time": "0",
		"rdb_last_bgsave_status": "ok", "rdb_saves": "0", "aof_enabled": "1",
	}, got)

	require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())
	require.NoError(t, rc.Save(ctx).Err())
	got = persistence()
	assert.Equal(t, "1", got["rdb_saves"])
	assert.Equal(t, strconv.FormatInt(rc.LastSave(ctx).Val(), 10), got["rdb_last_save_time"])
	assert.NotEqual(t, "0", got["rdb_last_save_time"])

	fb.fail.Store(true)
	require.Equal(t, "Background saving started", rc.BgSave(ctx).Val())
	require.Eventually(t, func() bool {
		p := persistence()
		return p["rdb_last_bgsave_status"] == "err" && p["rdb_bgsave_in_progress"] == "0"
	}, 10*time.Second, time.Millisecond, "a failed BGSAVE shows in INFO")
	assert.Equal(t, "1", persistence()["rdb_saves"])
	assert.Error(t, rc.Save(ctx).Err())
	assert.Equal(t, "err", persistence()["rdb_last_bgsave_status"])

	fb.fail.Store(false)
	require.NoError(t, rc.Save(ctx).Err())
	got = persistence()
	assert.Equal(t, "ok", got["rdb_last_bgsave_status"])
	assert.Equal(t, "2", got["rdb_saves"])

	// In memory: no store, no saves.
	mem := start(t, Config{}).client(t)
	info, err := mem.InfoMap(ctx, "persistence").Result()
	require.NoError(t, err)
	assert.Equal(t, "0", info["Persistence"]["aof_enabled"])
	assert.Equal(t, "0", info["Persistence"]["rdb_saves"])
	text, err := mem.Info(ctx).Result()
	require.NoError(t, err)
	assert.Contains(t, text, "# Memory\r\n")
	assert.Regexp(t, `(?s)# Memory.*# Persistence.*# Stats`, text, "Redis's order of sections")
}

func TestSaveInMemory(t *testing.T) {
	ctx := context.Background()
	rc := start(t, Config{}).client(t)
	assert.ErrorContains(t, rc.Save(ctx).Err(), "durable storage")
	assert.ErrorContains(t, rc.BgSave(ctx).Err(), "durable storage")
	assert.ErrorContains(t, rc.Do(ctx, "BGSAVE", "schedule").Err(), "durable storage")
	assert.Equal(t, int64(0), rc.LastSave(ctx).Val())
	// BGSAVE takes SCHEDULE and nothing else, as Redis.
	for _, args := range [][]any{{"BGSAVE", "now"}, {"BGSAVE", "SCHEDULE", "x"}} {
		assert.EqualError(t, rc.Do(ctx, args...).Err(), "ERR syntax error", "%v", args)
	}
}

// A connection holds the Pending of each write of its pipeline until the
// pipeline's replies go out, and may write again meanwhile. When a sync has
// failed, the store's recovery must not wait for those Pendings on the
// writer's goroutine: the next write fails at once, and writes work again
// once the held Pending has been answered.
func TestDurableRecoveryDoesNotWaitForAHeldPending(t *testing.T) {
	ctx := context.Background()
	faults := &store.Faults{}
	ds := startDurable(t, t.TempDir(), faultyAlways(faults))
	a, err := ds.root.Registry().Create(ctx, "a")
	require.NoError(t, err)
	b, err := ds.root.Registry().Create(ctx, "b")
	require.NoError(t, err)

	c, err := ds.root.Registry().Create(ctx, "c")
	require.NoError(t, err)

	faults.FailSyncs(syscall.EIO)
	_, held, err := a.SetNoWait("f", []byte("1")) // recorded, and held
	require.NoError(t, err)
	// Another writer commits the group the held write joined: its sync fails.
	_, p, err := c.SetNoWait("f", []byte("1"))
	require.NoError(t, err)
	require.Error(t, p.Wait())
	require.Error(t, ds.st.Err())
	faults.Clear()

	done := make(chan error, 1)
	go func() {
		_, p, err := b.SetNoWait("f", []byte("1"))
		if err == nil {
			err = p.Wait()
		}
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err, "the store has not recovered yet")
	case <-time.After(10 * time.Second):
		_ = held.Wait() // unblocks the recovery, so that the test can stop
		<-done
		t.Fatal("a write hung in the store's recovery, waiting for a Pending its own connection holds")
	}
	require.Error(t, held.Wait(), "the held write's sync failed")

	rc := ds.client(t)
	require.Eventually(t, func() bool { return rc.HSet(ctx, "d", "f", "v").Err() == nil }, 10*time.Second, time.Millisecond)
	assert.Equal(t, "v", rc.HGet(ctx, "d", "f").Val())
}

// endOnce returns a testHookLive that ends, with end, the first bucket
// named name that a command looks up (once armed), as a crash or a RENAME
// would between the lookup and the read.
func endOnce(name string, end func(*bucket.Bucket)) (hook func(*bucket.Bucket), arm func()) {
	var armed atomic.Bool
	return func(b *bucket.Bucket) {
			if b.Name() == name && armed.CompareAndSwap(true, false) {
				end(b)
			}
		}, func() {
			armed.Store(true)
		}
}

// A command whose bucket ends between its lookup and its use follows the
// name: with a store, to the same pairs loaded back after a crash; in
// memory, to the pairs a RENAME put there. It never answers as if the key
// were missing or empty.
func TestCommandsFollowABucketThatEndsUnderThem(t *testing.T) {
	reads := []struct {
		args []any
		want any
	}{
		{[]any{"HGET", "h", "a"}, "1"},
		{[]any{"HMGET", "h", "a", "b", "nope"}, []any{"1", "22", nil}},
		{[]any{"HEXISTS", "h", "b"}, int64(1)},
		{[]any{"HLEN", "h"}, int64(2)},
		{[]any{"HSTRLEN", "h", "b"}, int64(2)},
		{[]any{"HKEYS", "h"}, nil}, // compared as sets below
		{[]any{"HVALS", "h"}, nil},
		{[]any{"HGETALL", "h"}, nil},
		{[]any{"HRANDFIELD", "h", "10"}, nil},
		{[]any{"HSCAN", "h", "0", "COUNT", "10"}, nil},
	}
	sets := map[string][]string{
		"HKEYS": {"a", "b"}, "HVALS": {"1", "22"}, "HGETALL": {"1", "22", "a", "b"}, "HRANDFIELD": {"a", "b"},
	}
	check := func(t *testing.T, rc *redis.Client, arm func()) {
		ctx := context.Background()
		for _, r := range reads {
			arm()
			got, err := rc.Do(ctx, r.args...).Result()
			require.NoError(t, err, "%v", r.args)
			name := r.args[0].(string)
			switch {
			case name == "HSCAN":
				page := got.([]any)
				assert.Equal(t, "0", page[0])
				assert.ElementsMatch(t, []any{"a", "1", "b", "22"}, page[1], "%v", r.args)
			case sets[name] != nil:
				var strs []string
				for _, v := range got.([]any) {
					strs = append(strs, v.(string))
				}
				assert.ElementsMatch(t, sets[name], strs, "%v", r.args)
			default:
				assert.Equal(t, r.want, got, "%v", r.args)
			}
		}
		arm()
		n, err := rc.HDel(ctx, "h", "a").Result()
		require.NoError(t, err)
		assert.Equal(t, int64(1), n, "HDEL deletes from the bucket the name leads to")
		v, err := rc.HGetAll(ctx, "h").Result()
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"b": "22"}, v)
	}

	t.Run("durable, crashed", func(t *testing.T) {
		hook, arm := endOnce("h", func(b *bucket.Bucket) { b.Stop(errors.New("crashed under the command")) })
		ds := startDurable(t, t.TempDir(), store.Options{}, func(c *Config) { c.testHookLive = hook })
		rc := ds.client(t)
		require.NoError(t, rc.HSet(context.Background(), "h", "a", "1", "b", "22").Err())
		check(t, rc, arm)
	})
	t.Run("memory, renamed onto", func(t *testing.T) {
		var reg Registry
		hook, arm := endOnce("h", func(*bucket.Bucket) {
			// Another client's RENAME src h, with src holding what h held.
			p, err := reg.RenameNoWait(context.Background(), "src", "h")
			require.NoError(t, err)
			require.True(t, p.IsZero(), "in memory, nothing to wait for")
		})
		ts := start(t, Config{testHookLive: hook})
		reg = ts.srv.reg
		rc := ts.client(t)
		ctx := context.Background()
		refill := func() {
			require.NoError(t, rc.HSet(ctx, "src", "a", "1", "b", "22").Err())
			arm()
		}
		require.NoError(t, rc.HSet(ctx, "h", "a", "old", "b", "old").Err())
		check(t, rc, refill)
	})
}

// A read follows a durable bucket that crashed under it to the same pairs,
// loaded back; one that ends again and again gets an error to try again,
// never a reply that the hash is absent.
func TestReadOfABucketThatKeepsEndingIsNotAbsent(t *testing.T) {
	var crashes atomic.Int32 // how many of the next commands' buckets crash once looked up
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncAlways}, func(c *Config) {
		c.testHookLive = func(b *bucket.Bucket) {
			if crashes.Add(-1) >= 0 {
				b.Stop(errors.New("crashed under the command"))
			}
		}
	})
	ctx := context.Background()
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "h", "a", "1").Err())

	crashes.Store(3)
	v, err := rc.HGet(ctx, "h", "a").Result()
	require.NoError(t, err)
	assert.Equal(t, "1", v, "followed to the pairs loaded back")

	// The README: a command that finds its bucket ended 8 times in a row
	// gets the error; 7 times, it still follows the name.
	require.Equal(t, 8, maxAttempts)
	crashes.Store(maxAttempts - 1)
	v, err = rc.HGet(ctx, "h", "a").Result()
	require.NoError(t, err, "ended %d times in a row", maxAttempts-1)
	assert.Equal(t, "1", v)
	crashes.Store(maxAttempts)
	_, err = rc.HGet(ctx, "h", "a").Result()
	require.ErrorContains(t, err, "ERR the bucket ended while the command ran; try again")
	require.Zero(t, crashes.Load(), "each attempt found its bucket ended once")

	crashes.Store(1000)
	_, err = rc.HGet(ctx, "h", "a").Result()
	require.ErrorContains(t, err, "ERR the bucket ended while the command ran; try again")
	n, err := rc.Exists(ctx, "h").Result()
	require.NoError(t, err) // EXISTS reads the names, and does not crash it
	assert.Equal(t, int64(1), n)

	crashes.Store(0)
	v, err = rc.HGet(ctx, "h", "a").Result()
	require.NoError(t, err)
	assert.Equal(t, "1", v)
}

// A new key is listed at once, by a KEYS in the same pipeline as the HSET
// that makes it, before that HSET's write is durable.
func TestNewKeyIsListedInTheSamePipeline(t *testing.T) {
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncAlways})
	r := ds.raw(t)
	r.send("HSET fresh f v\r\nKEYS *\r\nDBSIZE\r\nEXISTS fresh\r\n")
	for _, want := range []string{":1", "*1", "$5", "fresh", ":1", ":1"} {
		assert.Equal(t, want, r.line())
	}
}

// DEL's drops wait for the disk with the pipeline's other writes, and its
// reply, one for all its keys, leaves once every drop is durable; a drop
// the disk loses makes the reply an error in its own place, and the
// bucket, still stored, is listed and read again once the fault clears.
func TestDurableDelRepliesFollowItsDrops(t *testing.T) {
	ctx := context.Background()
	faults := &store.Faults{}
	dir := t.TempDir()
	ds := startDurable(t, dir, faultyAlways(faults))
	rc := ds.client(t)
	for _, k := range []string{"a", "b", "c", "kept", "kept2"} {
		require.NoError(t, rc.HSet(ctx, k, "f", k).Err())
	}

	cmds, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, "a", "b", "missing")
		p.HSet(ctx, "d", "f", "d")
		p.Del(ctx, "c", "d")
		p.Exists(ctx, "a", "b", "c", "d")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, int64(2), cmds[0].(*redis.IntCmd).Val())
	assert.Equal(t, int64(1), cmds[1].(*redis.IntCmd).Val())
	assert.Equal(t, int64(2), cmds[2].(*redis.IntCmd).Val())
	assert.Equal(t, int64(0), cmds[3].(*redis.IntCmd).Val())

	faults.FailSyncs(syscall.EIO)
	cmds, _ = rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, "kept", "missing", "kept2") // two drops lost, one reply
		p.Ping(ctx)
		return nil
	})
	require.Len(t, cmds, 2)
	require.Error(t, cmds[0].Err())
	assert.Contains(t, cmds[0].Err().Error(), "write failed")
	assert.Equal(t, "PONG", cmds[1].(*redis.StatusCmd).Val())

	faults.Clear()
	require.Eventually(t, func() bool { return rc.HSet(ctx, "probe", "f", "v").Err() == nil }, 10*time.Second, time.Millisecond)
	assert.Subset(t, rc.Keys(ctx, "*").Val(), []string{"kept", "kept2"}, "the lost drops left them stored, and listed")
	assert.Equal(t, "kept", rc.HGet(ctx, "kept", "f").Val())
	ds.stop()
	ds = startDurable(t, dir, store.Options{})
	assert.ElementsMatch(t, []string{"kept", "kept2", "probe"}, ds.client(t).Keys(ctx, "*").Val())
}

// A checkpoint that panics fails its save alone, as one that fails: SAVE
// answers the error and its client goes on, and BGSAVE's, on a goroutine
// of its own, does not end the process (a panic there is not recovered by
// the client's).
func TestCheckpointPanicFailsTheSaveAlone(t *testing.T) {
	ctx := context.Background()
	ds, pb := startFailingBackups(t)
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())
	pb.panics.Store(true)
	assert.EqualError(t, rc.Save(ctx).Err(), "ERR the checkpoint panicked: checkpoint: corrupted state")
	assert.Equal(t, "PONG", rc.Ping(ctx).Val(), "the client that sent SAVE is still served")
	require.Equal(t, "Background saving started", rc.BgSave(ctx).Val())
	require.Eventually(t, func() bool {
		p := rc.InfoMap(ctx, "persistence").Val()["Persistence"]
		return p["rdb_last_bgsave_status"] == "err" && p["rdb_bgsave_in_progress"] == "0"
	}, 10*time.Second, time.Millisecond, "the failed BGSAVE shows in INFO")
	pb.panics.Store(false)
	require.NoError(t, rc.Save(ctx).Err())
	assert.Equal(t, "v", rc.HGet(ctx, "h", "f").Val())
}

// panickyObserver panics when it observes HSET.
type panickyObserver struct{ discardObserver }

func (panickyObserver) ObserveCommand(_, cmd string, _ time.Duration, _ bool) {
	if cmd == "hset" {
		panic("observer")
	}
}

// An Observer that panics as it observes a write whose reply waited for
// the disk does not end the process: on the event loop nothing recovered
// it, and on a client's goroutine the write, left pending, was waited for
// again as the client closed (the store's count of waiters went negative).
func TestObserverPanicAfterTheDisk(t *testing.T) {
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncAlways}, func(c *Config) { c.Observer = panickyObserver{} })
	ctx := context.Background()
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "k", "f", "v").Err())
	require.NoError(t, rc.Ping(ctx).Err())
	assert.Equal(t, "v", ds.client(t).HGet(ctx, "k", "f").Val())
}

// clientsPanicObserver panics at every client's arrival and departure.
type clientsPanicObserver struct{ discardObserver }

func (clientsPanicObserver) ObserveClients(string, int) { panic("observer") }

// An Observer that panics as a client comes or goes ends nothing else:
// the accept loop (which held the server's lock), the event loop and the
// client's goroutine go on, and the server stops cleanly.
func TestObserverPanicOnClients(t *testing.T) {
	ts := start(t, Config{Observer: clientsPanicObserver{}})
	ctx := context.Background()
	for range 3 {
		rc := ts.client(t)
		require.NoError(t, rc.HSet(ctx, "k", "f", "v").Err())
		require.NoError(t, rc.Close())
	}
	assert.Equal(t, "v", ts.client(t).HGet(ctx, "k", "f").Val())
}
