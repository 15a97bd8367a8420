package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Delete of a bucket that had already ended for another reason (a
// crash) finds nothing in memory, where its pairs died with it; with a
// store its pairs are still there, and Delete drops them (from review of
// Delete's doc, which said ErrNotFound in both cases).
func TestDeleteOfABucketThatEndedForAnotherReason(t *testing.T) {
	ctx := context.Background()
	crash := errors.New("crashed")

	t.Run("in memory", func(t *testing.T) {
		tr := newTree(t)
		b, err := tr.reg.Create(ctx, "x")
		require.NoError(t, err)
		require.NoError(t, b.Put("k", []byte("v")))
		b.Stop(crash)
		assert.ErrorIs(t, tr.reg.Delete(ctx, "x"), ErrNotFound)
		_, ok := tr.reg.Lookup("x")
		assert.False(t, ok)
	})

	t.Run("with a store", func(t *testing.T) {
		st := openStoreT(t, t.TempDir())
		reg, _, _ := newDurableTree(t, st)
		b, err := reg.Create(ctx, "x")
		require.NoError(t, err)
		require.NoError(t, b.Put("k", []byte("v")))
		b.Stop(crash)
		require.NoError(t, reg.Delete(ctx, "x"), "its data is dropped")
		found, err := st.Has("x")
		require.NoError(t, err)
		assert.False(t, found)
		_, ok := reg.Lookup("x")
		assert.False(t, ok)
		assert.ErrorIs(t, reg.Delete(ctx, "x"), ErrNotFound, "nothing is left")
	})
}
