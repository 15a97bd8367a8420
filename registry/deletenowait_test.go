package registry

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// DeleteNoWait returns once the bucket is forgotten, with its drop queued
// and not waited for: a hung disk does not hold it (Delete waited for the
// drop, and the event loop with it, under --fsync always, at each DEL).
// The name is gone at once; the drop is on disk once its Pending is.
func TestDeleteNoWaitDoesNotWaitForTheDisk(t *testing.T) {
	st, faults := openFaultyStore(t)
	reg, _, stop := newDurableTree(t, &countingStore{Store: st})
	defer stop()
	b, err := reg.Create(ctx, "doomed")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))

	resume := faults.Stall()
	p, err := reg.DeleteNoWait(ctx, "doomed") // would hang here if it waited
	require.NoError(t, err)
	assert.False(t, p.IsZero(), "the drop waits for the disk")
	assert.NotContains(t, reg.Names(), "doomed")
	_, found := reg.Lookup("doomed")
	assert.False(t, found)
	resume()
	require.NoError(t, p.Wait())
	requireNoTraceOf(t, reg, st, "doomed")
}

// A drop that the disk loses fails its Pending, and the name is listed
// again: its data is still stored (the store cuts the lost write off),
// and its next use loads it.
func TestALostDropListsTheBucketAgain(t *testing.T) {
	st, faults := openFaultyStore(t)
	reg, _, stop := newDurableTree(t, &countingStore{Store: st})
	defer stop()
	b, err := reg.Create(ctx, "kept")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))

	faults.FailSyncs(syscall.EIO)
	p, err := reg.DeleteNoWait(ctx, "kept")
	require.NoError(t, err)
	require.ErrorIs(t, p.Wait(), store.ErrWriteFailed)
	faults.Clear()
	waitRecovered(t, st)

	assert.Contains(t, reg.Names(), "kept", "stored, so listed (KEYS, DBSIZE)")
	again, found := reg.Lookup("kept")
	require.True(t, found, "stored, so found")
	v, err := again.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
}

// Delete still waits for the drop, and reports its loss.
func TestDeleteReportsALostDrop(t *testing.T) {
	st, faults := openFaultyStore(t)
	reg, _, stop := newDurableTree(t, &countingStore{Store: st})
	defer stop()
	_, err := reg.Create(ctx, "kept")
	require.NoError(t, err)
	faults.FailSyncs(syscall.EIO)
	require.ErrorIs(t, reg.Delete(ctx, "kept"), store.ErrWriteFailed)
	faults.Clear()
	waitRecovered(t, st)
	assert.Contains(t, reg.Names(), "kept")
}
