package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/store"
	"github.com/kvproject/kv/internal/testlog"
)

// countingStore counts the reads of a store; failList makes the next
// Buckets call fail.
type countingStore struct {
	*store.Store
	loads    atomic.Int64
	reads    atomic.Int64 // Has, Load and Buckets
	failList atomic.Bool
	failLoad atomic.Bool // every Load fails while set
}

func (s *countingStore) Load(name string) (map[string][]byte, bool, error) {
	s.loads.Add(1)
	s.reads.Add(1)
	if s.failLoad.Load() {
		return nil, false, fmt.Errorf("injected: %w", store.ErrWriteFailed)
	}
	return s.Store.Load(name)
}

func (s *countingStore) Has(name string) (bool, error) {
	s.reads.Add(1)
	return s.Store.Has(name)
}

func (s *countingStore) Buckets(fn func(string) error) error {
	s.reads.Add(1)
	if s.failList.CompareAndSwap(true, false) {
		return errors.New("injected: cannot list")
	}
	return s.Store.Buckets(fn)
}

func newDurableTree(t *testing.T, st Store) (*Registry, *bucket.Supervisor, func()) {
	t.Helper()
	return newDurableTreeWith(t, st, nil)
}

// newDurableTreeWith is newDurableTree whose registry publishes through
// wrap(manager) (nil: the manager itself).
func newDurableTreeWith(t *testing.T, st Store, wrap func(*events.Manager) Publisher) (*Registry, *bucket.Supervisor, func()) {
	t.Helper()
	reg, sup, _, stop := serveTreeOf(t, Config{Store: st}, wrap, nil)
	return reg, sup, stop
}

// serveTreeOf serves a tree around the registry New(cfg) makes, with
// cfg's Buckets, Events and Logger filled in, until the test ends or stop
// is called. The registry publishes through wrap(manager) (nil: the
// manager itself); before, if not nil, sees it before it serves (to set
// test hooks).
func serveTreeOf(t *testing.T, cfg Config, wrap func(*events.Manager) Publisher, before func(*Registry)) (reg *Registry, sup *bucket.Supervisor, ev *events.Manager, stop func()) {
	t.Helper()
	ev = events.New(events.Options{})
	sup = bucket.NewSupervisor(bucket.SupervisorOptions{})
	var pub Publisher = ev
	if wrap != nil {
		pub = wrap(ev)
	}
	cfg.Buckets, cfg.Events, cfg.Logger = sup, pub, slog.New(slog.DiscardHandler)
	reg = New(cfg)
	if before != nil {
		before(reg)
	}
	root := suture.New("test", suture.Spec{EventHook: func(suture.Event) {}})
	root.Add(ev)
	root.Add(sup)
	root.Add(reg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-errc }) }
	t.Cleanup(stop)
	return reg, sup, ev, stop
}

func openStoreT(t *testing.T, dir string) *countingStore {
	t.Helper()
	return openStoreWith(t, dir, store.Options{})
}

// openStoreWith is openStoreT with the store's options.
func openStoreWith(t *testing.T, dir string, opts store.Options) *countingStore {
	t.Helper()
	st, err := store.Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &countingStore{Store: st}
}

// Stored buckets cost no goroutine until their first use; concurrent first
// uses of one name share one load; Names lists them loaded or not.
func TestLazyLoading(t *testing.T) {
	dir := t.TempDir()
	st := openStoreT(t, dir)
	for _, name := range []string{"a", "b", "c"} {
		require.NoError(t, st.Apply(name, store.Put("k", []byte(name))))
	}
	reg, sup, _ := newDurableTree(t, st)
	assert.ElementsMatch(t, []string{"a", "b", "c"}, reg.Names())
	assert.Equal(t, 3, reg.Len())
	assert.Equal(t, 0, sup.Running())

	var wg sync.WaitGroup
	got := make([]*bucket.Bucket, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				got[i], _ = reg.Lookup("a")
			} else {
				got[i], _ = reg.Create(context.Background(), "a")
			}
		}()
	}
	wg.Wait()
	for _, b := range got {
		require.Same(t, got[0], b, "one bucket for every first use")
	}
	assert.Equal(t, int64(1), st.loads.Load(), "one load for all of them")
	v, err := got[0].Get("k")
	require.NoError(t, err)
	assert.Equal(t, "a", string(v))

	_, ok := reg.Lookup("missing")
	assert.False(t, ok)
	name := []byte("b")
	b, ok := reg.Lookup(string(name))
	require.True(t, ok)
	assert.Equal(t, "b", b.Name())
	require.Eventually(t, func() bool { return sup.Running() == 2 }, waitFor, tick)
}

// A crashed bucket keeps its data; a deleted one loses it, loaded or not.
func TestDurableCrashAndDelete(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("stored", store.Put("k", []byte("v"))))
	reg, _, _ := newDurableTree(t, st)
	ctx := context.Background()

	b, err := reg.Create(ctx, "live")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))
	_ = b.Update(func(*bucket.Tx) error { panic("crash") })
	<-reg.Forgotten(b)
	b2, ok := reg.Lookup("live")
	require.True(t, ok)
	require.NotSame(t, b, b2)
	v, err := b2.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))

	require.NoError(t, reg.Delete(ctx, "live"))
	require.NoError(t, reg.Delete(ctx, "stored"), "a stored bucket that is not loaded")
	assert.ErrorIs(t, reg.Delete(ctx, "stored"), ErrNotFound)
	assert.Empty(t, reg.Names())
	for _, name := range []string{"live", "stored"} {
		found, err := st.Has(name)
		require.NoError(t, err)
		assert.False(t, found, name)
	}
}

