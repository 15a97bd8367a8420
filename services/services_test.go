package services_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"
	"go.uber.org/goleak"

	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/services"
	"github.com/kvproject/kv/services/httpapi"
	"github.com/kvproject/kv/services/resp"
	"github.com/kvproject/kv/services/text"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	waitFor = 10 * time.Second
	tick    = time.Millisecond
)

// Acceptance 7: children start in order (events, buckets, registry), and
// stopping the root stops every bucket and returns.
func TestAcceptance7_ChildrenInOrderAndStopStopsEveryBucket(t *testing.T) {
	root := services.New(services.Config{})
	// The root holds exactly the three, in the seed's order.
	children := root.Children()
	require.Len(t, children, 3)
	assert.Same(t, root.Events(), children[0])
	assert.Same(t, root.Buckets(), children[1])
	assert.Same(t, root.Registry(), children[2])

	// Subscribed before the start, a subscriber sees every event; the
	// registry can be used the moment Serve is under way.
	var mu sync.Mutex
	var got []events.Event
	sub, err := root.Events().Subscribe(events.SubscribeOptions{Mailbox: 4096}, func(ev events.Event) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	const n = 100
	for i := range n {
		b, err := root.Registry().Create(ctx, string(rune('A'+i)))
		require.NoError(t, err)
		require.NoError(t, b.Put("k", []byte("v")))
	}
	require.Eventually(t, func() bool { return root.Buckets().Running() == n }, waitFor, tick)

	cancel()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(waitFor):
		t.Fatal("stopping the root did not return")
	}
	assert.Zero(t, root.Buckets().Running(), "every bucket stopped")
	assert.Zero(t, root.Registry().Len())
	<-sub.Done() // the manager closed it after the last Exited
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2*n, "a Created and an Exited for each bucket")
	for _, ev := range got[n:] {
		ex, ok := ev.(events.Exited)
		require.True(t, ok)
		assert.ErrorIs(t, ex.Reason, context.Canceled)
	}
}

// Two roots in one process share nothing.
func TestTwoRootsSideBySide(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := services.New(services.Config{}), services.New(services.Config{})
	ea, eb := a.ServeBackground(ctx), b.ServeBackground(ctx)

	ba, err := a.Registry().Create(ctx, "same-name")
	require.NoError(t, err)
	bb, err := b.Registry().Create(ctx, "same-name")
	require.NoError(t, err)
	assert.NotSame(t, ba, bb)
	require.NoError(t, ba.Put("k", []byte("a")))
	require.NoError(t, bb.Put("k", []byte("b")))
	va, _ := ba.Get("k")
	vb, _ := bb.Get("k")
	assert.Equal(t, "a", string(va))
	assert.Equal(t, "b", string(vb))

	require.NoError(t, a.Registry().Delete(ctx, "same-name"))
	_, ok := b.Registry().Lookup("same-name")
	assert.True(t, ok, "deleting in one tree leaves the other alone")
	cancel()
	<-ea
	<-eb
}

// A host adds the root to its own tree; stopping the host stops kv.
func TestEmbeddedInHostTree(t *testing.T) {
	host := suture.New("host", suture.Spec{EventHook: func(suture.Event) {}})
	root := services.New(services.Config{})
	host.Add(root)
	ctx, cancel := context.WithCancel(context.Background())
	errc := host.ServeBackground(ctx)

	b, err := root.Registry().Create(ctx, "embedded")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))
	cancel()
	<-errc
	<-b.Done()
	assert.ErrorIs(t, b.Err(), context.Canceled)
}

// A network front end added to the root after the registry can fail and be
// restarted by suture without touching the buckets.
func TestFailingListenerDoesNotTouchBuckets(t *testing.T) {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &flakyListener{fail: 3, served: make(chan int, 10)}
	root.Add(l)
	errc := root.ServeBackground(ctx)

	b, err := root.Registry().Create(ctx, "kept")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))
	for want := 1; want <= 4; want++ {
		require.Equal(t, want, <-l.served)
	}
	v, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
	got, ok := root.Registry().Lookup("kept")
	require.True(t, ok)
	assert.Same(t, b, got)
	cancel()
	<-errc
}

// flakyListener fails its first few runs, then serves until stopped.
type flakyListener struct {
	fail   int
	runs   int
	served chan int
}

