package registry

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// The stop commits the writes queued before it: a DEL's drop whose
// Pending nobody has waited for yet is on disk once Serve has returned,
// seen by a reader of the store that settles nothing (Has), as by the
// tree that serves on the store next.
func TestStopCommitsAQueuedDrop(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	reg, _, stop := newDurableTree(t, &countingStore{Store: st})
	b, err := reg.Create(ctx, "x")
	require.NoError(t, err)
	require.NoError(t, b.Put("f", []byte("v")))

	p, err := reg.DeleteNoWait(ctx, "x")
	require.NoError(t, err)
	stop()
	has, err := st.Has("x")
	require.NoError(t, err)
	assert.False(t, has, "the stop committed the drop")
	require.NoError(t, p.Wait())
}