// Rename moves a bucket's pairs in the store too, replacing the target.
func TestDurableRename(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("src", store.Put("k", []byte("v"))))
	require.NoError(t, st.Apply("dst", store.Put("old", []byte("x"))))
	reg, _, _ := newDurableTree(t, st)
	ctx := context.Background()
	_, ok := reg.Lookup("dst")
	require.True(t, ok)
	require.NoError(t, reg.Rename(ctx, "src", "dst"), "src not loaded, dst live")
	b, ok := reg.Lookup("dst")
	require.True(t, ok)
	keys, err := b.Keys()
	require.NoError(t, err)
	assert.Equal(t, []string{"k"}, keys)
	pairs, _, err := st.Load("dst")
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, pairs)
	found, err := st.Has("src")
	require.NoError(t, err)
	assert.False(t, found)
	assert.True(t, errors.Is(reg.Rename(ctx, "src", "x"), ErrNotFound))
}

// FlushAll stops every bucket and empties the store.
func TestDurableFlushAll(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("stored", store.Put("k", []byte("v"))))
	reg, sup, _ := newDurableTree(t, st)
	ctx := context.Background()
	b, err := reg.Create(ctx, "live")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))
	require.NoError(t, reg.FlushAll(ctx))
	assert.Empty(t, reg.Names())
	assert.Equal(t, 0, sup.Running())
	_, ok := reg.Lookup("stored")
	assert.False(t, ok)
}

// The registry knows the names of the stored buckets in memory: a lookup of
// a name that was never stored, Names, Len and a Delete of an unknown name
// read nothing from the store, and the index follows every create, delete,
// rename and flush, as a registry started afresh on the same store sees it.
func TestStoredNamesIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStoreT(t, dir)
	reg, _, stop := newDurableTree(t, st)

	for _, name := range []string{"a", "b", "c", "d"} {
		b, err := reg.Create(ctx, name)
		require.NoError(t, err)
		require.NoError(t, b.Put("k", []byte(name)))
	}
	b, _ := reg.Lookup("b")
	b.Stop(errors.New("crash")) // ended, still stored
	require.Eventually(t, func() bool { _, live := reg.lookupLive("b"); return !live }, waitFor, tick)
	require.NoError(t, reg.Delete(ctx, "c"))
	require.NoError(t, reg.Rename(ctx, "d", "e"))
	require.NoError(t, reg.Rename(ctx, "a", "a"))

	reads := st.reads.Load()
	for range 100 {
		_, ok := reg.Lookup("never-stored")
		require.False(t, ok)
		_, ok, err := reg.LookupErr("c")
		require.NoError(t, err)
		require.False(t, ok)
	}
	_, err := reg.Create(ctx, "fresh") // known absent: created without a read
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a", "b", "e", "fresh"}, reg.Names())
	assert.Equal(t, 4, reg.Len())
	assert.ErrorIs(t, reg.Delete(ctx, "never-stored"), ErrNotFound)
	assert.Equal(t, reads, st.reads.Load(), "no read of the store")

	got, ok := reg.Lookup("b") // stored, not live: loaded from the store
	require.True(t, ok)
	v, err := got.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "b", string(v))
	assert.Greater(t, st.reads.Load(), reads)

	stored := func() []string {
		var names []string
		require.NoError(t, st.Store.Buckets(func(n string) error { names = append(names, n); return nil }))
		return names
	}
	assert.ElementsMatch(t, stored(), reg.Names(), "the index is the store's list")

	require.NoError(t, reg.FlushAll(ctx))
	assert.Empty(t, reg.Names())
	_, err = reg.Create(ctx, "after")
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"after"}, reg.Names())
	assert.ElementsMatch(t, stored(), reg.Names())
	stop()

	reg2, _, _ := newDurableTree(t, st)
	assert.ElementsMatch(t, []string{"after"}, reg2.Names())
}

// If the store cannot be listed when the registry starts, it has no index
// and reads the store for misses, Names and Len, which stay right.
func TestStoredNamesWithoutIndex(t *testing.T) {
	ctx := context.Background()
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.CreateBucket("old"))
	st.failList.Store(true)
	reg, _, _ := newDurableTree(t, st)
	require.Nil(t, reg.stored)

	_, err := reg.Create(ctx, "new")
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"old", "new"}, reg.Names())
	assert.Equal(t, 2, reg.Len())
	_, ok := reg.Lookup("missing")
	assert.False(t, ok)
	require.NoError(t, reg.Delete(ctx, "old"))
	assert.ErrorIs(t, reg.Delete(ctx, "old"), ErrNotFound)
	assert.ElementsMatch(t, []string{"new"}, reg.Names())
}

