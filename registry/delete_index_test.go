package registry

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/store"
)

// A DEL's drop records, for its index write, whether its name was stored
// when the drop is queued, not before the DEL waited for buckets to be
// forgotten: a name whose creating write is answered lost meanwhile is not
// stored, and a loss of the drop afterwards must not list it. The DEL
// waits for the buckets of its batch to be forgotten between looking at
// its names and queueing their drops; here it is held in that wait (a's
// Exited, or b's) while a's creating write fails and the store recovers,
// then its drop of a is lost too. The disk holds no a: neither may the
// index. Before the fix the drop always recorded "stored", and its loss
// put a back in the index: KEYS listed a name that loads as missing.
func TestDurableDelOfANameWhoseCreateIsLostMeanwhileListsNoPhantom(t *testing.T) {
	for _, tc := range []struct {
		name  string
		names []string // a is first; the DEL is held on the Exited of held
		held  string
	}{
		{"live", []string{"a"}, "a"},
		{"stored, batched with a live one", []string{"a", "b"}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults := &store.Faults{}
			st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Nanosecond})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			g := newGate(func(ev events.Event) bool {
				e, ok := ev.(events.Exited)
				return ok && e.Bucket == tc.held
			})
			reg, _, _ := newDurableTreeWith(t, &countingStore{Store: st}, g.wrap)

			if tc.held != "a" {
				b, err := reg.Create(ctx, tc.held)
				require.NoError(t, err)
				require.NoError(t, b.Put("f", []byte("v")))
			}
			a, created, err := reg.CreateWith(ctx, "a", putF("x")) // its marker is in flight
			require.NoError(t, err)
			if tc.held != "a" { // a is stored (as far as the index knows), not live
				a.Stop(nil)
				require.NoError(t, reg.WaitForgotten(ctx, a))
			}

			type result struct {
				n     int
				drops []bucket.Pending
				err   error
			}
			done := make(chan result, 1)
			go func() {
				n, drops, err := reg.DeleteManyNoWait(ctx, tc.names)
				done <- result{n, drops, err}
			}()
			<-g.held // the DEL waits for tc.held to be forgotten
			faults.FailSyncs(syscall.EIO)
			require.ErrorIs(t, created.Wait(), store.ErrWriteFailed, "a's creating write is lost")
			faults.Clear() // the store may recover: every lost write is answered
			close(g.open)
			res := <-done
			require.NoError(t, res.err)
			require.Len(t, res.drops, len(tc.names))

			faults.FailSyncs(syscall.EIO) // the drops are lost too
			for _, p := range res.drops {
				require.ErrorIs(t, p.Wait(), store.ErrWriteFailed)
			}
			faults.Clear()
			require.Eventually(t, func() bool {
				_, p, err := reg.CreateWith(ctx, "probe", putF("p"))
				return err == nil && p.Wait() == nil
			}, waitFor, tick, "the store recovers")

			_, found, err := st.Load("a")
			require.NoError(t, err)
			require.False(t, found, "the disk holds no a")
			var disk []string
			require.NoError(t, st.Buckets(func(n string) error { disk = append(disk, n); return nil }))
			listed, err := reg.NamesErr()
			require.NoError(t, err)
			assert.ElementsMatch(t, disk, listed, "the names listed are the buckets on disk")
			_, found, err = reg.LookupCurrent(ctx, "a")
			require.NoError(t, err)
			assert.False(t, found)
		})
	}
}
