package registry

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

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