// Creates, deletes, renames, crashes and lookups of overlapping names from
// many goroutines leave the index of stored names equal to the store's own
// list.
func TestStoredNamesIndexUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	st := openStoreT(t, t.TempDir())
	reg, _, _ := newDurableTree(t, st)
	duration := time.Second
	if testing.Short() {
		duration = 200 * time.Millisecond
	}
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			name := func() string { return fmt.Sprintf("n%d", r.IntN(16)) }
			for time.Now().Before(deadline) {
				switch op := r.IntN(10); {
				case op < 3:
					if b, err := reg.Create(ctx, name()); err == nil {
						_ = b.Put("k", []byte("v"))
					}
				case op < 5:
					if err := reg.Delete(ctx, name()); err != nil {
						require.ErrorIs(t, err, ErrNotFound)
					}
				case op < 6:
					if err := reg.Rename(ctx, name(), name()); err != nil && !errors.Is(err, ErrNotFound) {
						require.NoError(t, err)
					}
				case op < 7:
					if b, ok := reg.Lookup(name()); ok {
						b.Stop(errors.New("crash"))
					}
				default:
					reg.Lookup(name())
				}
			}
		})
	}
	wg.Wait()
	var stored []string
	require.NoError(t, st.Store.Buckets(func(n string) error { stored = append(stored, n); return nil }))
	assert.ElementsMatch(t, stored, reg.Names())
	assert.Equal(t, len(stored), reg.Len())
	seen := scanAll(t, reg, 3)
	assert.Len(t, seen, len(stored), "Scan walks the stored names")
	for _, n := range stored {
		assert.Equal(t, 1, seen[n], n)
	}
	t.Logf("%d stored buckets at the end", len(stored))
}

// A write is committed (the engine shows it) but its disk write hangs; its
// bucket crashes (another caller's function panics) and the name is used
// again, which loads the bucket back from the store; then the write fails.
// The writer is told so, and the reloaded bucket must not serve the write:
// memory and disk agree.
func TestReloadedBucketNeverServesAWriteThatFailed(t *testing.T) {
	faults := &store.Faults{}
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	reg, _, _ := newDurableTree(t, st)

	b1, err := reg.Create(ctx, "d")
	require.NoError(t, err)
	require.NoError(t, b1.Put("kept", []byte("1")))

	resume := faults.Stall()
	faults.FailWrites(syscall.ENOSPC)
	putErr := make(chan error, 1)
	go func() { putErr <- b1.Put("failed", []byte("2")) }()
	require.Eventually(t, func() bool { _, err := b1.Get("failed"); return err == nil }, waitFor, tick)

	require.Error(t, b1.Update(func(*bucket.Tx) error { panic("another caller's function") }))
	<-reg.Forgotten(b1)
	// Load the bucket while the write hangs: the load must wait for the
	// write's fate (the delay only lets an old load answer too early).
	time.AfterFunc(20*time.Millisecond, resume)
	if b, _, err := reg.LookupErr("d"); err == nil {
		_, err := b.Get("failed")
		assert.ErrorIs(t, err, bucket.ErrNotFound, "a bucket loaded while the write was in flight")
	}
	require.ErrorIs(t, <-putErr, store.ErrWriteFailed, "the writer is told its write failed")

	faults.Clear()
	var b2 *bucket.Bucket
	require.Eventually(t, func() bool {
		b, ok, err := reg.LookupErr("d")
		b2 = b
		return ok && err == nil
	}, waitFor, tick)
	_, err = b2.Get("failed")
	assert.ErrorIs(t, err, bucket.ErrNotFound)
	v, err := b2.Get("kept")
	require.NoError(t, err)
	assert.Equal(t, "1", string(v))
}

// A durable rename is done once its move is queued: a registry that stops
// meanwhile (it starts no bucket any more) does not turn it into an error,
// and the stored names know the destination. (A rename that begins once
// the stop has begun is refused: see TestOperationsRefusedOnceTheStopBegan.)
func TestDurableRenameDoneWhileTheRegistryStops(t *testing.T) {
	st := &moveHookStore{countingStore: openStoreT(t, t.TempDir())}
	reg, _, _ := newDurableTree(t, st)
	a, err := reg.Create(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, a.Put("k", []byte("v")))
	var once sync.Once
	st.afterMove = func() { // in Rename, holding its claim
		once.Do(func() {
			reg.mu.Lock()
			reg.closed = true // as drain does when the tree stops
			reg.mu.Unlock()
		})
	}

	require.NoError(t, reg.Rename(ctx, "a", "b"))
	names, err := reg.NamesErr()
	require.NoError(t, err)
	assert.Equal(t, []string{"b"}, names)
	_, live := reg.lookupLive("b")
	assert.False(t, live, "no bucket starts once the stop has begun: b loads at its next use")
	pairs, found, err := st.Load("b")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, pairs)
}

// The same when the bucket supervisor has stopped first (suture stops a
// tree's children at once): the destination cannot start, and the rename,
// done on disk, still succeeds.
func TestDurableRenameDoneWhileTheBucketSupervisorStops(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	reg := New(Config{Buckets: sup, Events: ev, Logger: slog.New(slog.DiscardHandler), Store: st, StopTimeout: time.Second})
	root := suture.New("test", suture.Spec{EventHook: func(suture.Event) {}})
	root.Add(ev)
	root.Add(reg)
	rootCtx, stopRoot := context.WithCancel(context.Background())
	rootDone := root.ServeBackground(rootCtx)
	supCtx, stopSup := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() { defer close(supDone); _ = sup.Serve(supCtx) }()
	t.Cleanup(func() { stopRoot(); <-rootDone })

	a, err := reg.Create(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, a.Put("k", []byte("v")))
	stopSup()
	<-supDone

	require.NoError(t, reg.Rename(ctx, "a", "b"))
	pairs, found, err := st.Load("b")
	require.NoError(t, err)
	require.True(t, found, "the move is on disk")
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, pairs)
}

