package registry

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/store"
)

// countingStore counts the loads of a store.
type countingStore struct {
	*store.Store
	loads atomic.Int64
}

func (s *countingStore) Load(name string) (map[string][]byte, bool, error) {
	s.loads.Add(1)
	return s.Store.Load(name)
}

func newDurableTree(t *testing.T, st Store) (*Registry, *bucket.Supervisor, func()) {
	t.Helper()
	ev := events.New(events.Options{})
	sup := bucket.NewSupervisor(bucket.SupervisorOptions{})
	reg := New(Config{Buckets: sup, Events: ev, Logger: slog.New(slog.DiscardHandler), Store: st})
	root := suture.New("test", suture.Spec{EventHook: func(suture.Event) {}})
	root.Add(ev)
	root.Add(sup)
	root.Add(reg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-errc }) }
	t.Cleanup(stop)
	return reg, sup, stop
}

func openStoreT(t *testing.T, dir string) *countingStore {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &countingStore{Store: st}
}

// Stored buckets cost no goroutine until their first use; concurrent first
// uses of one name share one load; Names lists them loaded or not.
func TestLazyLoading(t *testing.T) {
	dir := t.TempDir()
	st := openStoreT(t, dir)
	for _, name := range []string{"a", "b", "c"} {
		require.NoError(t, st.Apply(name, store.Put("k", []byte(name))))
	}
	reg, sup, _ := newDurableTree(t, st)
	assert.ElementsMatch(t, []string{"a", "b", "c"}, reg.Names())
	assert.Equal(t, 3, reg.Len())
	assert.Equal(t, 0, sup.Running())

	var wg sync.WaitGroup
	got := make([]*bucket.Bucket, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				got[i], _ = reg.Lookup("a")
			} else {
				got[i], _ = reg.Create(context.Background(), "a")
			}
		}()
	}
	wg.Wait()
	for _, b := range got {
		require.Same(t, got[0], b, "one bucket for every first use")
	}
	assert.Equal(t, int64(1), st.loads.Load(), "one load for all of them")
	v, err := got[0].Get("k")
	require.NoError(t, err)
	assert.Equal(t, "a", string(v))

	_, ok := reg.Lookup("missing")
	assert.False(t, ok)
	name := []byte("b")
	b, ok := reg.Lookup(string(name))
	require.True(t, ok)
	assert.Equal(t, "b", b.Name())
	require.Eventually(t, func() bool { return sup.Running() == 2 }, waitFor, tick)
}

// A crashed bucket keeps its data; a deleted one loses it, loaded or not.
func TestDurableCrashAndDelete(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("stored", store.Put("k", []byte("v"))))
	reg, _, _ := newDurableTree(t, st)
	ctx := context.Background()

	b, err := reg.Create(ctx, "live")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))
	_ = b.Update(func(*bucket.Tx) error { panic("crash") })
	<-reg.Forgotten(b)
	b2, ok := reg.Lookup("live")
	require.True(t, ok)
	require.NotSame(t, b, b2)
	v, err := b2.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))

	require.NoError(t, reg.Delete(ctx, "live"))
	require.NoError(t, reg.Delete(ctx, "stored"), "a stored bucket that is not loaded")
	assert.ErrorIs(t, reg.Delete(ctx, "stored"), ErrNotFound)
	assert.Empty(t, reg.Names())
	for _, name := range []string{"live", "stored"} {
		found, err := st.Has(name)
		require.NoError(t, err)
		assert.False(t, found, name)
	}
}

// Rename moves a bucket's pairs in the store too, replacing the target.
func TestDurableRename(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("src", store.Put("k", []byte("v"))))
	require.NoError(t, st.Apply("dst", store.Put("old", []byte("x"))))
	reg, _, _ := newDurableTree(t, st)
	ctx := context.Background()
	_, ok := reg.Lookup("dst")
	require.True(t, ok)
	require.NoError(t, reg.Rename(ctx, "src", "dst"), "src not loaded, dst live")
	b, ok := reg.Lookup("dst")
	require.True(t, ok)
	keys, err := b.Keys()
	require.NoError(t, err)
	assert.Equal(t, []string{"k"}, keys)
	pairs, _, err := st.Load("dst")
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, pairs)
	found, err := st.Has("src")
	require.NoError(t, err)
	assert.False(t, found)
	assert.True(t, errors.Is(reg.Rename(ctx, "src", "x"), ErrNotFound))
}

// FlushAll stops every bucket and empties the store.
func TestDurableFlushAll(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	require.NoError(t, st.Apply("stored", store.Put("k", []byte("v"))))
	reg, sup, _ := newDurableTree(t, st)
	ctx := context.Background()
	b, err := reg.Create(ctx, "live")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))
	require.NoError(t, reg.FlushAll(ctx))
	assert.Empty(t, reg.Names())
	assert.Equal(t, 0, sup.Running())
	_, ok := reg.Lookup("stored")
	assert.False(t, ok)
}
