package registry

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

// namesOnlyStore lists n stored buckets of 12-byte names, each a fresh
// string as the store's listing makes them; the registry's New uses
// nothing else of a Store.
type namesOnlyStore struct {
	Store
	n int
}

func (s namesOnlyStore) Settle() error { return nil }

func (s namesOnlyStore) Buckets(fn func(string) error) error {
	for i := range s.n {
		if err := fn(fmt.Sprintf("bucket:%05d", i)); err != nil {
			return err
		}
	}
	return nil
}

// The README: the registry keeps the names of the stored buckets in
// memory, about 100 bytes each for 12-byte names (the name, its entry in
// the names' hash table and in the scan order's B-tree; measured 98 to 108
// bytes between 300,000 and 2,000,000 names). It said 70 once the scan
// order's B-tree had made it about 100.
func TestStoredNamesCostAbout100BytesEach(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an index of 500,000 names")
	}
	const n = 500_000
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	r := New(Config{
		Buckets: bucket.NewSupervisor(bucket.SupervisorOptions{}),
		Events:  events.New(events.Options{}),
		Store:   namesOnlyStore{n: n},
	})
	after := heap()
	runtime.KeepAlive(r)
	assert.Equal(t, n, r.Len())
	perName := float64(after-before) / n
	t.Logf("%.1f bytes a stored name", perName)
	assert.InDelta(t, 100, perName, 25, "bytes a stored 12-byte name costs; update the README's figure")
}
