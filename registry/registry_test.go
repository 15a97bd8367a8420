package registry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

var ctx = context.Background()

// Acceptance 1: Lookup of an unknown name reports absent; after Create,
// Lookup returns that bucket, for the same caller at once.
func TestAcceptance1_LookupAbsentThenVisibleRightAfterCreate(t *testing.T) {
	tr := newTree(t)
	_, ok := tr.reg.Lookup("shopping")
	assert.False(t, ok)

	b, err := tr.reg.Create(ctx, "shopping")
	require.NoError(t, err)
	got, ok := tr.reg.Lookup("shopping") // no wait, no retry
	require.True(t, ok)
	assert.Same(t, b, got)
	assert.Equal(t, []string{"shopping"}, tr.reg.Names())
	assert.Equal(t, 1, tr.reg.Len())
}

// Acceptance 2: Create of an existing name returns the existing bucket and
// publishes no second Created.
func TestAcceptance2_CreateIsIdempotent(t *testing.T) {
	tr := newTree(t)
	first, err := tr.reg.Create(ctx, "shopping")
	require.NoError(t, err)
	for range 10 {
		again, err := tr.reg.Create(ctx, "shopping")
		require.NoError(t, err)
		assert.Same(t, first, again)
	}
	require.NoError(t, tr.reg.Delete(ctx, "shopping")) // a barrier: its Exited follows any Created
	tr.rec.waitExit(t, first.ID())
	assert.Equal(t, 1, tr.rec.createdCount(first.ID()))
	var created int
	for _, ev := range tr.rec.events() {
		if _, ok := ev.(events.Created); ok {
			created++
		}
	}
	assert.Equal(t, 1, created)
}

// Acceptance 3: a new bucket is empty; Put then Get returns the value;
// Delete returns the old value.
func TestAcceptance3_NewBucketIsEmptyPutGetDelete(t *testing.T) {
	tr := newTree(t)
	b, err := tr.reg.Create(ctx, "shopping")
	require.NoError(t, err)
	_, err = b.Get("milk")
	assert.ErrorIs(t, err, bucket.ErrNotFound)
	require.NoError(t, b.Put("milk", []byte("3")))
	v, err := b.Get("milk")
	require.NoError(t, err)
	assert.Equal(t, "3", string(v))
	old, err := b.Delete("milk")
	require.NoError(t, err)
	assert.Equal(t, "3", string(old))
	_, err = b.Get("milk")
	assert.ErrorIs(t, err, bucket.ErrNotFound)
}

// Acceptance 4: Created once per bucket, after the name is visible; Exited
// once per end, same identity, after the name is gone.
func TestAcceptance4_CreatedAfterVisibleExitedAfterGone(t *testing.T) {
	tr := newTree(t)
	// A subscriber that looks the name up the moment it hears of an event.
	type seen struct {
		ev    events.Event
		found bool
		id    uint64
	}
	got := make(chan seen, 10)
	sub, err := tr.ev.Subscribe(events.SubscribeOptions{}, func(ev events.Event) {
		b, ok := tr.reg.Lookup(ev.BucketName())
		s := seen{ev: ev, found: ok}
		if ok {
			s.id = b.ID()
		}
		got <- s
	})
	require.NoError(t, err)
	defer sub.Close()

	b, err := tr.reg.Create(ctx, "shopping")
	require.NoError(t, err)
	c := <-got
	require.IsType(t, events.Created{}, c.ev)
	assert.Equal(t, b.ID(), c.ev.BucketID())
	assert.True(t, c.found, "Created is published after the name is visible")
	assert.Equal(t, b.ID(), c.id)

	require.NoError(t, tr.reg.Delete(ctx, "shopping"))
	e := <-got
	require.IsType(t, events.Exited{}, e.ev)
	assert.Equal(t, b.ID(), e.ev.BucketID(), "Exited names the same instance")
	assert.Equal(t, "shopping", e.ev.BucketName())
	assert.False(t, e.found, "Exited is published after the name is gone")
	assert.Less(t, c.ev.Sequence(), e.ev.Sequence())

	// The name can be created again: a new instance, with its own events.
	b2, err := tr.reg.Create(ctx, "shopping")
	require.NoError(t, err)
	assert.NotEqual(t, b.ID(), b2.ID())
	c2 := <-got
	assert.Equal(t, b2.ID(), c2.ev.BucketID())
	tr.rec.waitExit(t, b.ID()) // the recorder, another subscriber, may lag
	assert.Len(t, tr.rec.exitsOf(b.ID()), 1)
}

