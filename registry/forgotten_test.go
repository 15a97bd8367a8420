package registry

import (
	"context"
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