func (l *flakyListener) Serve(ctx context.Context) error {
	l.runs++
	l.served <- l.runs
	if l.runs <= l.fail {
		return assert.AnError
	}
	<-ctx.Done()
	return ctx.Err()
}

// finisher stands for a front end with a command in flight when the tree
// stops: once its context ends it waits a moment (the end of the command),
// then writes to a bucket, and reports how that went.
type finisher struct {
	root    *services.Root
	started chan struct{}
	wrote   chan error
}

func (f *finisher) Serve(ctx context.Context) error {
	close(f.started)
	<-ctx.Done()
	b, ok := f.root.Registry().Lookup("inflight")
	if !ok {
		f.wrote <- assert.AnError
		return ctx.Err()
	}
	// The command takes a while; the bucket must not end meanwhile (it
	// would, had it been told to stop at the same time as this service).
	select {
	case <-b.Done():
		f.wrote <- fmt.Errorf("the bucket ended under a command in flight: %w", b.Err())
	case <-time.After(50 * time.Millisecond):
		f.wrote <- b.Put("last", []byte("write"))
	}
	return ctx.Err()
}

// Services added with Root.Add stop before the registry and the buckets,
// whether the root is served on its own or inside a host's tree: the
// command a front end is finishing still finds its bucket live.
func TestAddedServicesStopBeforeTheCore(t *testing.T) {
	for _, hosted := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "in a host tree"}[hosted], func(t *testing.T) {
			root := services.New(services.Config{})
			f := &finisher{root: root, started: make(chan struct{}), wrote: make(chan error, 1)}
			root.Add(f)
			ctx, cancel := context.WithCancel(context.Background())
			var errc <-chan error
			if hosted {
				host := suture.New("host", suture.Spec{EventHook: func(suture.Event) {}})
				host.Add(root)
				errc = host.ServeBackground(ctx)
			} else {
				errc = root.ServeBackground(ctx)
			}
			_, err := root.Registry().Create(ctx, "inflight")
			require.NoError(t, err)
			<-f.started
			cancel()
			require.NoError(t, <-f.wrote, "the in-flight write met a stopped bucket")
			err = <-errc
			assert.ErrorIs(t, err, context.Canceled)
			assert.Zero(t, root.Buckets().Running(), "every bucket stopped after it")
		})
	}
}

// As suture's, Root.ServeBackground returns once the tree runs: a service
// added before can be removed at once.
func TestServeBackgroundReturnsRunning(t *testing.T) {
	for range 20 {
		root := services.New(services.Config{StopTimeout: time.Second})
		tok := root.Add(&flakyListener{served: make(chan int, 1)})
		ctx, cancel := context.WithCancel(context.Background())
		errc := root.ServeBackground(ctx)
		require.NoError(t, root.RemoveAndWait(tok, 5*time.Second))
		cancel()
		assert.ErrorIs(t, <-errc, context.Canceled)
	}
}

