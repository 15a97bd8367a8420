package services

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"
)

func TestSmoke(t *testing.T) {
	root := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	b, err := root.Registry().Create(ctx, "shopping")
	require.NoError(t, err)
	require.NoError(t, b.Put("milk", []byte("1")))
	v, err := b.Get("milk")
	require.NoError(t, err)
	require.Equal(t, "1", string(v))
	require.NoError(t, root.Registry().Delete(ctx, "shopping"))
	cancel()
	<-errc
}

func BenchmarkLifecycle(b *testing.B) {
	root := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	reg := root.Registry()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, err := reg.Create(ctx, "b")
		if err != nil {
			b.Fatal(err)
		}
		if err := reg.Delete(ctx, "b"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cancel()
	<-errc
}

type nop struct{}

func (nop) Serve(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func BenchmarkSutureAddRemove(b *testing.B) {
	sup := suture.NewSimple("x")
	ctx, cancel := context.WithCancel(context.Background())
	errc := sup.ServeBackground(ctx)
	b.ReportAllocs()
	for b.Loop() {
		tok := sup.Add(nop{})
		if err := sup.Remove(tok); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cancel()
	<-errc
}
