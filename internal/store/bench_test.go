package store

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
)

// BenchmarkApply measures one put (16-byte key, 32-byte value) per Apply,
// under each policy, from one goroutine and from many (parallel: pebble's
// group commit lets concurrent writers share one sync).
func BenchmarkApply(b *testing.B) {
	value := []byte("0123456789abcdef0123456789abcdef")
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		b.Run(policy.String()+"/serial", func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{Fsync: policy})
			defer s.Close()
			key := make([]byte, 0, 16)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				key = strconv.AppendInt(key[:0], int64(i), 10)
				if err := s.Apply("bench", Put(string(key), value)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(policy.String()+"/parallel", func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{Fsync: policy})
			defer s.Close()
			var ids atomic.Int64
			b.SetParallelism(32) // 64 writers on 2 cores: the daemon's many clients
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				bucket := fmt.Sprint("bench", ids.Add(1))
				key := make([]byte, 0, 16)
				for i := 0; pb.Next(); i++ {
					key = strconv.AppendInt(key[:0], int64(i), 10)
					if err := s.Apply(bucket, Put(string(key), value)); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkRecovery measures start-up recovery: Open and LoadAll of a store
// of KV_STORE_BENCH_KEYS keys (default 1,000,000) in KV_STORE_BENCH_BUCKETS
// buckets (default 10,000), 16-byte values, into maps as the buckets would
// hold them. It reports the heap those maps take.
func BenchmarkRecovery(b *testing.B) {
	keys, buckets := envInt(b, "KV_STORE_BENCH_KEYS", 1_000_000), envInt(b, "KV_STORE_BENCH_BUCKETS", 10_000)
	dir := b.TempDir()
	start := time.Now()
	fillStore(b, dir, keys, buckets)
	b.Logf("filled %d keys in %d buckets in %v", keys, buckets, time.Since(start))

	b.ReportAllocs()
	b.ResetTimer()
	var heap uint64
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		s, err := Open(dir, Options{})
		require.NoError(b, err)
		mem := make(map[string]map[string][]byte, buckets)
		n := 0
		require.NoError(b, s.LoadAll(func(name string, pairs map[string][]byte) error {
			mem[name] = pairs
			n += len(pairs)
			return nil
		}))
		require.NoError(b, s.Close())

		b.StopTimer()
		require.Equal(b, keys, n)
		require.Len(b, mem, buckets)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heap = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(mem)
		b.StartTimer()
	}
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(keys)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err)
		return n
	}
	return def
}

// fillStore writes keys pairs spread over buckets buckets, in large batches,
// and closes the store without flushing its memtable (as a daemon stopped
// after a day of writes would leave it: part tables, part WAL).
func fillStore(b *testing.B, dir string, keys, buckets int) {
	s := openT(b, dir, Options{Fsync: FsyncNo})
	perBucket := keys / buckets
	value := []byte("0123456789abcdef")
	batch := s.db.NewBatch()
	k := make([]byte, 0, 64)
	for i := range buckets {
		name := fmt.Sprintf("bucket-%d", i)
		require.NoError(b, batch.Set(markerKey(name), nil, nil))
		for j := range perBucket {
			k = appendPairKey(k[:0], name, "key:"+strconv.Itoa(j))
			require.NoError(b, batch.Set(k, value, nil))
		}
		if batch.Len() > 4<<20 {
			require.NoError(b, batch.Commit(pebble.NoSync))
			batch = s.db.NewBatch()
		}
	}
	require.NoError(b, batch.Commit(pebble.NoSync))
	require.NoError(b, s.Close())
}

// BenchmarkOpenAndCount measures the start-up of a lazily loading daemon:
// Open (the WAL replay) and Stats (a pass over every key, for the log line
// of how many buckets and keys were recovered), without building the maps.
func BenchmarkOpenAndCount(b *testing.B) {
	keys, buckets := envInt(b, "KV_STORE_BENCH_KEYS", 1_000_000), envInt(b, "KV_STORE_BENCH_BUCKETS", 10_000)
	dir := b.TempDir()
	fillStore(b, dir, keys, buckets)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s, err := Open(dir, Options{})
		require.NoError(b, err)
		st, err := s.Stats()
		require.NoError(b, err)
		require.NoError(b, s.Close())
		require.Equal(b, keys, st.Keys)
		require.Equal(b, buckets, st.Buckets)
	}
}

// BenchmarkFold measures a fold of the log (see fold.go): 2,000 records,
// each a group of 16 puts to random fields among 100,000 of one bucket,
// as a pipelined HSET load leaves them.
func BenchmarkFold(b *testing.B) {
	const records, perRecord, fields = 2000, 16, 100_000
	s := openT(b, b.TempDir(), Options{Fsync: FsyncNo})
	defer s.Close()
	require.NoError(b, s.CreateBucket("h"))
	value := []byte("v")
	rng := uint64(1)
	waiters := make([]Waiter, perRecord)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range records {
			for j := range waiters {
				rng = rng*6364136223846793005 + 1442695040888963407
				field := fmt.Sprintf("f:%012d", (rng>>33)%fields)
				w, err := s.ApplyPairsNoWait("h", Put(field, value))
				require.NoError(b, err)
				waiters[j] = w
			}
			for _, w := range waiters {
				require.NoError(b, w.Wait())
			}
		}
		b.StartTimer()
		require.NoError(b, s.fold())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records*perRecord), "ns/change")
}

