package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

// heldServe runs a registry's Serve as suture does, recovering its panics,
// but restarts a crashed Serve only when told (restart): between, no Serve
// runs, and only the end hooks forget buckets.
type heldServe struct {
	reg     *Registry
	ctx     context.Context
	restart chan struct{}
	crashed chan struct{} // a token each time a Serve panics
	done    chan error
}

func startHeldServe(ctx context.Context, reg *Registry) *heldServe {
	h := &heldServe{reg: reg, ctx: ctx, restart: make(chan struct{}), crashed: make(chan struct{}, 1), done: make(chan error, 1)}
	go func() {
		for {
			var panicked any
			var err error
			func() {
				defer func() { panicked = recover() }()
				err = reg.Serve(ctx)
			}()
			if panicked == nil {
				h.done <- err
				return
			}
			h.crashed <- struct{}{}
			select {
			case <-h.restart:
			case <-ctx.Done():
				h.done <- ctx.Err()
				return
			}
		}
	}()
	return h
}

// heldServeTree builds a registry (with st, if not nil), its bucket
// supervisor and event manager, serves them, the registry through
// startHeldServe, and records its events. stop stops the tree as suture
// would, and waits for the recorder to have every event.
func heldServeTree(t *testing.T, st Store) (reg *Registry, rec *recorder, h *heldServe, stop func()) {
	t.Helper()
	ev := events.New(events.Options{HoldTimeout: 4 * waitFor})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{Timeout: waitFor})
	reg = New(Config{Buckets: sup, Events: ev, StopTimeout: waitFor, Store: st})
	rec = newRecorder()
	sub, err := ev.Subscribe(events.SubscribeOptions{Mailbox: 1 << 20, Name: "recorder"}, rec.handle)
	require.NoError(t, err)
	evCtx, evCancel := context.WithCancel(context.Background())
	supCtx, supCancel := context.WithCancel(context.Background())
	regCtx, regCancel := context.WithCancel(context.Background())
	t.Cleanup(func() { regCancel(); supCancel(); evCancel() })
	evDone := make(chan error, 1)
	go func() { evDone <- ev.Serve(evCtx) }()
	supDone := make(chan error, 1)
	go func() { supDone <- sup.Serve(supCtx) }()
	h = startHeldServe(regCtx, reg)
	require.Eventually(t, func() bool { return reg.runs.Load() == 1 }, waitFor, tick)
	stop = func() {
		regCancel() // Serve drains, waiting for the buckets' ends
		supCancel()
		<-supDone
		require.ErrorIs(t, <-h.done, context.Canceled)
		evCancel()
		<-evDone
		<-sub.Done()
	}
	return reg, rec, h, stop
}

// The registry crashes again and again, and stays down (no Serve runs)
// until every worker has done a round of creates, deletes, crashes of
// buckets, renames and follows of crashed names: while it is down the end
// hooks alone forget buckets, so a notice left unhandled shows as a
// worker that never finishes its round. Afterwards every Created has
// exactly one Exited, after it.
func TestEndHooksStandInUnderCrashes(t *testing.T) {
	reg, rec, h, stopTree := heldServeTree(t, nil)

	const (
		workers = 4
		names   = 6
		rounds  = 40
		ops     = 8 // per worker and round
	)
	opCtx, opCancel := context.WithTimeout(context.Background(), 3*waitFor)
	defer opCancel()
	round := make([]chan struct{}, workers)  // the controller lets a worker do a round
	finished := make(chan struct{}, workers) // a worker finished its round
	for w := range workers {
		round[w] = make(chan struct{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*ops)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				<-round[w]
				for range ops {
					err := randomOp(opCtx, reg, r, names, 5)
					if err != nil && !errors.Is(err, bucket.ErrEnded) { // a bucket found as it ended
						errs <- err
					}
				}
				finished <- struct{}{}
			}
		})
	}
	for i := range rounds {
		// Crash the running Serve (a restarted one, after the first
		// round).
		reg.box.send(notice{crash: true})
		<-h.crashed
		if i%3 == 0 {
			skipACrashWhileDown(t, opCtx, reg)
		}
		for w := range workers {
			round[w] <- struct{}{}
		}
		for range workers {
			select {
			case <-finished:
			case <-opCtx.Done():
				t.Fatalf("round %d: a worker waits for ever while the registry is down", i)
			}
		}
		h.restart <- struct{}{}
		// Running again (a stand-in would skip the next crash notice).
		require.Eventually(t, func() bool { return reg.runs.Load() == uint64(i+2) && !reg.down.Load() }, waitFor, tick)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}

	stopTree()

	checkOneExitEach(t, rec)
}

// The same, with the workers never pausing: they run through the crashes
// and the restarts, and each crash keeps the registry down until every
// worker has finished two operations (one begun after the crash).
func TestEndHooksStandInThroughCrashesAndRestarts(t *testing.T) {
	t.Run("memory", func(t *testing.T) { standInThroughCrashes(t, nil, 100) })
	t.Run("store", func(t *testing.T) { standInThroughCrashes(t, openStoreT(t, t.TempDir()), 30) })
}

