package services_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/services"
)

// serveRoot runs a fresh tree for the length of a benchmark.
func serveRoot(b *testing.B) *services.Root {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	b.Cleanup(func() { cancel(); <-errc })
	return root
}

// nop is the trivial service of the lifecycle baseline.
type nop struct{}

func (nop) Serve(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

// BenchmarkLifecycle measures a bucket's whole life, Create then Delete
// (which returns once the registry has forgotten it and published Exited),
// against its baseline in the same run: suture's Add then Remove of a
// trivial service. Each op is one bucket start.
func BenchmarkLifecycle(b *testing.B) {
	for _, par := range []bool{false, true} {
		mode := "serial"
		if par {
			mode = "parallel"
		}
		b.Run("kv-create-delete/"+mode, func(b *testing.B) {
			reg := serveRoot(b).Registry()
			ctx := context.Background()
			each(b, par, func(i int64) {
				name := fmt.Sprintf("b%d", i)
				if _, err := reg.Create(ctx, name); err != nil {
					b.Fatal(err)
				}
				if err := reg.Delete(ctx, name); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run("suture-add-remove/"+mode, func(b *testing.B) {
			sup := suture.New("baseline", suture.Spec{EventHook: func(suture.Event) {}})
			ctx, cancel := context.WithCancel(context.Background())
			errc := sup.ServeBackground(ctx)
			defer func() { cancel(); <-errc }()
			each(b, par, func(int64) {
				if err := sup.Remove(sup.Add(nop{})); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
	// The same, with a subscriber that never reads: Create must not slow
	// down behind it.
	b.Run("kv-create-delete/stuck-subscriber", func(b *testing.B) {
		root := serveRoot(b)
		release := make(chan struct{})
		sub, err := root.Events().Subscribe(events.SubscribeOptions{Mailbox: 16}, func(events.Event) { <-release })
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { close(release); sub.Close() })
		reg, ctx := root.Registry(), context.Background()
		each(b, false, func(i int64) {
			name := fmt.Sprintf("b%d", i)
			if _, err := reg.Create(ctx, name); err != nil {
				b.Fatal(err)
			}
			if err := reg.Delete(ctx, name); err != nil {
				b.Fatal(err)
			}
		})
	})
}

func each(b *testing.B, parallel bool, op func(i int64)) {
	b.ReportAllocs()
	b.ResetTimer()
	var n atomic.Int64
	if !parallel {
		for b.Loop() {
			op(n.Add(1))
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				op(n.Add(1))
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "starts/s")
}

// memInUse is heap plus goroutine stacks, after a full collection.
func memInUse() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

// BenchmarkMemory reports the bytes one empty bucket costs (100,000 live
// buckets, each a supervised goroutine) and one small key (1,000,000 keys of
// 11 bytes with 8-byte values, over 1,000 buckets). Run it with
// -benchtime=1x.
func BenchmarkMemory(b *testing.B) {
	b.Run("empty-bucket", func(b *testing.B) {
		const n = 100_000
		for b.Loop() {
			root := services.New(services.Config{})
			ctx, cancel := context.WithCancel(context.Background())
			errc := root.ServeBackground(ctx)
			heap0, stack0 := memInUse()
			for i := range n {
				if _, err := root.Registry().Create(ctx, fmt.Sprintf("bucket:%06d", i)); err != nil {
					b.Fatal(err)
				}
			}
			for root.Buckets().Running() < n {
				runtime.Gosched()
			}
			heap1, stack1 := memInUse()
			b.ReportMetric(float64(heap1-heap0)/n, "heap-B/bucket")
			b.ReportMetric(float64(stack1-stack0)/n, "stack-B/bucket")
			b.ReportMetric(float64(heap1+stack1-heap0-stack0)/n, "B/bucket")
			cancel()
			<-errc
		}
	})
	b.Run("small-key", func(b *testing.B) {
		const buckets, keys = 1_000, 1_000_000
		for b.Loop() {
			root := services.New(services.Config{})
			ctx, cancel := context.WithCancel(context.Background())
			errc := root.ServeBackground(ctx)
			var bs []interface {
				Put(string, []byte) error
			}
			for i := range buckets {
				bk, err := root.Registry().Create(ctx, fmt.Sprintf("bucket:%04d", i))
				if err != nil {
					b.Fatal(err)
				}
				bs = append(bs, bk)
			}
			heap0, _ := memInUse()
			val := []byte("12345678")
			for i := range keys {
				if err := bs[i%buckets].Put(fmt.Sprintf("key:%07d", i), val); err != nil {
					b.Fatal(err)
				}
			}
			heap1, _ := memInUse()
			b.ReportMetric(float64(heap1-heap0)/keys, "B/key")
			cancel()
			<-errc
		}
	})
}

// BenchmarkStop measures stopping a tree that holds n live buckets, from
// the cancel to the root's return (every bucket ended, forgotten, its
// Exited published), against its baseline in the same run: stopping a
// suture supervisor with n trivial services. It reports the time per
// bucket; run it with -benchtime=1x, as each op builds n buckets first.
func BenchmarkStop(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 300_000} {
		b.Run(fmt.Sprintf("kv/%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				root := services.New(services.Config{})
				ctx, cancel := context.WithCancel(context.Background())
				errc := root.ServeBackground(ctx)
				for i := range n {
					if _, err := root.Registry().Create(ctx, fmt.Sprintf("b%d", i)); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				cancel()
				<-errc
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/bucket")
		})
		b.Run(fmt.Sprintf("suture/%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				sup := suture.New("baseline", suture.Spec{EventHook: func(suture.Event) {}})
				ctx, cancel := context.WithCancel(context.Background())
				errc := sup.ServeBackground(ctx)
				for range n {
					sup.Add(nop{})
				}
				b.StartTimer()
				cancel()
				<-errc
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/bucket")
		})
	}
}

// BenchmarkFlushAll measures FlushAll of n live buckets, from the call to
// its return (every bucket stopped, forgotten, its Exited published), in
// memory and with a store, against the baseline of BenchmarkStop: a stop
// of the tree with as many. It reports the time per bucket; run it with
// -benchtime=1x, as each op builds n buckets first.
func BenchmarkFlushAll(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		for _, mode := range []string{"memory", "store"} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				cfg := services.Config{}
				if mode == "store" {
					dd, err := services.OpenDataDir(b.TempDir(), services.DataDirOptions{Fsync: services.FsyncNo})
					if err != nil {
						b.Fatal(err)
					}
					cfg.DataDir = dd
				}
				root := services.New(cfg)
				ctx, cancel := context.WithCancel(context.Background())
				errc := root.ServeBackground(ctx)
				defer func() {
					cancel()
					<-errc
					if cfg.DataDir != nil {
						if err := cfg.DataDir.Close(); err != nil {
							b.Error(err)
						}
					}
				}()
				reg := root.Registry()
				for range b.N {
					b.StopTimer()
					for i := range n {
						if _, err := reg.Create(ctx, fmt.Sprintf("b%d", i)); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					if err := reg.FlushAll(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/bucket")
			})
		}
	}
}
