package registry

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkLookupParallel compares Lookup with its baseline, a map under a
// sync.RWMutex, in the same run.
func BenchmarkLookupParallel(b *testing.B) {
	const n = 1000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bucket:%04d", i)
	}
	b.Run("registry", func(b *testing.B) {
		tr := newTree(b)
		for _, name := range names {
			if _, err := tr.reg.Create(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
		parallel(b, func(i int) {
			if _, ok := tr.reg.Lookup(names[i%n]); !ok {
				b.Fatal("missing")
			}
		})
	})
	b.Run("rwmutex-map", func(b *testing.B) {
		var mu sync.RWMutex
		m := make(map[string]*int, n)
		for _, name := range names {
			m[name] = new(int)
		}
		parallel(b, func(i int) {
			mu.RLock()
			_, ok := m[names[i%n]]
			mu.RUnlock()
			if !ok {
				b.Fatal("missing")
			}
		})
	})
}

func parallel(b *testing.B, op func(i int)) {
	b.ReportAllocs()
	b.ResetTimer()
	var seed atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(1)) * 7919
		for pb.Next() {
			op(i)
			i++
		}
	})
}

// BenchmarkScanStep measures one SCAN step (COUNT 10) over 100,000 live
// buckets: Scan on the registry's ordered index against its baseline, a
// step cut from all the names at each call (ScanPage over Names: O(n), what
// Scan does without an index), in the same run.
func BenchmarkScanStep(b *testing.B) {
	const n, count = 100000, 10
	tr := newTree(b)
	for i := range n {
		if _, err := tr.reg.Create(ctx, fmt.Sprintf("bucket:%06d", i)); err != nil {
			b.Fatal(err)
		}
	}
	walk := func(b *testing.B, step func(cursor uint64) uint64) {
		b.ReportAllocs()
		cursor := uint64(0)
		for b.Loop() {
			cursor = step(cursor) // wraps to 0 at the end of an iteration
		}
	}
	b.Run("ordered-index", func(b *testing.B) {
		walk(b, func(cursor uint64) uint64 {
			_, next, err := tr.reg.Scan(cursor, count)
			if err != nil {
				b.Fatal(err)
			}
			return next
		})
	})
	b.Run("every-name-per-step", func(b *testing.B) {
		walk(b, func(cursor uint64) uint64 {
			_, next := ScanPage(tr.reg.Names(), cursor, count)
			return next
		})
	})
}
