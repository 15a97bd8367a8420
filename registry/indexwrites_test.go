package registry

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// indexWritesOf returns how many names have writes tracked in the index
// bookkeeping (see indexWrite).
func indexWritesOf(reg *Registry) int {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	return len(reg.indexWrites)
}

// Each durable create and each durable drop settles its indexWrite, and a
// name whose writes have all met their fate leaves the bookkeeping: a
// daemon that creates and deletes keys for ever keeps nothing of them.
func TestDurableIndexWritesAreForgotten(t *testing.T) {
	reg, _, stop := newDurableTree(t, openStoreT(t, t.TempDir()))
	defer stop()

	for i := range 50 {
		name := fmt.Sprintf("k%d", i)
		_, p, err := reg.CreateWith(ctx, name, putF("v"))
		require.NoError(t, err)
		require.NoError(t, p.Wait())
	}
	assert.Zero(t, indexWritesOf(reg), "every create was durable: none is still tracked")

	for i := range 50 {
		p, err := reg.DeleteNoWait(ctx, fmt.Sprintf("k%d", i))
		require.NoError(t, err)
		require.NoError(t, p.Wait())
	}
	assert.Zero(t, indexWritesOf(reg), "every drop was durable: none is still tracked")
}

// A durable rename settles the index writes of both its names once its
// move is durable: a daemon that renames keys for ever keeps nothing of
// them.
func TestDurableRenameIndexWritesAreForgotten(t *testing.T) {
	reg, _, stop := newDurableTree(t, openStoreT(t, t.TempDir()))
	defer stop()

	for i := range 10 {
		from, to := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		_, p, err := reg.CreateWith(ctx, from, putF("v"))
		require.NoError(t, err)
		require.NoError(t, p.Wait())
		require.NoError(t, reg.Rename(ctx, from, to))
		p, err = reg.RenameNoWait(ctx, to, from)
		require.NoError(t, err)
		require.NoError(t, p.Wait())
	}
	assert.Zero(t, indexWritesOf(reg), "every move was durable: none is still tracked")
}