// While the store cannot load a bucket, every Lookup of it fails; the log
// gets one line a second, which counts the lines held back, not one line a
// lookup.
func TestLookupFailuresLogOncePerSecond(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("a", store.Put("k", []byte("v"))))
	var logs testlog.Buffer
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	reg := New(Config{Buckets: sup, Events: ev, Store: st,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(reg.release)
	clock := time.Unix(1e9, 0)
	reg.loadLog.now = func() time.Time { return clock }

	st.failLoad.Store(true)
	for range 50 {
		_, ok := reg.Lookup("a")
		require.False(t, ok)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "could not load"))
	clock = clock.Add(time.Second)
	_, ok := reg.Lookup("a")
	require.False(t, ok)
	assert.Equal(t, 2, strings.Count(logs.String(), "could not load"))
	assert.Contains(t, logs.String(), `lines_held_back=49`)
}

// A Lookup whose load fails logs the name it was given, which may alias a
// buffer the caller reuses (the RESP server passes one over its read
// buffer): the record must carry a copy, since a handler may keep a record
// (Record.Clone shares its strings) and format it later, after the
// caller's next request has overwritten those bytes.
func TestLookupFailureLogKeepsACopyOfTheName(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("a", store.Put("k", []byte("v"))))
	h := &keepingHandler{}
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	reg := New(Config{Buckets: sup, Events: ev, Store: st, Logger: slog.New(h)})
	t.Cleanup(reg.release)

	st.failLoad.Store(true)
	buf := []byte("a")
	_, ok := reg.Lookup(unsafe.String(&buf[0], len(buf)))
	require.False(t, ok)
	buf[0] = 'z' // the caller's buffer, reused for its next request

	records := h.kept()
	require.Len(t, records, 1)
	var logged string
	records[0].Attrs(func(a slog.Attr) bool {
		if a.Key == "bucket" {
			logged = a.Value.String()
		}
		return true
	})
	assert.Equal(t, "a", logged, "the logged name changed with the caller's buffer")
}

// keepingHandler keeps every record, to be read later, as a handler that
// formats or sends records on another goroutine does.
type keepingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *keepingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *keepingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *keepingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *keepingHandler) WithGroup(string) slog.Handler      { return h }

func (h *keepingHandler) kept() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.records)
}

// moveHookStore runs afterMove after each Move has queued its write.
type moveHookStore struct {
	*countingStore
	afterMove func()
}

func (s *moveHookStore) Move(from, to string, pairs map[string][]byte) (store.Waiter, error) {
	w, err := s.countingStore.Move(from, to, pairs)
	if err == nil && s.afterMove != nil {
		s.afterMove()
	}
	return w, err
}

// A RENAME does not store a write that failed: the pairs it takes from
// memory may hold a write still on its way to the disk. A write whose
// failure is not answered yet when the rename comes fails the rename (the
// store takes no write until it is answered); one still in flight when
// the rename's move is queued meets the same fate as the move, which is
// queued after it (bucket.TakeMoving): the rename's wait fails too, the
// bucket now named dst ends, and the disk, the names and the buckets
// loaded back hold what was acknowledged: src, and dst as it was.
func TestDurableRenameDoesNotStoreAFailedWrite(t *testing.T) {
	testMoveDoesNotStoreAFailedWrite(t, func(reg *Registry) (bucket.Pending, error) {
		return reg.RenameNoWait(ctx, "src", "dst")
	})
}

// A copy is read and queued in one step under its source's lock: a write
// of the source that fails takes the copy with it, and the source, the
// copy's target and the names are what the disk holds, as after a failed
// rename.
func TestDurableCopyDoesNotStoreAFailedWrite(t *testing.T) {
	testMoveDoesNotStoreAFailedWrite(t, func(reg *Registry) (bucket.Pending, error) {
		_, p, err := reg.CopyNoWait(ctx, "src", "dst", true)
		return p, err
	})
}