// A root serves once: a second Serve (a host restarting it) returns an
// error that tells suture not to restart it, instead of running an empty
// tree.
func TestRootServesOnce(t *testing.T) {
	root := services.New(services.Config{StopTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	cancel()
	<-errc
	err := root.Serve(context.Background())
	require.ErrorIs(t, err, suture.ErrDoNotRestart)
	require.ErrorIs(t, <-root.ServeBackground(context.Background()), suture.ErrDoNotRestart)
}

// A service added with Add that stops only after FrontEndStopTimeout leaves
// nothing running once it has: the root stops without it, and no goroutine
// waits for its news afterwards (suture's RemoveAndWait, given a timeout,
// left one blocked for ever).
func TestLateStoppingServiceLeavesNothingBehind(t *testing.T) {
	root := services.New(services.Config{StopTimeout: 200 * time.Millisecond, FrontEndStopTimeout: 20 * time.Millisecond})
	late := &lateStopper{started: make(chan struct{}), finish: make(chan struct{}), ended: make(chan struct{})}
	root.Add(late)
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	<-late.started
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled) // without waiting for late
	close(late.finish)
	<-late.ended
	require.NoError(t, goleak.Find())
}

// lateStopper stops only when finish is closed.
type lateStopper struct{ started, finish, ended chan struct{} }

func (s *lateStopper) Serve(ctx context.Context) error {
	close(s.started)
	<-ctx.Done()
	<-s.finish
	close(s.ended)
	return ctx.Err()
}

// What Add wraps stays the host's: Services lists it, suture's events
// name it, and a supervisor added so gets the host's event hook.
func TestAddedServicesStayTheHosts(t *testing.T) {
	terminated := make(chan suture.EventServiceTerminate, 16)
	host := suture.New("host", suture.Spec{EventHook: func(e suture.Event) {
		if ev, ok := e.(suture.EventServiceTerminate); ok {
			select {
			case terminated <- ev:
			default:
			}
		}
	}})
	root := services.New(services.Config{StopTimeout: time.Second})
	host.Add(root)
	plain := &failsOnce{name: "plain"}
	root.Add(plain)
	child := suture.New("child", suture.Spec{})
	root.Add(child)
	inner := &failsOnce{name: "inner"}
	child.Add(inner)
	ctx, cancel := context.WithCancel(context.Background())
	errc := host.ServeBackground(ctx)
	defer func() {
		cancel()
		<-errc
	}()

	names := map[string]string{} // service name -> the supervisor that reported it
	require.Eventually(t, func() bool {
		for {
			select {
			case ev := <-terminated:
				names[ev.ServiceName] = ev.SupervisorName
			default:
				return len(names) == 2
			}
		}
	}, 10*time.Second, time.Millisecond)
	assert.Equal(t, map[string]string{"plain": "kv", "inner": "child"}, names, "each failure reached the host's hook, under its own name")
	assert.Contains(t, root.Services(), suture.Service(plain))
	assert.Contains(t, root.Services(), suture.Service(child))
}

// failsOnce fails its first run, then runs until stopped.
type failsOnce struct {
	name string
	runs atomic.Int32
}

func (f *failsOnce) String() string { return f.name }

func (f *failsOnce) Serve(ctx context.Context) error {
	if f.runs.Add(1) == 1 {
		return errors.New("fails once")
	}
	<-ctx.Done()
	return ctx.Err()
}

// A front end added to a root that stops before suture ever runs it still
// closes the listener its host opened for it: the port is free for the
// next tree. Before the fix, about one run in three left it open.
func TestUnservedFrontEndClosesItsListener(t *testing.T) {
	for name, newFrontEnd := range map[string]func(*services.Root, net.Listener) suture.Service{
		"text": func(r *services.Root, ln net.Listener) suture.Service {
			return text.New(text.Config{Listener: ln, Registry: r.Registry()})
		},
		"resp": func(r *services.Root, ln net.Listener) suture.Service {
			return resp.New(resp.Config{Listener: ln, Registry: r.Registry(), Events: r.Events()})
		},
		"http": func(r *services.Root, ln net.Listener) suture.Service {
			return httpapi.New(httpapi.Config{Listener: ln, Registry: r.Registry(), Events: r.Events()})
		},
	} {
		t.Run(name, func(t *testing.T) {
			for range 20 {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				root := services.New(services.Config{})
				root.Add(newFrontEnd(root, ln))
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_ = root.Serve(ctx)
				requireClosed(t, ln)
			}
		})
	}
}

// A root refused its data directory (another root serves on it) will never
// run its front ends: they close the listeners their host opened.
func TestRefusedRootClosesItsFrontEndsListener(t *testing.T) {
	data := busyDataDir(t)
	for _, serve := range []func(*services.Root) error{
		func(r *services.Root) error { return r.Serve(context.Background()) },
		func(r *services.Root) error { return <-r.ServeBackground(context.Background()) },
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		second := services.New(services.Config{DataDir: data})
		second.Add(text.New(text.Config{Listener: ln, Registry: second.Registry()}))
		require.ErrorIs(t, serve(second), services.ErrDataDirInUse)
		requireClosed(t, ln)
	}
}

func TestStopTimeoutBoundsTheWholeStop(t *testing.T) {
	for _, tc := range []struct {
		cfg  services.Config
		want time.Duration
	}{
		{services.Config{}, 31 * time.Second},
		{services.Config{StopTimeout: time.Second}, 4 * time.Second},
		{services.Config{StopTimeout: time.Second, FrontEndStopTimeout: 5 * time.Second}, 8 * time.Second},
	} {
		assert.Equal(t, tc.want, services.New(tc.cfg).StopTimeout(), "%+v", tc.cfg)
	}
}
