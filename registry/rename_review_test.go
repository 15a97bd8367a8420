package registry

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// A rename onto a bucket whose creating write (its marker) is still in
// flight: that write and the move fail together. If the create's write is
// answered (lost) after the move is queued but before the rename tracks
// its index writes, the tracking must not forget it: the disk holds no
// dst, so once both are answered dst must not be listed.
func TestReviewRenameOntoALostCreateKeepsItsIndexWrite(t *testing.T) {
	faults := &store.Faults{}
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Nanosecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	hs := &moveHookStore{countingStore: &countingStore{Store: st}}
	reg, _, _ := newDurableTree(t, hs)

	src, err := reg.Create(ctx, "src")
	require.NoError(t, err)
	require.NoError(t, src.Put("k", []byte("acked")))
	_, created, err := reg.CreateWith(ctx, "dst", putF("x")) // its marker is in flight
	require.NoError(t, err)

	// The move is queued, after dst's marker. Another client answers the
	// marker's failure now: the rename either sees it answered, or holds
	// it back until it has tracked the move (blocked).
	blocked := make(chan struct{})
	var blockedOnce sync.Once
	reg.testIndexBlocked = func() { blockedOnce.Do(func() { close(blocked) }) }
	answered := make(chan error, 1)
	var once sync.Once
	hs.afterMove = func() {
		once.Do(func() {
			faults.FailSyncs(syscall.EIO)
			go func() { answered <- created.Wait() }()
			select {
			case err := <-answered:
				answered <- err
			case <-blocked:
			}
		})
	}
	p, err := reg.RenameNoWait(ctx, "src", "dst")
	require.NoError(t, err)
	require.ErrorIs(t, <-answered, store.ErrWriteFailed) // both fail
	require.ErrorIs(t, p.Wait(), store.ErrWriteFailed)
	faults.Clear()
	require.Eventually(t, func() bool { return st.Apply("other", store.Put("y", []byte("1"))) == nil }, waitFor, tick)

	_, found, err := st.Load("dst")
	require.NoError(t, err)
	require.False(t, found, "the disk holds no dst")
	names, err := reg.NamesErr()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"src"}, names, "the names are what the disk holds (other was written past the registry)")
	n, err := reg.LenErr()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}