// testMoveDoesNotStoreAFailedWrite checks move, a rename or a copy of src
// onto dst, beside a write of src that fails.
func testMoveDoesNotStoreAFailedWrite(t *testing.T, move func(*Registry) (bucket.Pending, error)) {
	for _, tc := range []struct {
		name      string
		failFirst bool // the write fails before the rename begins
		dstBefore bool // dst exists before the rename
	}{
		{"failed before the rename", true, false},
		{"fails with the move", false, false},
		{"fails with the move onto a bucket", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults := &store.Faults{}
			st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Nanosecond})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			reg, _, _ := newDurableTree(t, &countingStore{Store: st})

			src, err := reg.Create(ctx, "src")
			require.NoError(t, err)
			require.NoError(t, src.Put("k", []byte("acked")))
			want := []string{"src"}
			if tc.dstBefore {
				dst, err := reg.Create(ctx, "dst")
				require.NoError(t, err)
				require.NoError(t, dst.Put("k", []byte("old")))
				want = append(want, "dst")
			}
			_, lost, err := src.SetNoWait("k", []byte("lost"))
			require.NoError(t, err)
			if tc.failFirst {
				faults.FailSyncs(syscall.EIO)
				require.ErrorIs(t, st.Apply("other", store.Put("x", []byte("1"))), store.ErrWriteFailed) // lost's group fails
				faults.Clear()
				p, err := move(reg)
				if err == nil {
					err = p.Commit()
				}
				require.ErrorIs(t, err, store.ErrWriteFailed)
				require.ErrorIs(t, lost.Wait(), store.ErrWriteFailed) // its writer is told
			} else {
				p, err := move(reg)
				require.NoError(t, err)
				faults.FailSyncs(syscall.EIO)
				require.ErrorIs(t, lost.Wait(), store.ErrWriteFailed) // commits both, and they fail together
				require.ErrorIs(t, p.Wait(), store.ErrWriteFailed)
				faults.Clear()
			}
			require.Eventually(t, func() bool { return st.Apply("other", store.Put("y", []byte("1"))) == nil }, waitFor, tick)

			require.NoError(t, st.Settle())
			pairs, found, err := st.Load("src")
			require.NoError(t, err)
			require.True(t, found)
			assert.Equal(t, "acked", string(pairs["k"]))
			pairs, found, err = st.Load("dst")
			require.NoError(t, err)
			assert.Equal(t, tc.dstBefore, found)
			if tc.dstBefore {
				assert.Equal(t, "old", string(pairs["k"]))
			}

			names, err := reg.NamesErr()
			require.NoError(t, err)
			assert.ElementsMatch(t, want, names, "the names are what the disk holds (other was written past the registry)")
			b, found, err := reg.LookupCurrent(ctx, "src")
			require.NoError(t, err)
			require.True(t, found)
			v, err := b.Get("k")
			require.NoError(t, err)
			assert.Equal(t, "acked", string(v))
			b, found, err = reg.LookupCurrent(ctx, "dst")
			require.NoError(t, err)
			require.Equal(t, tc.dstBefore, found, "dst is what the disk holds")
			if tc.dstBefore {
				v, err := b.Get("k")
				require.NoError(t, err)
				assert.Equal(t, "old", string(v))
			}
		})
	}
}

// A rename's move joins the writes queued around it, and a transaction's
// held group (registry.HoldWrites): it commits nothing on its own, and
// the transaction's writes before and after it reach the disk in one
// atomic write with it.
func TestDurableRenameJoinsTheHeldWrites(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	reg, _, _ := newDurableTree(t, st)
	src, err := reg.Create(ctx, "src")
	require.NoError(t, err)
	require.NoError(t, src.Put("k", []byte("v1")))

	release := reg.HoldWrites()
	_, before, err := src.SetNoWait("k", []byte("v2"))
	require.NoError(t, err)
	p, err := reg.RenameNoWait(ctx, "src", "dst")
	require.NoError(t, err)
	dst, ok := reg.Lookup("dst")
	require.True(t, ok)
	_, after, err := dst.SetNoWait("k2", []byte("w"))
	require.NoError(t, err)
	for _, name := range []string{"src", "dst"} {
		found, err := st.Has(name) // reads what is committed, without settling
		require.NoError(t, err)
		assert.Equal(t, name == "src", found, "%s: nothing of the transaction is committed", name)
	}
	release()
	for _, w := range []bucket.Pending{before, p, after} {
		require.NoError(t, w.Wait())
	}
	pairs, found, err := st.Load("dst")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, map[string][]byte{"k": []byte("v2"), "k2": []byte("w")}, pairs)
	found, err = st.Has("src")
	require.NoError(t, err)
	assert.False(t, found)
}

// A rename waits for no disk: it returns with its move queued while the
// disk hangs, and the names have switched; its wait returns once the disk
// is back and the move durable.
func TestDurableRenameNoWaitWaitsForNoDisk(t *testing.T) {
	faults := &store.Faults{}
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	reg, _, _ := newDurableTree(t, &countingStore{Store: st})
	for _, name := range []string{"src", "dst"} {
		b, err := reg.Create(ctx, name)
		require.NoError(t, err)
		require.NoError(t, b.Put("k", []byte(name)))
	}

	resume := faults.Stall()
	defer resume()
	p, err := reg.RenameNoWait(ctx, "src", "dst")
	require.NoError(t, err)
	names, err := reg.NamesErr()
	require.NoError(t, err)
	assert.Equal(t, []string{"dst"}, names)
	b, ok := reg.Lookup("dst")
	require.True(t, ok)
	v, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "src", string(v), "dst holds src's pairs at once")
	resume()
	require.NoError(t, p.Wait())
	pairs, found, err := st.Load("dst")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, map[string][]byte{"k": []byte("src")}, pairs)
}

// failFirstPairs fails the first write of pairs it is given (a full disk,
// say), whichever way it is asked to record them.
type failFirstPairs struct {
	*countingStore
	failed atomic.Bool
}

func (s *failFirstPairs) ApplyPairsNoWait(bucket string, ops ...store.Op) (store.Waiter, error) {
	if s.failed.CompareAndSwap(false, true) {
		return store.Waiter{}, fmt.Errorf("injected: %w", store.ErrWriteFailed)
	}
	return s.countingStore.ApplyPairsNoWait(bucket, ops...)
}

func (s *failFirstPairs) ApplyNoWait(bucket string, ops ...store.Op) (store.Waiter, error) {
	if s.failed.CompareAndSwap(false, true) {
		return store.Waiter{}, fmt.Errorf("injected: %w", store.ErrWriteFailed)
	}
	return s.countingStore.ApplyNoWait(bucket, ops...)
}