// Acceptance 5: a bucket stopped normally, stopped with an error or crashed
// by a panic is forgotten, Exited says why, it is not restarted, and nothing
// else is disturbed.
func TestAcceptance5_BucketEndsNormallyWithErrorOrPanic(t *testing.T) {
	tr := newTree(t)
	bystander, err := tr.reg.Create(ctx, "bystander")
	require.NoError(t, err)
	require.NoError(t, bystander.Put("k", []byte("v")))
	errStop := errors.New("stopped on purpose")

	cases := []struct {
		name  string
		end   func(b *bucket.Bucket)
		check func(t *testing.T, reason error)
	}{
		{"normal", func(b *bucket.Bucket) { b.Stop(nil) },
			func(t *testing.T, r error) { assert.NoError(t, r) }},
		{"error", func(b *bucket.Bucket) { b.Stop(errStop) },
			func(t *testing.T, r error) { assert.ErrorIs(t, r, errStop) }},
		{"panic", func(b *bucket.Bucket) {
			err := b.Update(func(*bucket.Tx) error { panic("bad update") })
			require.Error(t, err)
		}, func(t *testing.T, r error) {
			var perr *bucket.PanicError
			require.ErrorAs(t, r, &perr)
			assert.Equal(t, "bad update", perr.Value)
			assert.NotEmpty(t, perr.Stack)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tr.reg.Create(ctx, tc.name)
			require.NoError(t, err)
			tc.end(b)
			ex := tr.rec.waitExit(t, b.ID())
			tc.check(t, ex.Reason)
			_, ok := tr.reg.Lookup(tc.name)
			assert.False(t, ok, "the registry forgot it")
			require.Eventually(t, func() bool { return tr.sup.Running() == 1 }, waitFor, tick,
				"only the bystander runs: the ended bucket was not restarted")

			v, err := bystander.Get("k")
			require.NoError(t, err)
			assert.Equal(t, "v", string(v))
			// The registry and the event manager still work.
			again, err := tr.reg.Create(ctx, tc.name)
			require.NoError(t, err)
			require.NoError(t, tr.reg.Delete(ctx, again.Name()))
		})
	}
}

// Acceptance 6: the registry survives every bucket's end; a crash of the
// registry itself loses no bucket, and it still learns when one ends.
func TestAcceptance6_RegistryCrashLosesNoBucket(t *testing.T) {
	tr := newTree(t)
	const n = 1000
	ids := map[string]uint64{}
	for i := range n {
		name := fmt.Sprintf("b%04d", i)
		b, err := tr.reg.Create(ctx, name)
		require.NoError(t, err)
		require.NoError(t, b.Put("k", []byte(name)))
		ids[name] = b.ID()
	}
	// Some buckets end before the crash: the registry survives those.
	for i := range 10 {
		require.NoError(t, tr.reg.Delete(ctx, fmt.Sprintf("b%04d", i)))
	}

	tr.reg.box.send(notice{crash: true})
	require.Eventually(t, func() bool { return tr.reg.runs.Load() == 2 }, waitFor, tick,
		"suture restarts the crashed registry")

	assert.Equal(t, n-10, tr.reg.Len())
	for i := 10; i < n; i++ {
		name := fmt.Sprintf("b%04d", i)
		b, ok := tr.reg.Lookup(name)
		require.True(t, ok, name)
		assert.Equal(t, ids[name], b.ID(), "the same instance, not a new one")
		v, err := b.Get("k")
		require.NoError(t, err)
		assert.Equal(t, name, string(v), "no data lost")
	}
	// Later ends are still reported.
	b, _ := tr.reg.Lookup("b0500")
	b.Stop(errors.New("after the crash"))
	ex := tr.rec.waitExit(t, b.ID())
	assert.EqualError(t, ex.Reason, "after the crash")
	_, ok := tr.reg.Lookup("b0500")
	assert.False(t, ok)
	require.NoError(t, tr.reg.Delete(ctx, "b0501"))
	assert.Equal(t, n-12, tr.reg.Len())
	// Suture starts the buckets' goroutines on its own time (with one CPU,
	// it may not have started them all yet).
	require.Eventually(t, func() bool { return tr.sup.Running() == n-12 }, waitFor, tick,
		"no orphan bucket, none lost")
}

