package registry

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"
	"go.uber.org/goleak"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	waitFor = 10 * time.Second
	tick    = time.Millisecond
)

// tree is the seed's tree, wired as services.New wires it (services imports
// this package, so its tests cannot use it).
type tree struct {
	reg  *Registry
	ev   *events.Manager
	sup  *bucket.Supervisor
	rec  *recorder
	stop func()
}

func newTree(t testing.TB) *tree {
	t.Helper()
	return newTreeWith(t, nil, nil)
}

// newTreeWith is newTree whose registry publishes through wrap(manager)
// (nil: the manager itself) and logs to log (nil: nowhere).
func newTreeWith(t testing.TB, wrap func(*events.Manager) Publisher, log *slog.Logger) *tree {
	t.Helper()
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	var pub Publisher = ev
	if wrap != nil {
		pub = wrap(ev)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := New(Config{Buckets: sup, Events: pub, Logger: log, StopTimeout: 2 * time.Second})
	root := suture.New("test", suture.Spec{EventHook: func(suture.Event) {}})
	root.Add(ev)
	root.Add(sup)
	root.Add(reg)
	root.Add(reg.Drainer())

	rec := newRecorder()
	sub, err := ev.Subscribe(events.SubscribeOptions{Mailbox: 1 << 20, Name: "recorder"}, rec.handle)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	var once sync.Once
	tr := &tree{reg: reg, ev: ev, sup: sup, rec: rec}
	tr.stop = func() {
		once.Do(func() {
			cancel()
			<-errc
			<-sub.Done()
		})
	}
	t.Cleanup(tr.stop)
	return tr
}

// recorder keeps every event, and when each Exited was observed.
type recorder struct {
	mu       sync.Mutex
	all      []events.Event
	created  map[uint64]int
	exited   map[uint64][]events.Exited
	exitedAt map[uint64]uint64 // bucket ID -> observation number
	observed uint64
	changed  chan struct{}
}

func newRecorder() *recorder {
	return &recorder{
		created:  map[uint64]int{},
		exited:   map[uint64][]events.Exited{},
		exitedAt: map[uint64]uint64{},
		changed:  make(chan struct{}, 1),
	}
}

func (r *recorder) handle(ev events.Event) {
	r.mu.Lock()
	r.all = append(r.all, ev)
	switch e := ev.(type) {
	case events.Created:
		r.created[e.ID]++
	case events.Exited:
		r.exited[e.ID] = append(r.exited[e.ID], e)
		r.observed++
		r.exitedAt[e.ID] = r.observed
	}
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// observations returns how many Exited have been observed so far.
func (r *recorder) observations() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.observed
}

// exitedBefore reports whether the Exited of id was observed at or before
// observation number n.
func (r *recorder) exitedBefore(id, n uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.exitedAt[id]
	return ok && at <= n
}

func (r *recorder) exitsOf(id uint64) []events.Exited {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Exited(nil), r.exited[id]...)
}

func (r *recorder) createdCount(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.created[id]
}

func (r *recorder) events() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.all...)
}

// waitExit waits for the Exited of bucket id and returns it.
func (r *recorder) waitExit(t testing.TB, id uint64) events.Exited {
	t.Helper()
	var ex []events.Exited
	require.Eventually(t, func() bool { ex = r.exitsOf(id); return len(ex) > 0 }, waitFor, tick,
		"no Exited for bucket %d", id)
	return ex[0]
}

// Create right after a bucket crashed, before the registry's loop has
// forgotten it, follows the name: it returns a live bucket (a new one in
// memory; with a store, the crashed one's pairs back from the disk), never
// the ended one with a nil error. Before the fix, 200 rounds out of 200
// got the ended bucket.
func TestCreateRightAfterACrashReturnsALiveBucket(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, reg *Registry, durable bool) {
		for i := range 100 {
			b, err := reg.Create(ctx, "a")
			require.NoError(t, err)
			require.NoError(t, b.Put("k", []byte(fmt.Sprint(i))))
			_ = b.Update(func(*bucket.Tx) error { panic("boom") })
			b2, err := reg.Create(ctx, "a")
			require.NoError(t, err)
			require.NotSame(t, b, b2)
			v, err := b2.Get("k")
			if durable {
				require.NoError(t, err, "round %d", i)
				require.Equal(t, fmt.Sprint(i), string(v))
			} else {
				require.ErrorIs(t, err, bucket.ErrNotFound, "round %d: a new bucket", i)
			}
		}
	}
	t.Run("memory", func(t *testing.T) { check(t, newTree(t).reg, false) })
	t.Run("store", func(t *testing.T) {
		reg, _, _ := newDurableTree(t, openStoreT(t, t.TempDir()))
		check(t, reg, true)
	})
}