// CreateWith makes a bucket and its first write one: a write that fails
// leaves no bucket, in memory or on disk (HSET on a missing hash makes it
// with its field or not at all), and until the write is made no one finds
// the bucket.
func TestCreateWithIsOneWrite(t *testing.T) {
	put := func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) }

	t.Run("a failed first write leaves no bucket", func(t *testing.T) {
		st := &failFirstPairs{countingStore: openStoreT(t, t.TempDir())}
		reg, _, _ := newDurableTree(t, st)
		_, _, err := reg.CreateWith(ctx, "new", put)
		require.ErrorIs(t, err, store.ErrWriteFailed)
		_, ok := reg.Lookup("new")
		assert.False(t, ok)
		found, err := st.Has("new")
		require.NoError(t, err)
		assert.False(t, found, "the bucket is not on disk without its write")

		b, p, err := reg.CreateWith(ctx, "new", put) // the disk is back
		require.NoError(t, err)
		require.NoError(t, p.Wait())
		pairs, found, err := st.Load("new")
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, map[string][]byte{"k": []byte("v")}, pairs)
		v, err := b.Get("k")
		require.NoError(t, err)
		assert.Equal(t, "v", string(v))
	})

	t.Run("no one finds the bucket before its first write", func(t *testing.T) {
		reg, _, _ := newDurableTree(t, openStoreT(t, t.TempDir()))
		entered, release := make(chan struct{}), make(chan struct{})
		type result struct {
			p   bucket.Pending
			err error
		}
		done := make(chan result, 1)
		go func() {
			_, p, err := reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error {
				close(entered)
				<-release
				return put(tx)
			})
			done <- result{p, err}
		}()
		<-entered
		_, ok := reg.Lookup("new")
		assert.False(t, ok, "found before its first write")
		assert.NotContains(t, reg.Names(), "new")
		close(release)
		res := <-done
		require.NoError(t, res.err)
		require.NoError(t, res.p.Wait())
		b, ok := reg.Lookup("new")
		require.True(t, ok)
		v, err := b.Get("k")
		require.NoError(t, err)
		assert.Equal(t, "v", string(v))
	})
}

// A first write that fails once CreateWith has returned (its durability)
// leaves no trace: not on disk, and not in the index of stored names that
// KEYS, DBSIZE, SCAN and DEL read.
func TestFailedFirstWriteLeavesNoName(t *testing.T) {
	st, faults := openFaultyStore(t)
	reg, _, _ := newDurableTree(t, &countingStore{Store: st})

	b, p, err := reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
	require.NoError(t, err)
	faults.FailSyncs(syscall.EIO)
	require.ErrorIs(t, p.Wait(), store.ErrWriteFailed)
	faults.Clear()
	<-reg.Forgotten(b)
	waitRecovered(t, st)

	requireNoTraceOf(t, reg, st, "new")

	// A first write that succeeds makes the name stored and listed.
	_, p, err = reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
	require.NoError(t, err)
	require.NoError(t, p.Wait())
	assert.Contains(t, reg.Names(), "new")
	require.NoError(t, reg.Delete(ctx, "new"))
	assert.NotContains(t, reg.Names(), "new")
}

// A CreateWith refused because the registry has stopped stores nothing,
// as Create does not.
func TestCreateWithOnAStoppedRegistryStoresNothing(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	reg, _, _ := newDurableTree(t, st)
	reg.mu.Lock()
	reg.closed = true // as drain does when the tree stops
	reg.mu.Unlock()
	_, _, err := reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
	require.ErrorIs(t, err, ErrStopped)
	found, err := st.Has("new")
	require.NoError(t, err)
	assert.False(t, found)
}

// A first write that fails after its bucket was forgotten (another
// writer's failed write in the same commit ended it first) still takes
// the name out of the index.
func TestFailedFirstWriteAnsweredLastLeavesNoName(t *testing.T) {
	st, faults := openFaultyStore(t)
	reg, _, _ := newDurableTree(t, &countingStore{Store: st})

	b, first, err := reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("a", []byte("1")) })
	require.NoError(t, err)
	second, err := b.UpdateNoWait(func(tx *bucket.Tx) error { return tx.Put("b", []byte("2")) })
	require.NoError(t, err)
	faults.FailSyncs(syscall.EIO)
	require.ErrorIs(t, second.Wait(), store.ErrWriteFailed) // the bucket ends
	<-reg.Forgotten(b)
	require.ErrorIs(t, first.Wait(), store.ErrWriteFailed) // the marker is lost
	faults.Clear()
	waitRecovered(t, st)

	requireNoTraceOf(t, reg, st, "new")
}

// afterApplyStore runs onApply after each ApplyNoWait, and notes when a
// DropBucket has returned.
type afterApplyStore struct {
	*countingStore
	onApply func()
	dropped atomic.Bool
}

func (s *afterApplyStore) DropBucket(name string) error {
	defer s.dropped.Store(true)
	return s.countingStore.DropBucket(name)
}

func (s *afterApplyStore) ApplyNoWait(name string, ops ...store.Op) (store.Waiter, error) {
	w, err := s.countingStore.ApplyNoWait(name, ops...)
	if s.onApply != nil {
		s.onApply()
	}
	return w, err
}

