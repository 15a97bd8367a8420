package bucket

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// The baselines of the bucket benchmarks, measured in the same run:
// rwMap is the plainest safe map (same copy-in, copy-out contract as
// Bucket), agent is the literal Elixir Agent: one goroutine owns the map and
// serves requests sent over a channel.

type rwMap struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func (r *rwMap) Get(k string) ([]byte, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.m[k]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), v...), true
}

func (r *rwMap) Put(k string, v []byte) {
	v = append([]byte(nil), v...)
	r.mu.Lock()
	r.m[k] = v
	r.mu.Unlock()
}

type agentReq struct {
	key   string
	value []byte // nil for a get
	reply chan []byte
}

type agent struct{ reqs chan agentReq }

func startAgent(data map[string][]byte) (*agent, func()) {
	a := &agent{reqs: make(chan agentReq)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range a.reqs {
			if r.value != nil {
				data[r.key] = r.value
				r.reply <- nil
				continue
			}
			r.reply <- append([]byte(nil), data[r.key]...)
		}
	}()
	return a, func() { close(a.reqs); <-done }
}

func (a *agent) Get(k string, reply chan []byte) []byte {
	a.reqs <- agentReq{key: k, reply: reply}
	return <-reply
}

func (a *agent) Put(k string, v []byte, reply chan []byte) {
	a.reqs <- agentReq{key: k, value: append([]byte(nil), v...), reply: reply}
	<-reply
}

const benchKeys = 1024

var (
	keys = func() []string {
		k := make([]string, benchKeys)
		for i := range k {
			k[i] = fmt.Sprintf("key:%06d", i)
		}
		return k
	}()
	value = []byte("a small value!!!") // 16 bytes
)

func loaded() map[string][]byte {
	m := make(map[string][]byte, benchKeys)
	for _, k := range keys {
		m[k] = append([]byte(nil), value...)
	}
	return m
}

// worker is one benchmark goroutine's own state.
type worker struct {
	reply chan []byte
	buf   []byte
}

func newWorker() *worker { return &worker{reply: make(chan []byte), buf: make([]byte, 0, 64)} }

// run runs op serially or in parallel, each goroutine walking the keys from
// its own offset.
func run(b *testing.B, parallel bool, op func(i int, w *worker)) {
	b.ReportAllocs()
	if !parallel {
		w := newWorker()
		i := 0
		for b.Loop() {
			op(i, w)
			i++
		}
		return
	}
	var seed sync.Mutex
	next := 0
	b.RunParallel(func(pb *testing.PB) {
		seed.Lock()
		i := next * 97
		next++
		seed.Unlock()
		w := newWorker()
		for pb.Next() {
			op(i, w)
			i++
		}
	})
}

func benchmarkGet(b *testing.B, parallel bool) {
	b.Run("bucket", func(b *testing.B) {
		bk := New("bench", 1)
		bk.data = loaded()
		run(b, parallel, func(i int, _ *worker) {
			if _, err := bk.Get(keys[i%benchKeys]); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("bucket-append", func(b *testing.B) {
		bk := New("bench", 1)
		bk.data = loaded()
		run(b, parallel, func(i int, w *worker) {
			var err error
			if w.buf, err = bk.AppendValue(w.buf[:0], keys[i%benchKeys]); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("rwmutex-map", func(b *testing.B) {
		m := &rwMap{m: loaded()}
		run(b, parallel, func(i int, _ *worker) {
			if _, ok := m.Get(keys[i%benchKeys]); !ok {
				b.Fatal("missing")
			}
		})
	})
	b.Run("channel-agent", func(b *testing.B) {
		a, stop := startAgent(loaded())
		defer stop()
		run(b, parallel, func(i int, w *worker) {
			a.Get(keys[i%benchKeys], w.reply)
		})
	})
}

func benchmarkPut(b *testing.B, parallel bool) {
	b.Run("bucket", func(b *testing.B) {
		bk := New("bench", 1)
		bk.data = loaded()
		run(b, parallel, func(i int, _ *worker) {
			if err := bk.Put(keys[i%benchKeys], value); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("rwmutex-map", func(b *testing.B) {
		m := &rwMap{m: loaded()}
		run(b, parallel, func(i int, _ *worker) { m.Put(keys[i%benchKeys], value) })
	})
	b.Run("channel-agent", func(b *testing.B) {
		a, stop := startAgent(loaded())
		defer stop()
		run(b, parallel, func(i int, w *worker) { a.Put(keys[i%benchKeys], value, w.reply) })
	})
}

func BenchmarkGet(b *testing.B)         { benchmarkGet(b, false) }
func BenchmarkGetParallel(b *testing.B) { benchmarkGet(b, true) }
func BenchmarkPut(b *testing.B)         { benchmarkPut(b, false) }
func BenchmarkPutParallel(b *testing.B) { benchmarkPut(b, true) }

// BenchmarkAddWhileScanning adds keys to a large bucket that is being
// scanned (an HSCAN step after every 100 additions): the cost of keeping
// its keys in scan order, per added key.
func BenchmarkAddWhileScanning(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			bk, _ := bucketWith(b, n)
			scanStep(b, bk, 0, 10)
			v := []byte("v")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := bk.Put("added:"+strconv.Itoa(i), v); err != nil {
					b.Fatal(err)
				}
				i++
				if i%100 == 0 {
					scanStep(b, bk, 0, 10)
				}
			}
		})
	}
}
