package registry

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// DeleteManyNoWait deletes every named bucket across several batches,
// counting each once however often it is named and skipping missing
// names, in memory and with a store; the buckets that were not named stay.
func TestDeleteManyNoWait(t *testing.T) {
	const n = 2*deleteBatch + 17 // three batches
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable %v", durable), func(t *testing.T) {
			var reg *Registry
			var st *countingStore
			if durable {
				st = openStoreT(t, t.TempDir())
				reg, _, _ = newDurableTree(t, st)
			} else {
				reg = newTree(t).reg
			}
			var names []string
			for i := range n {
				name := fmt.Sprintf("k%d", i)
				b, err := reg.Create(ctx, name)
				require.NoError(t, err)
				require.NoError(t, b.Put("f", []byte("v")))
				names = append(names, name)
			}
			kept, err := reg.Create(ctx, "kept")
			require.NoError(t, err)
			require.NoError(t, kept.Put("f", []byte("v")))

			// Each name twice, missing names between, across the batches.
			var asked []string
			for i, name := range names {
				asked = append(asked, name, fmt.Sprintf("missing%d", i))
				if i%3 == 0 {
					asked = append(asked, name)
				}
			}
			asked = append(asked, names...)
			deleted, drops, err := reg.DeleteManyNoWait(ctx, asked)
			require.NoError(t, err)
			assert.Equal(t, n, deleted)
			if durable {
				assert.Len(t, drops, n)
			} else {
				assert.Empty(t, drops)
			}
			for _, p := range drops {
				require.NoError(t, p.Wait())
			}
			listed, err := reg.NamesErr()
			require.NoError(t, err)
			assert.Equal(t, []string{"kept"}, listed)
			for _, name := range []string{"k0", "k300", names[n-1]} {
				_, ok := reg.Lookup(name)
				assert.False(t, ok, name)
			}
			if durable {
				require.NoError(t, st.Settle())
				var disk []string
				require.NoError(t, st.Buckets(func(n string) error { disk = append(disk, n); return nil }))
				assert.Equal(t, []string{"kept"}, disk)
			}
			deleted, _, err = reg.DeleteManyNoWait(ctx, names)
			require.NoError(t, err)
			assert.Zero(t, deleted, "nothing left to delete")
		})
	}
}

// The drops of one DeleteManyNoWait the disk loses together: every Pending
// fails, and every name is listed and loads again, as the disk holds it.
func TestDeleteManyNoWaitLostDrops(t *testing.T) {
	faults := &store.Faults{}
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Nanosecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	reg, _, _ := newDurableTree(t, &countingStore{Store: st})
	names := []string{"a", "b", "c"}
	for _, name := range names {
		b, err := reg.Create(ctx, name)
		require.NoError(t, err)
		require.NoError(t, b.Put("f", []byte(name)))
	}

	deleted, drops, err := reg.DeleteManyNoWait(ctx, append(names, "missing"))
	require.NoError(t, err)
	require.Equal(t, 3, deleted)
	faults.FailSyncs(syscall.EIO)
	for _, p := range drops {
		require.ErrorIs(t, p.Wait(), store.ErrWriteFailed)
	}
	faults.Clear()
	require.Eventually(t, func() bool { return st.Apply("other", store.Put("x", []byte("1"))) == nil }, waitFor, tick)

	listed, err := reg.NamesErr()
	require.NoError(t, err)
	slices.Sort(listed)
	assert.Equal(t, names, listed)
	for _, name := range names {
		b, found, err := reg.LookupCurrent(ctx, name)
		require.NoError(t, err)
		require.True(t, found, name)
		v, err := b.Get("f")
		require.NoError(t, err)
		assert.Equal(t, name, string(v))
	}
}