// A CreateWith whose registry stops between its write and its bucket's
// registration reports ErrStopped, and leaves nothing on disk.
func TestCreateWithStoppedAfterItsWriteLeavesNothing(t *testing.T) {
	cs := openStoreT(t, t.TempDir())
	as := &afterApplyStore{countingStore: cs}
	reg, _, _ := newDurableTree(t, as)
	as.onApply = func() {
		reg.mu.Lock()
		reg.closed = true // as drain does when the tree stops
		reg.mu.Unlock()
	}
	_, _, err := reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
	require.ErrorIs(t, err, ErrStopped)
	pairs, found, err := cs.Load("new")
	require.NoError(t, err)
	assert.False(t, found, "a write reported failed stayed on disk: %q", pairs)
}

// downStarter is a bucket supervisor that has just stopped (the tree is
// stopping, the registry not yet): Start fails. before runs first, while
// the bucket is already registered and findable.
type downStarter struct{ before func(*bucket.Bucket) }

func (s downStarter) Start(b *bucket.Bucket, _ func(*bucket.Bucket, error)) error {
	if s.before != nil {
		s.before(b)
	}
	return bucket.ErrSupervisorStopped
}

func newDownRegistry(t *testing.T, st Store, before func(*bucket.Bucket)) (*Registry, *recorder) {
	t.Helper()
	ev := events.New(events.Options{})
	rec := newRecorder()
	sub, err := ev.Subscribe(events.SubscribeOptions{}, rec.handle)
	require.NoError(t, err)
	reg := New(Config{Buckets: downStarter{before: before}, Events: ev, Store: st, Logger: slog.New(slog.DiscardHandler)})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- reg.Serve(runCtx) }()
	t.Cleanup(func() { cancel(); <-done; sub.Close() })
	return reg, rec
}

// A create whose bucket was recorded but could not start (the bucket
// supervisor stopped first) reports the error, but does not drop the
// bucket: another client may have found it and written to it meanwhile,
// and been told its write was durable.
func TestBucketThatCouldNotStartKeepsOthersWrites(t *testing.T) {
	for _, viaCreateWith := range []bool{false, true} {
		t.Run(map[bool]string{false: "Create", true: "CreateWith"}[viaCreateWith], func(t *testing.T) {
			cs := openStoreT(t, t.TempDir())
			var reg *Registry
			acked := make(chan error, 1)
			reg, rec := newDownRegistry(t, cs, func(*bucket.Bucket) {
				// Meanwhile another client's HSET finds the registered bucket
				// (Lookup needs no claim) and is told its write is durable.
				done := make(chan struct{})
				go func() {
					defer close(done)
					b, ok := reg.Lookup("new")
					if !ok {
						acked <- assert.AnError
						return
					}
					_, err := b.Set("other", []byte("acked"))
					acked <- err
				}()
				<-done
			})
			var err error
			if viaCreateWith {
				_, _, err = reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
			} else {
				_, err = reg.Create(ctx, "new")
			}
			require.ErrorIs(t, err, bucket.ErrSupervisorStopped)
			require.NoError(t, <-acked)
			rec.waitExit(t, 1)
			assert.Equal(t, 1, rec.createdCount(1))
			assert.Len(t, rec.exitsOf(1), 1)

			pairs, found, err := cs.Load("new")
			require.NoError(t, err)
			assert.True(t, found, "an acknowledged write of another client was dropped")
			assert.Equal(t, "acked", string(pairs["other"]))
		})
	}
}

// dropFailStore makes the disk fail just as DropBucket runs, and runs
// beforeRegister after each ApplyNoWait.
type dropFailStore struct {
	*countingStore
	faults         *store.Faults
	beforeRegister func()
}

func (s *dropFailStore) ApplyNoWait(name string, ops ...store.Op) (store.Waiter, error) {
	w, err := s.countingStore.ApplyNoWait(name, ops...)
	if s.beforeRegister != nil {
		s.beforeRegister()
	}
	return w, err
}

func (s *dropFailStore) DropBucket(name string) error {
	s.faults.FailSyncs(syscall.EIO)
	return s.countingStore.DropBucket(name)
}

// A create refused after its write, whose undo could not drop it (the
// disk failed), leaves the name indexed: the bucket is still stored, and
// KEYS and Lookup must say so.
func TestUndoneCreateStaysIndexedIfItCouldNotBeDropped(t *testing.T) {
	st, faults := openFaultyStore(t)
	ds := &dropFailStore{countingStore: &countingStore{Store: st}, faults: faults}
	var reg *Registry
	reg, _ = newDownRegistry(t, ds, nil)
	ds.beforeRegister = func() {
		reg.mu.Lock()
		reg.closed = true // the tree stops between the write and the registration
		reg.mu.Unlock()
	}

	_, _, err := reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
	require.ErrorIs(t, err, ErrStopped)
	faults.Clear()
	waitRecovered(t, st)

	pairs, found, err := st.Load("new")
	require.NoError(t, err)
	require.True(t, found, "the undo could not drop it") // logged, as documented
	assert.Equal(t, "v", string(pairs["k"]))
	assert.Contains(t, reg.Names(), "new", "stored but not listed (KEYS/DBSIZE)")
	assert.True(t, reg.maybeStored("new"), "stored, but a miss (Lookup, CreateWith) takes it for absent")
}

