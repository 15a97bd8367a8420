package registry

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/store"
)

func putF(v string) func(*bucket.Tx) error {
	return func(tx *bucket.Tx) error { return tx.Put("f", []byte(v)) }
}

// A DEL whose drop is lost, followed (in the same failed group) by an
// HSET that creates the name again, whose write is lost too: the bucket's
// old data is still stored, so it must stay listed and found, whichever
// order the two writers are answered in (a pipeline DEL x; HSET x answers
// the drop first).
func TestLostDropThenLostCreateKeepsTheStoredBucket(t *testing.T) {
	st, faults := openFaultyStore(t)
	reg, _, stop := newDurableTree(t, &countingStore{Store: st})
	defer stop()
	b, err := reg.Create(ctx, "x")
	require.NoError(t, err)
	require.NoError(t, b.Put("f", []byte("old")))

	faults.FailSyncs(syscall.EIO)
	pDrop, err := reg.DeleteNoWait(ctx, "x")
	require.NoError(t, err)
	_, pCreate, err := reg.CreateWith(ctx, "x", putF("new"))
	require.NoError(t, err)
	require.ErrorIs(t, pDrop.Wait(), store.ErrWriteFailed)
	require.ErrorIs(t, pCreate.Wait(), store.ErrWriteFailed)
	faults.Clear()
	waitRecovered(t, st)

	has, err := st.Has("x")
	require.NoError(t, err)
	require.True(t, has, "both writes were lost: the old bucket is stored")
	assert.Contains(t, reg.Names(), "x", "stored, so listed")
	got, found, err := reg.LookupCurrent(ctx, "x")
	require.NoError(t, err)
	require.True(t, found, "stored, so found")
	v, err := got.Get("f")
	require.NoError(t, err)
	assert.Equal(t, "old", string(v))
}

// The other order: a create's write and the DEL of the new bucket, both
// lost in one group: nothing is stored, so nothing may be listed.
func TestLostCreateThenLostDropLeavesNoName(t *testing.T) {
	st, faults := openFaultyStore(t)
	reg, _, stop := newDurableTree(t, &countingStore{Store: st})
	defer stop()

	faults.FailSyncs(syscall.EIO)
	_, pCreate, err := reg.CreateWith(ctx, "x", putF("new"))
	require.NoError(t, err)
	pDrop, err := reg.DeleteNoWait(ctx, "x")
	require.NoError(t, err)
	require.ErrorIs(t, pCreate.Wait(), store.ErrWriteFailed)
	require.ErrorIs(t, pDrop.Wait(), store.ErrWriteFailed)
	faults.Clear()
	waitRecovered(t, st)

	requireNoTraceOf(t, reg, st, "x")
}

// Without an index of stored names (the store could not be listed at
// start), a second DEL of a name whose drop is queued finds nothing, and
// KEYS does not list it, as with the index.
func TestDeleteNoWaitWithoutIndex(t *testing.T) {
	cs := openStoreT(t, t.TempDir())
	require.NoError(t, cs.Apply("x", store.Put("f", []byte("v"))))
	cs.failList.Store(true)
	reg, _, stop := newDurableTree(t, cs)
	defer stop()
	require.Nil(t, reg.stored)

	p, err := reg.DeleteNoWait(ctx, "x")
	require.NoError(t, err)
	assert.NotContains(t, reg.Names(), "x", "deleted: not listed")
	assert.Equal(t, 0, reg.Len())
	p2, err := reg.DeleteNoWait(ctx, "x")
	assert.ErrorIs(t, err, ErrNotFound, "deleted once: the second DEL counts nothing")
	require.NoError(t, p.Wait())
	require.NoError(t, p2.Wait())
}

// A stop with a hung disk returns within StopTimeout, as it did before
// the stop settled the store: a queued drop (or any write not yet waited
// for) must not hold Serve for ever.
func TestStopWithAHungDiskReturnsWithinStopTimeout(t *testing.T) {
	st, faults := openFaultyStore(t)
	reg, cancel, done := stoppingTree(t, &countingStore{Store: st}, 100*time.Millisecond)
	defer cancel()
	b, err := reg.Create(ctx, "x")
	require.NoError(t, err)
	require.NoError(t, b.Put("f", []byte("v")))

	resume := faults.Stall()
	p, err := reg.DeleteNoWait(ctx, "x")
	require.NoError(t, err)
	var waited chan error
	defer func() {
		resume()
		if waited == nil {
			waited = make(chan error, 1)
			go func() { waited <- p.Wait() }()
		}
		<-waited
		<-done
	}()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		done = closedErr()
	case <-time.After(10 * time.Second): // 100 times StopTimeout
		require.FailNow(t, "Serve did not return within StopTimeout: drain's Settle waits for a hung disk")
	}
}

func closedErr() <-chan error {
	c := make(chan error)
	close(c)
	return c
}

// The operations of a name whose drop is queued and not yet waited for
// see it deleted, and what they do lands after the drop, in memory and
// in a registry that serves the store next.
func TestQueuedDropInterleavings(t *testing.T) {
	cs := openStoreT(t, t.TempDir())
	for _, n := range []string{"x", "y", "z"} {
		require.NoError(t, cs.Apply(n, store.Put("f", []byte(n))))
	}
	reg, _, stop := newDurableTree(t, cs)

	p1, err := reg.DeleteNoWait(ctx, "x")
	require.NoError(t, err)
	_, found := reg.Lookup("x")
	assert.False(t, found, "a lookup sees the delete")
	_, err = reg.DeleteNoWait(ctx, "x")
	assert.ErrorIs(t, err, ErrNotFound, "another DEL finds nothing")
	assert.ErrorIs(t, reg.Rename(ctx, "x", "w"), ErrNotFound, "a rename from it finds nothing")
	assert.ElementsMatch(t, []string{"y", "z"}, reg.Names())
	assert.Equal(t, 2, reg.Len())
	require.NoError(t, reg.Rename(ctx, "y", "x"), "a rename onto it lands after the drop")
	require.NoError(t, p1.Wait())
	got, found := reg.Lookup("x")
	require.True(t, found)
	v, err := got.Get("f")
	require.NoError(t, err)
	assert.Equal(t, "y", string(v))

	p2, err := reg.DeleteNoWait(ctx, "z")
	require.NoError(t, err)
	_, p3, err := reg.CreateWith(ctx, "z", putF("new"))
	require.NoError(t, err)
	require.NoError(t, cs.Checkpoint(t.TempDir()+"/cp")) // SAVE between the drop and its wait
	require.NoError(t, p2.Wait())
	require.NoError(t, p3.Wait())
	got, found = reg.Lookup("z")
	require.True(t, found)
	v, err = got.Get("f")
	require.NoError(t, err)
	assert.Equal(t, "new", string(v))

	p4, err := reg.DeleteNoWait(ctx, "x")
	require.NoError(t, err)
	stop() // the stop commits the drop
	require.NoError(t, p4.Wait())

	reg2, _, _ := newDurableTree(t, cs)
	assert.ElementsMatch(t, []string{"z"}, reg2.Names())
	got, found = reg2.Lookup("z")
	require.True(t, found)
	v, err = got.Get("f")
	require.NoError(t, err)
	assert.Equal(t, "new", string(v))
}
