package registry

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RandomName picks every name, with or without a store and its index, and
// reports none when there is none.
func TestRandomName(t *testing.T) {
	picks := func(t *testing.T, r *Registry, n int) {
		t.Helper()
		seen := map[string]bool{}
		for range 200 * n {
			name, ok, err := r.RandomName()
			require.NoError(t, err)
			require.True(t, ok)
			seen[name] = true
		}
		assert.Len(t, seen, n)
	}
	t.Run("in memory", func(t *testing.T) {
		r := newTree(t).reg
		_, ok, err := r.RandomName()
		require.NoError(t, err)
		assert.False(t, ok)
		for i := range 10 {
			_, err := r.Create(ctx, fmt.Sprintf("k%d", i))
			require.NoError(t, err)
		}
		picks(t, r, 10)
	})
	t.Run("stored, without an index", func(t *testing.T) {
		st := openStoreT(t, t.TempDir())
		for i := range 10 {
			require.NoError(t, st.CreateBucket(fmt.Sprintf("k%d", i)))
		}
		st.failList.Store(true)
		r, _, _ := newDurableTree(t, st)
		require.Nil(t, r.order)
		st.failList.Store(false)
		picks(t, r, 10)
	})
}