// A bucket that ends while the crashed loop held its notice is found again
// by the restarted loop ("monitors existing entries").
func TestRestartedRegistryFindsBucketsThatEndedWhileItWasDown(t *testing.T) {
	tr := newTree(t)
	b, err := tr.reg.Create(ctx, "lost-notice")
	require.NoError(t, err)
	// Simulate the notice being lost with the crashed loop: end the bucket
	// without its hook (a bucket that never ran under the supervisor).
	orphan := bucket.New("orphan", 1<<40)
	tr.reg.mu.Lock()
	tr.reg.names["orphan"] = orphan
	tr.reg.refs[orphan.ID()] = ref{b: orphan, announced: true}
	tr.reg.mu.Unlock()
	orphan.Stop(errors.New("ended while the registry was down"))

	tr.reg.box.send(notice{crash: true})
	ex := tr.rec.waitExit(t, orphan.ID())
	assert.EqualError(t, ex.Reason, "ended while the registry was down")
	_, ok := tr.reg.Lookup("orphan")
	assert.False(t, ok)
	got, ok := tr.reg.Lookup("lost-notice")
	require.True(t, ok)
	assert.Same(t, b, got)
	// Found again, counted once.
	assert.Equal(t, EndCounts{Error: 1}, tr.reg.Ends())
}

func TestDelete(t *testing.T) {
	tr := newTree(t)
	err := tr.reg.Delete(ctx, "nothing")
	assert.ErrorIs(t, err, ErrNotFound)

	b, err := tr.reg.Create(ctx, "x")
	require.NoError(t, err)
	require.NoError(t, tr.reg.Delete(ctx, "x"))
	// Delete returned: the name is gone and Exited was published.
	_, ok := tr.reg.Lookup("x")
	assert.False(t, ok)
	assert.NoError(t, tr.rec.waitExit(t, b.ID()).Reason)
	_, err = b.Get("k")
	assert.ErrorIs(t, err, bucket.ErrEnded)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = tr.reg.Create(cancelled, "y")
	assert.ErrorIs(t, err, context.Canceled)
}

// A Delete, a FlushAll or a Rename whose context has already ended changes
// nothing and says so, as a Create does. Before, each stopped the bucket
// and returned the context's error: in memory its pairs were gone (a
// Delete that failed had deleted); with a store its Exited was published
// as by a delete, and its next use loaded it back (a FlushAll emptied the
// store).
func TestDeleteFlushAllAndRenameWithAnEndedContextChangeNothing(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "store"}[durable], func(t *testing.T) {
			var reg *Registry
			if durable {
				reg, _, _ = newDurableTree(t, openStoreT(t, t.TempDir()))
			} else {
				reg = newTree(t).reg
			}
			bg := context.Background()
			b, err := reg.Create(bg, "x")
			require.NoError(t, err)
			require.NoError(t, b.Put("k", []byte("v")))

			done, cancel := context.WithCancel(bg)
			cancel()
			require.ErrorIs(t, reg.Delete(done, "x"), context.Canceled)
			require.ErrorIs(t, reg.FlushAll(done), context.Canceled)
			require.ErrorIs(t, reg.Rename(done, "x", "y"), context.Canceled)
			v, err := b.Get("k")
			require.NoError(t, err, "an error, yet the bucket was stopped")
			assert.Equal(t, "v", string(v))
			assert.Equal(t, []string{"x"}, reg.Names())
		})
	}
}

func TestNames(t *testing.T) {
	tr := newTree(t)
	cases := []struct {
		name string
		ok   bool
	}{
		{"", false},
		{"a", true},
		{"with space", true},
		{"\x00binary\xff\r\n", true},
		{strings.Repeat("n", MaxNameLen), true},
		{strings.Repeat("n", MaxNameLen+1), false},
	}
	for _, tc := range cases {
		_, err := tr.reg.Create(ctx, tc.name)
		if tc.ok {
			require.NoError(t, err, "%q", tc.name)
			_, found := tr.reg.Lookup(tc.name)
			assert.True(t, found)
		} else {
			assert.ErrorIs(t, err, ErrInvalidName, "%q", tc.name)
		}
	}
}

func TestStoppedRegistryRefusesCreate(t *testing.T) {
	tr := newTree(t)
	b, err := tr.reg.Create(ctx, "live")
	require.NoError(t, err)
	tr.stop()
	ex := tr.rec.waitExit(t, b.ID())
	assert.ErrorIs(t, ex.Reason, context.Canceled, "shutdown's Exited carries the context's error")
	_, err = tr.reg.Create(ctx, "late")
	assert.ErrorIs(t, err, ErrStopped)
	assert.Zero(t, tr.reg.Len())
}

