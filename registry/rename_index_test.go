package registry

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// A durable rename switches the names in the index of stored names in one
// step, as it does on disk: every reader that lists the names (KEYS, SCAN,
// DBSIZE) finds the pairs under exactly one of them. Before the fix the
// rename unindexed its source, then registered its destination: a KEYS,
// or a miss of each name, in between found neither, and a rename of a
// bucket onto itself left it unlisted for that moment.
func TestDurableRenameSwitchesTheNamesInOneStep(t *testing.T) {
	ctx := context.Background()
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("a", store.Put("k", []byte("v"))))
	reg, _, _ := newDurableTree(t, st)

	var stop atomic.Bool
	var looks, wrong atomic.Int64
	observed := make(chan struct{})
	go func() {
		defer close(observed)
		for !stop.Load() {
			names := reg.Names()
			n := 0
			for _, name := range []string{"a", "b"} {
				if slices.Contains(names, name) {
					n++
				}
			}
			looks.Add(1)
			if n != 1 || reg.Len() != 1 {
				wrong.Add(1)
			}
		}
	}()
	from, to := "a", "b"
	for i := range 1000 {
		if i%10 == 0 {
			require.NoError(t, reg.Rename(ctx, from, from), "onto itself")
		}
		require.NoError(t, reg.Rename(ctx, from, to))
		from, to = to, from
	}
	stop.Store(true)
	<-observed
	assert.Zero(t, wrong.Load(), "of %d looks, these found the pairs under neither name, or both", looks.Load())

	assert.Equal(t, []string{from}, reg.Names())
	b, ok := reg.Lookup(from)
	require.True(t, ok)
	v, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
	pairs, found, err := st.Load(from)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, pairs)
}

// A rename onto a bucket whose creating write (its marker) is still in
// flight: that write and the move fail together. If the create's write is
// answered (lost) after the move is queued but before the rename tracks
// its index writes, the tracking must not forget it: the disk holds no
// dst, so once both are answered dst must not be listed.
func TestDurableRenameOntoALostCreateListsNoPhantom(t *testing.T) {
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