// BenchmarkLoadAfterWrite measures what the first accesses after a
// restart cost: each op is a write to one bucket, then the load of
// another stored bucket (a fold runs before it), on a store reopened with
// 10,000 stored buckets, against its baselines in the same run: the
// write alone and the load alone (write+load should cost about their
// sum). A fold deleted its records with a range deletion, and every read
// then rebuilt the memtable's index of them: 45 ms an op at 3,000.
func BenchmarkLoadAfterWrite(b *testing.B) {
	const stored = 10_000
	dir := b.TempDir()
	s := openT(b, dir, Options{Fsync: FsyncNo})
	for i := range stored {
		if err := s.Apply(fmt.Sprint("b", i), Put("k", []byte("v"))); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, s.Close())
	for _, tc := range []struct {
		name        string
		write, load bool
	}{{"write+load", true, true}, {"write", true, false}, {"load", false, true}} {
		write, load := tc.write, tc.load
		b.Run(tc.name, func(b *testing.B) {
			s := openT(b, dir, Options{Fsync: FsyncNo})
			defer s.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if write {
					if err := s.Apply("hot", Put(strconv.Itoa(i), []byte("v"))); err != nil {
						b.Fatal(err)
					}
				}
				if load {
					if _, found, err := s.Load(fmt.Sprint("b", i%stored)); err != nil || !found {
						b.Fatal(err, found)
					}
				}
				i++
			}
		})
	}
}

// BenchmarkLoadAfterDrop measures a drop of one stored bucket (DEL), then
// the load of another (a fold runs before it), on a store reopened with
// 10,000 stored buckets, against its baselines in the same run: the drop
// alone and the load alone. Buckets of 4 pairs are dropped pair by pair;
// buckets of 100, with a range deletion. Each range deletion in the
// memtable makes every later read build the memtable's index of them
// anew: the loads grew slower with each drop until the memtable was
// flushed. Run it with -benchtime 5000x or fewer.
func BenchmarkLoadAfterDrop(b *testing.B) {
	const stored = 10_000
	for _, pairs := range []int{4, 100} {
		dir := b.TempDir()
		s := openT(b, dir, Options{Fsync: FsyncNo})
		ops := make([]Op, pairs)
		for i := range ops {
			ops[i] = Put(fmt.Sprint("field:", i), []byte("value"))
		}
		for i := range stored {
			if err := s.Apply(fmt.Sprint("b", i), ops...); err != nil {
				b.Fatal(err)
			}
		}
		require.NoError(b, s.Close())
		for _, tc := range []struct {
			name       string
			drop, load bool
		}{{"drop+load", true, true}, {"drop", true, false}, {"load", false, true}} {
			drop, load := tc.drop, tc.load
			b.Run(fmt.Sprintf("pairs=%d/%s", pairs, tc.name), func(b *testing.B) {
				s := openT(b, dir, Options{Fsync: FsyncNo})
				defer s.Close()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i >= stored/2 {
						b.Fatalf("more than %d ops: run with -benchtime %dx or fewer", stored/2, stored/2)
					}
					if drop {
						if err := s.DropBucket(fmt.Sprint("b", i)); err != nil {
							b.Fatal(err)
						}
					}
					if load {
						if _, found, err := s.Load(fmt.Sprint("b", stored/2+i)); err != nil || !found {
							b.Fatal(err, found)
						}
					}
					i++
				}
			})
		}
	}
}

// BenchmarkFoldRecycledBucket writes a bucket with new fields and drops it,
// over and over, folded every 2,000 cycles (the folder's 8 MiB of records
// hold about that many): each drop is a fold's, of a bucket dropped
// thousands of times before it. Its baseline in the same run: the writes
// alone, folded as often.
func BenchmarkFoldRecycledBucket(b *testing.B) {
	for _, drop := range []bool{true, false} {
		name := "write"
		if drop {
			name = "write+drop"
		}
		b.Run(name, func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{Fsync: FsyncNo})
			defer s.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ops := []Op{Put(fmt.Sprint("f", i, ".0"), []byte("v")), Put(fmt.Sprint("f", i, ".1"), []byte("v")), Put(fmt.Sprint("f", i, ".2"), []byte("v"))}
				if err := s.Apply("q", ops...); err != nil {
					b.Fatal(err)
				}
				if drop {
					if err := s.DropBucket("q"); err != nil {
						b.Fatal(err)
					}
				}
				if i++; i%2000 == 0 {
					if err := s.fold(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
