package bucket

import (
	"strconv"
	"testing"

	"github.com/kvproject/kv/internal/store"
)

// BenchmarkPutDurable is Put on one durable bucket from every core, under
// each fsync policy: the store's cost on the write path.
func BenchmarkPutDurable(b *testing.B) {
	for _, policy := range []store.Fsync{store.FsyncNo, store.FsyncEverySec, store.FsyncAlways} {
		b.Run(policy.String(), func(b *testing.B) {
			st, err := store.Open(b.TempDir(), store.Options{Fsync: policy})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if err := st.CreateBucket("bench"); err != nil {
				b.Fatal(err)
			}
			bk := Restore("bench", 1, nil, st)
			value := []byte("value")
			b.SetParallelism(25) // 50 writers on 2 cores, as redis-benchmark -c 50
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if err := bk.Put("k"+strconv.Itoa(i%100000), value); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
