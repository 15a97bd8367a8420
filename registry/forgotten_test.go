package registry

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

func TestForgotten(t *testing.T) {
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	r := New(Config{Buckets: sup, Events: ev})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{}, 3)
	for _, svc := range []interface{ Serve(context.Context) error }{ev, sup, r} {
		go func() { _ = svc.Serve(ctx); done <- struct{}{} }()
	}

	b, err := r.Create(ctx, "f")
	require.NoError(t, err)
	gone := r.Forgotten(b)
	select {
	case <-gone:
		t.Fatal("closed while the bucket lives")
	default:
	}
	b.Stop(nil)
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("not forgotten")
	}
	_, ok := r.Lookup("f")
	require.False(t, ok)
	select {
	case <-r.Forgotten(b): // already forgotten: closed at once
	default:
		t.Fatal("Forgotten of a forgotten bucket is not closed")
	}
	select {
	case <-r.Forgotten(bucket.New("never", 999)):
	default:
		t.Fatal("Forgotten of an unknown bucket is not closed")
	}
	cancel()
	for range 3 {
		<-done
	}
}

// WaitForgotten returns once the bucket is forgotten; with ctx's error if
// ctx ends first; and with ErrStopped once the registry has stopped
// without forgetting it, rather than wait for ever.
func TestWaitForgotten(t *testing.T) {
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	r := New(Config{Buckets: sup, Events: ev, StopTimeout: 50 * time.Millisecond})
	// A bucket whose end never reaches the registry (it never ran under
	// the supervisor, whose hook would report it).
	orphan := bucket.New("orphan", 1<<40)
	r.mu.Lock()
	r.names["orphan"] = orphan
	r.refs[orphan.ID()] = ref{b: orphan, announced: true}
	r.mu.Unlock()
	orphan.Stop(nil)

	short, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, r.WaitForgotten(short, orphan), context.Canceled)

	waited := make(chan error, 1)
	go func() { waited <- r.WaitForgotten(context.Background(), orphan) }()
	r.Drain() // never served: it drains, and gives up on the orphan after StopTimeout
	require.ErrorIs(t, <-waited, ErrStopped)
	require.NoError(t, r.WaitForgotten(context.Background(), bucket.New("never", 999)),
		"a bucket the registry never knew is forgotten already")
}

// Forgotten is not closed while the bucket's Exited is being published,
// although the bucket is out of the tables already: a Delete, a rename or
// a writer that waits on it goes on only once the Exited is out, so that
// the events of a name stay in order.
func TestForgottenWaitsForTheExitedBeingPublished(t *testing.T) {
	gate := newGate(func(ev events.Event) bool {
		e, ok := ev.(events.Exited)
		return ok && e.Bucket == "k"
	})
	tr := newTreeWith(t, gate.wrap, nil)
	b, err := tr.reg.Create(ctx, "k")
	require.NoError(t, err)
	b.Stop(nil)
	<-gate.held // out of the tables, its Exited held
	open := sync.OnceFunc(func() { close(gate.open) })
	defer open() // and so the tree can stop if the test fails
	_, found := tr.reg.Lookup("k")
	require.False(t, found, "out of the tables")

	gone := tr.reg.Forgotten(b)
	select {
	case <-gone:
		t.Fatal("forgotten before its Exited is published")
	default:
	}
	open()
	select {
	case <-gone:
	case <-time.After(waitFor):
		t.Fatal("never forgotten")
	}
	require.Eventually(t, func() bool {
		tr.rec.mu.Lock()
		defer tr.rec.mu.Unlock()
		return len(tr.rec.exited[b.ID()]) == 1
	}, waitFor, tick, "the Exited is out")
}