// The registry's stop waits for the loads, creates, deletes and renames
// under way: once Serve has returned, another tree may serve on the store,
// and nothing of this one's may write to it any more (a create that the
// stop refused undoes its write, which could otherwise drop the next
// tree's data).
func TestStopWaitsForOperationsUnderWay(t *testing.T) {
	cs := openStoreT(t, t.TempDir())
	as := &afterApplyStore{countingStore: cs}
	reg, _, stop := newDurableTree(t, as)
	undone := make(chan bool, 1) // whether the create had undone its write when Serve returned
	returned := make(chan struct{})
	var once sync.Once
	as.onApply = func() { // in CreateWith, after its write, holding the name
		once.Do(func() {
			go func() {
				stop()
				undone <- as.dropped.Load()
				close(returned)
			}()
			require.Eventually(t, func() bool {
				reg.mu.RLock()
				defer reg.mu.RUnlock()
				return reg.closed
			}, waitFor, tick)
			// A registry that did not wait would return now: give it the
			// chance (a bounded wait, for a stop that waits never returns
			// before this create ends).
			select {
			case <-returned:
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
	_, _, err := reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
	require.ErrorIs(t, err, ErrStopped)
	assert.True(t, <-undone, "the registry stopped before the refused create had undone its write")
	has, err := cs.Has("new")
	require.NoError(t, err)
	assert.False(t, has)
}

// openFaultyStore opens a store under FsyncAlways whose disk faults can
// fail, and that tries to recover at every write.
func openFaultyStore(t *testing.T) (*store.Store, *store.Faults) {
	t.Helper()
	faults := &store.Faults{}
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Nanosecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st, faults
}

// waitRecovered waits until st, whose faults have cleared, takes writes
// again, and leaves no trace of its probe.
func waitRecovered(t *testing.T, st *store.Store) {
	t.Helper()
	require.Eventually(t, func() bool { return st.Apply("probe", store.Put("y", []byte("1"))) == nil }, waitFor, tick)
	require.NoError(t, st.DropBucket("probe"))
}

// requireNoTraceOf checks that bucket name, the only one, is neither
// stored nor listed (KEYS, DBSIZE, SCAN), and that DEL finds nothing.
func requireNoTraceOf(t *testing.T, reg *Registry, st *store.Store, name string) {
	t.Helper()
	found, err := st.Has(name)
	require.NoError(t, err)
	require.False(t, found, "stored")
	assert.NotContains(t, reg.Names(), name)
	assert.Equal(t, 0, reg.Len())
	names, _, err := reg.Scan(0, 100)
	require.NoError(t, err)
	assert.NotContains(t, names, name)
	assert.ErrorIs(t, reg.Delete(ctx, name), ErrNotFound)
}

// gatedDropAll is a store whose DropAll waits for release once entered;
// with passFirst, the first DropAll goes through (firstDone is closed once
// it is done), and the second is the one that waits.
type gatedDropAll struct {
	*countingStore
	passFirst bool
	calls     atomic.Int64
	firstDone chan struct{}
	entered   chan struct{}
	release   chan struct{}
}

func newGatedDropAll(st *countingStore, passFirst bool) *gatedDropAll {
	return &gatedDropAll{countingStore: st, passFirst: passFirst,
		firstDone: make(chan struct{}), entered: make(chan struct{}), release: make(chan struct{})}
}

func (s *gatedDropAll) DropAll() error {
	if s.passFirst && s.calls.Add(1) == 1 {
		defer close(s.firstDone)
		return s.countingStore.DropAll()
	}
	close(s.entered)
	<-s.release
	return s.countingStore.DropAll()
}

// A FlushAll under way when the tree stops holds the stop until it is done,
// as a load, delete or rename does: once Serve returns, nothing of this
// registry writes to the store, where the next tree may already serve.
func TestStopWaitsForTheFlushUnderWay(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	gate := newGatedDropAll(st, false)
	reg, _, stop := newDurableTree(t, gate)
	ctx := context.Background()
	_, err := reg.Create(ctx, "b")
	require.NoError(t, err)

	flushed := make(chan error, 1)
	go func() { flushed <- reg.FlushAll(ctx) }()
	<-gate.entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	require.Eventually(t, func() bool { // the stop has begun: drain runs
		reg.mu.RLock()
		defer reg.mu.RUnlock()
		return reg.closed
	}, waitFor, time.Millisecond)
	require.Never(t, isClosed(stopped), 300*time.Millisecond, 5*time.Millisecond, "the stop waits for the flush")
	close(gate.release)
	require.NoError(t, <-flushed)
	<-stopped
	require.ErrorIs(t, reg.FlushAll(ctx), ErrStopped, "none after the stop")
}

// A registry that has stopped no longer loads stored buckets: LookupErr and
// LookupCurrent say so with ErrStopped, as Create does, rather than report
// a stored bucket absent (with no error) while Names and Len still count
// it. A name that is not stored is absent, as before.
func TestLookupOfAStoredBucketOnceStoppedIsNotAbsent(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("stored", store.Put("k", []byte("v"))))
	reg, _, stop := newDurableTree(t, st)
	stop()
	require.Equal(t, []string{"stored"}, reg.Names())

	_, ok, err := reg.LookupErr("stored")
	assert.False(t, ok)
	assert.ErrorIs(t, err, ErrStopped, "LookupErr")
	_, ok, err = reg.LookupCurrent(context.Background(), "stored")
	assert.False(t, ok)
	assert.ErrorIs(t, err, ErrStopped, "LookupCurrent")
	_, ok = reg.Lookup("stored")
	assert.False(t, ok)

	_, ok, err = reg.LookupErr("never stored")
	assert.False(t, ok)
	assert.NoError(t, err)
}
