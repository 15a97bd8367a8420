package registry

import (
	"fmt"
	"hash/maphash"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
)

// Births changes whenever a bucket is recorded under the name, in memory
// and with a store (created, created with a first write, renamed onto),
// even when it is gone again, and not when the name is only read,
// deleted or renamed away.
func TestBirths(t *testing.T) {
	for _, kind := range []struct {
		name string
		reg  func(t *testing.T) *Registry
	}{
		{"memory", func(t *testing.T) *Registry { return newTree(t).reg }},
		{"store", func(t *testing.T) *Registry {
			reg, _, _ := newDurableTree(t, openStoreT(t, t.TempDir()))
			return reg
		}},
	} {
		t.Run(kind.name, func(t *testing.T) {
			reg := kind.reg(t)
			// A name that does not share w's count (one in 1,024 would).
			other := "other"
			for i := 0; slot(reg, other) == slot(reg, "w"); i++ {
				other = fmt.Sprint("other", i)
			}
			changes := func(what string, changed bool, op func()) {
				t.Helper()
				before := reg.Births("w")
				op()
				assert.Equal(t, changed, reg.Births("w") != before, what)
			}
			changes("Create", true, func() {
				_, err := reg.Create(ctx, "w")
				require.NoError(t, err)
			})
			changes("Lookup", false, func() { reg.Lookup("w") })
			changes("Delete", false, func() { require.NoError(t, reg.Delete(ctx, "w")) })
			changes("CreateWith", true, func() {
				_, p, err := reg.CreateWith(ctx, "w", func(tx *bucket.Tx) error { return tx.Put("f", []byte("1")) })
				require.NoError(t, err)
				require.NoError(t, p.Wait())
			})
			changes("Rename away", false, func() { require.NoError(t, reg.Rename(ctx, "w", other)) })
			changes("Rename onto", true, func() { require.NoError(t, reg.Rename(ctx, other, "w")) })
			changes("Create and Delete", true, func() {
				require.NoError(t, reg.Delete(ctx, "w"))
				_, err := reg.Create(ctx, "w")
				require.NoError(t, err)
				require.NoError(t, reg.Delete(ctx, "w"))
			})
		})
	}
}

// slot is the count of reg's births that name shares.
func slot(reg *Registry, name string) uint64 {
	return maphash.String(reg.births.seed, name) % birthSlots
}