// failingStarter is a bucket supervisor that is not running.
type failingStarter struct{}

func (failingStarter) Start(*bucket.Bucket, func(*bucket.Bucket, error)) error {
	return bucket.ErrSupervisorStopped
}

func TestCreateWhenBucketSupervisorIsDown(t *testing.T) {
	ev := events.New(events.Options{})
	rec := newRecorder()
	sub, err := ev.Subscribe(events.SubscribeOptions{}, rec.handle)
	require.NoError(t, err)
	defer sub.Close()
	reg := New(Config{Buckets: failingStarter{}, Events: ev})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- reg.Serve(runCtx) }()
	defer func() { cancel(); <-done }()

	_, err = reg.Create(ctx, "x")
	require.ErrorIs(t, err, bucket.ErrSupervisorStopped)
	// The name was visible for an instant and announced: it is retracted
	// with an Exited, so every Created still has its Exited.
	ex := rec.waitExit(t, 1)
	assert.ErrorIs(t, ex.Reason, bucket.ErrSupervisorStopped)
	_, ok := reg.Lookup("x")
	assert.False(t, ok)
}

func TestNewPanicsWithoutDependencies(t *testing.T) {
	assert.Panics(t, func() { New(Config{}) })
}

func TestConcurrentCreateOfOneNameMakesOneBucket(t *testing.T) {
	tr := newTree(t)
	const n = 32
	got := make(chan *bucket.Bucket, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			b, err := tr.reg.Create(ctx, "contended")
			assert.NoError(t, err)
			got <- b
		}()
	}
	close(start)
	first := <-got
	for range n - 1 {
		assert.Same(t, first, <-got)
	}
	require.NoError(t, tr.reg.Delete(ctx, "contended"))
	tr.rec.waitExit(t, first.ID())
	assert.Equal(t, 1, tr.rec.createdCount(first.ID()))
	assert.Len(t, tr.rec.events(), 2)
}

// In memory, FLUSHALL and RENAME do not interleave: a rename that moves a
// bucket the flush has not reached yet to a name it has passed would keep
// pre-flush pairs alive after FlushAll returned. The flush is held midway
// (its loop at a deletion's Exited) while a rename of a bucket it has not
// deleted yet tries to run.
func TestFlushAllInMemoryIsNotOutlivedByARename(t *testing.T) {
	for attempt := range 20 {
		g := newGate(func(ev events.Event) bool {
			ex, ok := ev.(events.Exited)
			return ok && ex.Bucket != "a"
		})
		tr := newTreeWith(t, g.wrap, nil)
		a, err := tr.reg.Create(ctx, "a")
		require.NoError(t, err)
		require.NoError(t, a.Put("k", []byte("before flush")))
		for i := range 8 {
			_, err := tr.reg.Create(ctx, fmt.Sprintf("other%d", i))
			require.NoError(t, err)
		}
		flushed := make(chan error, 1)
		go func() { flushed <- tr.reg.FlushAll(ctx) }()
		<-g.held // the flush is deleting another bucket
		renamed := make(chan error, 1)
		if _, ok := tr.reg.Lookup("a"); ok {
			go func() { renamed <- tr.reg.Rename(ctx, "a", "b") }()
			// Give the rename its chance to run now (it must not): a
			// bounded wait, for a rename that waits for the flush never
			// shows.
			for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); runtime.Gosched() {
				if _, ok := tr.reg.Lookup("b"); ok {
					break
				}
			}
		} else {
			renamed <- ErrNotFound // the flush deleted a first: nothing to race
		}
		close(g.open)
		require.NoError(t, <-flushed)
		rerr := <-renamed
		if b, ok := tr.reg.Lookup("b"); ok {
			v, _ := b.Get("k")
			assert.NotEqual(t, "before flush", string(v), "attempt %d: the flush returned, and b holds a's pre-flush pair", attempt)
		}
		if rerr != nil {
			require.ErrorIs(t, rerr, ErrNotFound)
		}
		tr.stop()
	}
}