func standInThroughCrashes(t *testing.T, st Store, rounds int) {
	reg, rec, h, stopTree := heldServeTree(t, st)

	const (
		workers = 4
		names   = 6
	)
	opCtx, opCancel := context.WithTimeout(context.Background(), 3*waitFor)
	defer opCancel()
	var done [workers]atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 1<<16)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 11))
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := randomOp(opCtx, reg, r, names, 6)
				if err != nil && !errors.Is(err, bucket.ErrEnded) {
					errs <- err
				}
				done[w].Add(1)
			}
		})
	}
	for i := range rounds {
		reg.box.send(notice{crash: true})
		<-h.crashed
		if i%3 == 0 {
			skipACrashWhileDown(t, opCtx, reg)
		}
		var at [workers]int64
		for w := range workers {
			at[w] = done[w].Load()
		}
		require.Eventually(t, func() bool {
			for w := range workers {
				if done[w].Load() < at[w]+2 {
					return false
				}
			}
			return true
		}, 2*waitFor, tick, "round %d: a worker waits while the registry is down", i)
		h.restart <- struct{}{}
		require.Eventually(t, func() bool { return reg.runs.Load() == uint64(i+2) && !reg.down.Load() }, waitFor, tick)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}

	stopTree()
	checkOneExitEach(t, rec)
}

// checkOneExitEach checks that every bucket rec saw created was created
// once and has exactly one Exited, published after its Created.
func checkOneExitEach(t *testing.T, rec *recorder) {
	t.Helper()
	created := map[uint64]bool{}
	exits := map[uint64]int{}
	for _, e := range rec.events() {
		switch e := e.(type) {
		case events.Created:
			assert.False(t, created[e.ID], "bucket %d created twice", e.ID)
			created[e.ID] = true
		case events.Exited:
			assert.True(t, created[e.ID], "bucket %d exited before its Created", e.ID)
			exits[e.ID]++
		}
	}
	for id := range created {
		assert.Equal(t, 1, exits[id], "bucket %d has one Exited", id)
	}
	t.Logf("%d buckets", len(created))
}

// A tree held back by suture stops while buckets are created, deleted and
// crash: the end hooks and the Drainer share the work, every bucket has
// its one Exited, and no caller waits past the stop.
func TestEndHooksAndDrainerAtAStopWhileHeldBack(t *testing.T) {
	reg, rec, sub, _, _, cancel, errc := heldBackTree(t, time.Second, true)
	defer cancel()
	opCtx, opCancel := context.WithTimeout(context.Background(), waitFor)
	defer opCancel()
	var wg sync.WaitGroup
	var done atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 3))
			for i := 0; ; i++ {
				err := randomOp(opCtx, reg, r, 6, 4)
				require.NotErrorIs(t, err, context.DeadlineExceeded, "a caller waits past the stop")
				done.Add(1)
				if errors.Is(err, ErrStopped) && i > 50 {
					return
				}
			}
		})
	}
	require.Eventually(t, func() bool { return done.Load() > 400 }, waitFor, tick)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	wg.Wait()
	<-sub.Done()
	checkOneExitEach(t, rec)
}

// skipACrashWhileDown sends, while the registry is down, a notice whose
// handling panics, then crashes a bucket: its end hook skips the notice
// (or the one that holds the serving token takes both).
func skipACrashWhileDown(t *testing.T, ctx context.Context, reg *Registry) {
	t.Helper()
	reg.box.send(notice{crash: true})
	b, err := reg.Create(ctx, "crashed while down")
	require.NoError(t, err)
	require.Error(t, b.Update(func(*bucket.Tx) error { panic("crash a bucket") }))
	require.NoError(t, reg.WaitForgotten(ctx, b))
}

// randomOp runs one operation of the stand-in stress tests on one of
// names buckets, chosen by r among the first kinds of these: Create;
// Delete; crash a bucket (a panic in its Update), then LookupCurrent;
// Rename; CreateWith with a first write, waited for; FlushAll, one time in
// ten. ErrNotFound from Delete and Rename is no error: another worker got
// there first.
func randomOp(ctx context.Context, reg *Registry, r *rand.Rand, names, kinds int) error {
	name := func() string { return fmt.Sprintf("s%d", r.IntN(names)) }
	var err error
	switch r.IntN(kinds) {
	case 0:
		_, err = reg.Create(ctx, name())
	case 1:
		if err = reg.Delete(ctx, name()); errors.Is(err, ErrNotFound) {
			err = nil
		}
	case 2:
		if b, ok := reg.Lookup(name()); ok {
			_ = b.Update(func(*bucket.Tx) error { panic("crash a bucket") })
		}
		_, _, err = reg.LookupCurrent(ctx, name())
	case 3:
		if err = reg.Rename(ctx, name(), name()); errors.Is(err, ErrNotFound) {
			err = nil
		}
	case 4:
		var p bucket.Pending
		_, p, err = reg.CreateWith(ctx, name(), func(tx *bucket.Tx) error {
			tx.Put("k", []byte("v"))
			return nil
		})
		if err == nil {
			err = p.Wait()
		}
	case 5:
		if r.IntN(10) == 0 {
			err = reg.FlushAll(ctx)
		}
	}
	return err
}
