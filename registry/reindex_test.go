package registry

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

// A registry that shares its store with another, one at a time
// (Config.Admit, as a services root with a DataDir), lists the store at
// Reindex once the other has stopped. The other's last create may still be
// on its way then: CreateWith's write, which its caller waits for after the
// claim, and which the registry's stop does not wait for. The store lists a
// bucket only once the write that records it is committed, so before the
// fix Reindex left that bucket out of the new index, and once the write
// succeeded it was stored but absent from Names, Len and Scan, and a miss
// did not load it.
func TestReindexListsACreateStillInFlight(t *testing.T) {
	ctx := context.Background()
	st := openStoreT(t, t.TempDir())
	first, _, stopFirst := newDurableTree(t, st)
	_, pending, err := first.CreateWith(ctx, "x", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
	require.NoError(t, err)
	stopFirst() // drained: its claims are done, the write of x is in flight

	next := New(Config{
		Buckets: bucket.NewSupervisor(bucket.SupervisorOptions{}),
		Events:  events.New(events.Options{}),
		Logger:  slog.New(slog.DiscardHandler),
		Store:   st,
		Admit:   func() error { return nil },
	})
	next.Reindex()
	require.NoError(t, pending.Wait())
	found, err := st.Has("x")
	require.NoError(t, err)
	require.True(t, found, "x is stored")

	names, err := next.NamesErr()
	require.NoError(t, err)
	assert.Equal(t, []string{"x"}, names)
	assert.Equal(t, 1, next.Len())
	page, _, err := next.Scan(0, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"x"}, page)
	_, ok, err := next.LookupErr("x")
	require.NoError(t, err)
	assert.True(t, ok, "a miss loads the stored bucket")
}