// In memory too, CreateWith makes the bucket with its first write or not
// at all.
func TestCreateWithInMemory(t *testing.T) {
	tr := newTree(t)
	failed := errors.New("refused")
	_, _, err := tr.reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return failed })
	require.ErrorIs(t, err, failed)
	_, ok := tr.reg.Lookup("new")
	assert.False(t, ok, "no bucket without its first write")

	b, p, err := tr.reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
	require.NoError(t, err)
	require.True(t, p.IsZero())
	got, ok := tr.reg.Lookup("new")
	require.True(t, ok)
	assert.Same(t, b, got)
	v, err := got.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))

	// On a bucket that exists, first is an ordinary update.
	_, _, err = tr.reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k2", []byte("v2")) })
	require.NoError(t, err)
	n, err := b.Len()
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

// In memory, CreateWith's first runs outside the registry's lock: it may
// use the registry, and a first that never returns (runtime.Goexit, as
// t.FailNow in a helper) leaves the registry usable.
func TestCreateWithFirstRunsOutsideTheRegistrysLock(t *testing.T) {
	tr := newTree(t)
	_, _, err := tr.reg.CreateWith(ctx, "new", func(tx *bucket.Tx) error {
		if _, ok := tr.reg.Lookup("other"); ok { // e.g. to copy from another hash
			return errors.New("unexpected")
		}
		return tx.Put("k", []byte("v"))
	})
	require.NoError(t, err)

	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_, _, _ = tr.reg.CreateWith(ctx, "gone", func(tx *bucket.Tx) error { runtime.Goexit(); return nil })
	}()
	<-exited
	_, ok := tr.reg.Lookup("gone")
	assert.False(t, ok)
	_, err = tr.reg.Create(ctx, "after")
	require.NoError(t, err)
}

// During a tree's stop, the bucket supervisor may stop before the registry
// closes (suture stops both at once): a Create in between is announced,
// refused a start, and retracted. Its Exited, like the other buckets' at
// that stop, carries the stop's context error: a shutdown, not an error.
func TestCreateRefusedByAStoppingSupervisorExitsWithTheStopsReason(t *testing.T) {
	ev := events.New(events.Options{})
	rec := newRecorder()
	sub, err := ev.Subscribe(events.SubscribeOptions{}, rec.handle)
	require.NoError(t, err)
	defer sub.Close()
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	reg := New(Config{Buckets: sup, Events: ev})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- reg.Serve(runCtx) }()
	defer func() { cancel(); <-done }()

	// The bucket supervisor's stop, ahead of the registry's.
	supCtx, supCancel := context.WithCancel(ctx)
	supCancel()
	require.Error(t, sup.Serve(supCtx))

	_, err = reg.Create(ctx, "x")
	require.ErrorIs(t, err, bucket.ErrSupervisorStopped)
	ex := rec.waitExit(t, 1)
	assert.ErrorIs(t, ex.Reason, context.Canceled)
	assert.Equal(t, bucket.EndShutdown, bucket.EndKind(ex.Reason))
}

// In memory, FlushAll ends every bucket before it waits for the first to
// be forgotten, so that the registry forgets them in batches rather than
// one round trip each (100,000 buckets flushed in 0.6 s, not 1 s): while
// the first Exited is held, every bucket has ended. Each then has exactly
// one Exited.
func TestFlushAllInMemoryEndsEveryBucketAtOnce(t *testing.T) {
	g := newGate(func(ev events.Event) bool { _, ok := ev.(events.Exited); return ok })
	tr := newTreeWith(t, g.wrap, nil)
	live := createBuckets(t, tr.reg, 100)
	flushed := make(chan error, 1)
	go func() { flushed <- tr.reg.FlushAll(ctx) }()
	<-g.held
	opened := sync.OnceFunc(func() { close(g.open) })
	t.Cleanup(opened)
	ended := func() (n int) {
		for _, b := range live {
			select {
			case <-b.Done():
				n++
			default:
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return ended() == len(live) }, waitFor, tick,
		"%d of %d buckets ended while the first Exited is held", ended(), len(live))
	opened()
	require.NoError(t, <-flushed)
	assert.Zero(t, tr.reg.Len())
	for _, b := range live {
		tr.rec.waitExit(t, b.ID()) // delivered to subscribers after FlushAll returns
		assert.Len(t, tr.rec.exitsOf(b.ID()), 1, "bucket %s", b.Name())
	}
}

// createBuckets creates n buckets, b0 to b<n-1>, and returns them.
func createBuckets(t *testing.T, reg *Registry, n int) []*bucket.Bucket {
	t.Helper()
	live := make([]*bucket.Bucket, n)
	for i := range live {
		b, err := reg.Create(ctx, fmt.Sprintf("b%d", i))
		require.NoError(t, err)
		live[i] = b
	}
	return live
}
