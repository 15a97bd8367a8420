package registry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/store"
)

// newRenameTree returns a registry in memory, or with a store (and the
// store, to read what the disk holds).
func newRenameTree(t *testing.T, durable bool) (*Registry, *countingStore) {
	t.Helper()
	if !durable {
		return newTree(t).reg, nil
	}
	st := openStoreT(t, t.TempDir())
	reg, _, _ := newDurableTree(t, st)
	return reg, st
}

// pairsOf returns the pairs of the bucket named name, and whether it
// exists.
func pairsOf(t *testing.T, r *Registry, name string) (map[string]string, bool) {
	t.Helper()
	b, ok, err := r.LookupCurrent(ctx, name)
	require.NoError(t, err)
	if !ok {
		return nil, false
	}
	pairs := map[string]string{}
	require.NoError(t, b.View(func(tx *bucket.Tx) error {
		return tx.ForEach(func(k string, v []byte) error {
			pairs[k] = string(v)
			return nil
		})
	}))
	return pairs, true
}

// newMoveFixture returns newRenameTree's registry holding a {ka: a}, b
// {kb: b}, and an empty bucket named empty.
func newMoveFixture(t *testing.T, durable bool) (*Registry, *countingStore) {
	t.Helper()
	r, st := newRenameTree(t, durable)
	for _, name := range []string{"a", "b"} {
		_, p, err := r.CreateWith(ctx, name, func(tx *bucket.Tx) error {
			return tx.Put("k"+name, []byte(name))
		})
		require.NoError(t, err)
		require.NoError(t, p.Commit())
	}
	_, err := r.Create(ctx, "empty")
	require.NoError(t, err)
	return r, st
}

// requireHolds checks that each name holds its pairs in want (nil:
// missing), in memory and, when st is not nil, on disk.
func requireHolds(t *testing.T, r *Registry, st *countingStore, want map[string]map[string]string) {
	t.Helper()
	for name, pairs := range want {
		got, ok := pairsOf(t, r, name)
		if pairs == nil {
			assert.False(t, ok, "%s exists: %v", name, got)
		} else {
			assert.Equal(t, pairs, got, name)
		}
		if st == nil {
			continue
		}
		stored, found, err := st.Load(name)
		require.NoError(t, err)
		assert.Equal(t, pairs != nil, found, "%s on disk", name)
		for k, v := range pairs {
			assert.Equal(t, v, string(stored[k]), "%s on disk", name)
		}
		assert.Len(t, stored, len(pairs), "%s on disk", name)
	}
}

// RenameNX renames only onto a name that does not exist, as Redis's
// RENAMENX, and reports whether it did; when it does not, both buckets
// stay as they were, in memory and on disk.
func TestRenameNX(t *testing.T) {
	cases := []struct {
		name     string
		from, to string
		wantErr  error
		renamed  bool
		// what the names hold afterwards (nil: missing)
		want map[string]map[string]string
	}{
		{name: "onto a missing name", from: "a", to: "new", renamed: true,
			want: map[string]map[string]string{"a": nil, "new": {"ka": "a"}, "b": {"kb": "b"}}},
		{name: "onto an existing name", from: "a", to: "b",
			want: map[string]map[string]string{"a": {"ka": "a"}, "b": {"kb": "b"}}},
		{name: "onto an existing empty bucket", from: "a", to: "empty",
			want: map[string]map[string]string{"a": {"ka": "a"}, "empty": {}}},
		{name: "onto itself", from: "a", to: "a",
			want: map[string]map[string]string{"a": {"ka": "a"}}},
		{name: "from a missing name", from: "nothing", to: "new", wantErr: ErrNotFound,
			want: map[string]map[string]string{"nothing": nil, "new": nil}},
		{name: "a missing name onto itself", from: "nothing", to: "nothing", wantErr: ErrNotFound,
			want: map[string]map[string]string{"nothing": nil}},
		{name: "an empty bucket", from: "empty", to: "new", renamed: true,
			want: map[string]map[string]string{"empty": nil, "new": {}}},
	}
	for _, durable := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("durable=%v/%s", durable, tc.name), func(t *testing.T) {
				r, st := newMoveFixture(t, durable)

				renamed, err := r.RenameNX(ctx, tc.from, tc.to)
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr)
				} else {
					require.NoError(t, err)
				}
				assert.Equal(t, tc.renamed, renamed)
				requireHolds(t, r, st, tc.want)
			})
		}
	}
}

// A RenameNX and a create of its target that run at the same time are one
// before the other: when the rename reports true, the create came after it
// and wrote into the renamed bucket; when it reports false, the create came
// first and the source is untouched. An acknowledged write to the target
// is never replaced by the renamed pairs.
func TestRenameNXAgainstACreateOfTheTarget(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			r, _ := newRenameTree(t, durable)
			rounds := 300
			if durable {
				rounds = 100
			}
			var wins, losses int
			for round := range rounds {
				_, p, err := r.CreateWith(ctx, "src", func(tx *bucket.Tx) error {
					return tx.Put("from", []byte("src"))
				})
				require.NoError(t, err)
				require.NoError(t, p.Commit())

				// Both start together, one a little after the other, by
				// turns: each comes first in some rounds.
				start := make(chan struct{})
				created := make(chan error, 1)
				go func() {
					<-start
					yield(round%7 + 1)
					_, p, err := r.CreateWith(ctx, "dst", func(tx *bucket.Tx) error {
						return tx.Put("stray", []byte("x"))
					})
					if err == nil {
						err = p.Commit()
					}
					created <- err
				}()
				close(start)
				yield(round % 5)
				renamed, err := r.RenameNX(ctx, "src", "dst")
				require.NoError(t, err)
				require.NoError(t, <-created)

				dst, ok := pairsOf(t, r, "dst")
				require.True(t, ok)
				src, srcOK := pairsOf(t, r, "src")
				if renamed {
					wins++
					require.Equal(t, map[string]string{"from": "src", "stray": "x"}, dst,
						"the create came after the rename, into the renamed bucket")
					require.False(t, srcOK, "src was renamed: %v", src)
				} else {
					losses++
					require.Equal(t, map[string]string{"stray": "x"}, dst, "the create came first")
					require.True(t, srcOK)
					require.Equal(t, map[string]string{"from": "src"}, src, "the source is untouched")
				}
				for _, name := range []string{"src", "dst"} {
					if err := r.Delete(ctx, name); err != nil {
						require.ErrorIs(t, err, ErrNotFound)
					}
				}
			}
			t.Logf("%d renamed, %d found the target", wins, losses)
		})
	}
}

// While a RenameNX or a Copy is under way (here held up by an update of
// its source), a create of its target waits for it, in memory as with a
// store: the target it found missing is still missing when the names
// switch, and the create then writes into the moved bucket: a Create or a
// CreateWith that waited for the move returns the moved bucket, not a new
// one made over it.
func TestACreateOfTheTargetWaitsForAMove(t *testing.T) {
	moves := map[string]func(r *Registry) (bool, error){
		"RenameNX": func(r *Registry) (bool, error) { return r.RenameNX(ctx, "src", "dst") },
		"Copy":     func(r *Registry) (bool, error) { return r.Copy(ctx, "src", "dst", false) },
	}
	for _, durable := range []bool{false, true} {
		for op, move := range moves {
			t.Run(fmt.Sprintf("%s/durable=%v", op, durable), func(t *testing.T) {
				r, _ := newRenameTree(t, durable)
				_, p, err := r.CreateWith(ctx, "src", func(tx *bucket.Tx) error {
					return tx.Put("from", []byte("src"))
				})
				require.NoError(t, err)
				require.NoError(t, p.Commit())
				src, ok := r.Lookup("src")
				require.True(t, ok)

				release := holdBucket(t, src)
				done := goMove(r, move)
				require.Eventually(t, func() bool {
					r.mu.RLock()
					defer r.mu.RUnlock()
					return r.claims["dst"] != nil
				}, waitFor, tick, "the move claims its names")

				stray := func(tx *bucket.Tx) error { return tx.Put("stray", []byte("x")) }
				short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
				_, _, err = r.CreateWith(short, "dst", stray)
				assert.ErrorIs(t, err, context.DeadlineExceeded, "CreateWith waits for the rename")
				_, err = r.Create(short, "dst")
				assert.ErrorIs(t, err, context.DeadlineExceeded, "Create waits for the rename")
				cancel()
				_, ok = r.Lookup("dst")
				assert.False(t, ok, "the target is missing until the switch")

				// A Create and a CreateWith of the target that wait for the
				// move meanwhile find the moved bucket once the names have
				// switched, and the CreateWith writes into it.
				waitingCreate := make(chan *bucket.Bucket, 1)
				go func() {
					b, err := r.Create(ctx, "dst")
					assert.NoError(t, err)
					waitingCreate <- b
				}()
				type created struct {
					b   *bucket.Bucket
					p   bucket.Pending
					err error
				}
				waitingCreateWith := make(chan created, 1)
				go func() {
					b, p, err := r.CreateWith(ctx, "dst", func(tx *bucket.Tx) error { return tx.Put("waited", []byte("y")) })
					waitingCreateWith <- created{b, p, err}
				}()
				waiting := "registry.(*Registry).awaitUnclaimedLocked"
				if durable {
					waiting = "registry.(*Registry).claim("
				}
				require.Eventually(t, func() bool { return goroutinesIn(waiting) == 2 }, waitFor, tick,
					"both creates wait for the move")

				release()
				res := <-done
				require.NoError(t, res.err)
				require.True(t, res.moved)
				moved, ok := r.lookupLive("dst")
				require.True(t, ok)
				assert.Same(t, moved, <-waitingCreate, "the waiting Create returns the moved bucket")
				cw := <-waitingCreateWith
				require.NoError(t, cw.err)
				require.NoError(t, cw.p.Commit())
				assert.Same(t, moved, cw.b, "the waiting CreateWith writes into the moved bucket")
				_, p, err = r.CreateWith(ctx, "dst", stray)
				require.NoError(t, err)
				require.NoError(t, p.Commit())
				got, ok := pairsOf(t, r, "dst")
				require.True(t, ok)
				assert.Equal(t, map[string]string{"from": "src", "stray": "x", "waited": "y"}, got)
			})
		}
	}
}

// yield lets the other goroutines run n times.
func yield(n int) {
	for range n {
		runtime.Gosched()
	}
}

// Of several RenameNX onto one name at once, exactly one renames; the
// others change nothing.
func TestRenameNXHasOneWinner(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			r, _ := newRenameTree(t, durable)
			const sources = 4
			for round := range 50 {
				for i := range sources {
					name := fmt.Sprintf("s%d", i)
					_, p, err := r.CreateWith(ctx, name, func(tx *bucket.Tx) error {
						return tx.Put("from", []byte(name))
					})
					require.NoError(t, err)
					require.NoError(t, p.Commit())
				}
				results := make([]bool, sources)
				var wg sync.WaitGroup
				for i := range sources {
					wg.Go(func() {
						renamed, err := r.RenameNX(ctx, fmt.Sprintf("s%d", i), "target")
						assert.NoError(t, err)
						results[i] = renamed
					})
				}
				wg.Wait()
				winner := -1
				for i, renamed := range results {
					if renamed {
						require.Equal(t, -1, winner, "round %d: two renamed: %v", round, results)
						winner = i
					}
				}
				require.NotEqual(t, -1, winner, "round %d: none renamed", round)
				target, ok := pairsOf(t, r, "target")
				require.True(t, ok)
				require.Equal(t, map[string]string{"from": fmt.Sprintf("s%d", winner)}, target)
				for i := range sources {
					name := fmt.Sprintf("s%d", i)
					pairs, ok := pairsOf(t, r, name)
					require.Equal(t, i != winner, ok, name)
					if i != winner {
						require.Equal(t, map[string]string{"from": name}, pairs)
						require.NoError(t, r.Delete(ctx, name))
					}
				}
				require.NoError(t, r.Delete(ctx, "target"))
			}
		})
	}
}

// In memory, a target that has ended (a crash) has lost its pairs: a
// RenameNX onto it renames, as a create of that name would make it anew.
// With a store the target keeps its pairs on disk, and RenameNX finds it.
func TestRenameNXOntoAnEndedTarget(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			r, _ := newRenameTree(t, durable)
			for _, name := range []string{"src", "dst"} {
				_, p, err := r.CreateWith(ctx, name, func(tx *bucket.Tx) error {
					return tx.Put("k", []byte(name))
				})
				require.NoError(t, err)
				require.NoError(t, p.Commit())
			}
			dst, ok := r.Lookup("dst")
			require.True(t, ok)
			dst.Stop(errors.New("crash"))
			<-dst.Done()

			renamed, err := r.RenameNX(ctx, "src", "dst")
			require.NoError(t, err)
			assert.Equal(t, !durable, renamed)
			got, ok := pairsOf(t, r, "dst")
			require.True(t, ok)
			want := "dst"
			if !durable {
				want = "src"
			}
			assert.Equal(t, map[string]string{"k": want}, got)
		})
	}
}

// Copy copies a bucket's pairs onto another name and leaves the source as
// it is, as Redis's COPY: onto a free name, or with replace onto an
// existing one; otherwise it reports false and changes nothing. The copy
// is a bucket of its own: writes to either do not reach the other. The
// disk holds what memory does.
func TestCopy(t *testing.T) {
	cases := []struct {
		name     string
		from, to string
		replace  bool
		wantErr  error
		copied   bool
		want     map[string]map[string]string // nil: missing
	}{
		{name: "onto a missing name", from: "a", to: "new", copied: true,
			want: map[string]map[string]string{"a": {"ka": "a"}, "new": {"ka": "a"}, "b": {"kb": "b"}}},
		{name: "onto an existing name", from: "a", to: "b",
			want: map[string]map[string]string{"a": {"ka": "a"}, "b": {"kb": "b"}}},
		{name: "onto an existing name, replacing it", from: "a", to: "b", replace: true, copied: true,
			want: map[string]map[string]string{"a": {"ka": "a"}, "b": {"ka": "a"}}},
		{name: "an empty bucket over a full one", from: "empty", to: "a", replace: true, copied: true,
			want: map[string]map[string]string{"empty": {}, "a": {}}},
		{name: "onto itself", from: "a", to: "a", replace: true,
			want: map[string]map[string]string{"a": {"ka": "a"}}},
		{name: "from a missing name", from: "nothing", to: "new", replace: true, wantErr: ErrNotFound,
			want: map[string]map[string]string{"nothing": nil, "new": nil}},
		{name: "a missing name onto itself", from: "nothing", to: "nothing", wantErr: ErrNotFound,
			want: map[string]map[string]string{"nothing": nil}},
	}
	for _, durable := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("durable=%v/%s", durable, tc.name), func(t *testing.T) {
				r, st := newMoveFixture(t, durable)

				copied, err := r.Copy(ctx, tc.from, tc.to, tc.replace)
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr)
				} else {
					require.NoError(t, err)
				}
				assert.Equal(t, tc.copied, copied)
				requireHolds(t, r, st, tc.want)
				if !copied {
					return
				}
				// The copy and its source are two buckets.
				b, ok, err := r.LookupCurrent(ctx, tc.to)
				require.NoError(t, err)
				require.True(t, ok)
				require.NoError(t, b.Put("only-in-copy", []byte("x")))
				got, ok := pairsOf(t, r, tc.from)
				require.True(t, ok)
				assert.NotContains(t, got, "only-in-copy")
			})
		}
	}
}

// In memory, a source that has ended (a crash) but is not yet forgotten
// has lost its pairs: RenameNX reports it missing, as Rename does and as
// Redis's RENAMENX checks its source before its target, rather than
// reporting that the target exists. So does Copy.
func TestRenameNXFromAnEndedSource(t *testing.T) {
	gate := blockerGate()
	r := newTreeWith(t, gate.wrap, nil).reg
	for _, name := range []string{"blocker", "src", "dst"} {
		_, p, err := r.CreateWith(ctx, name, func(tx *bucket.Tx) error {
			return tx.Put("k", []byte(name))
		})
		require.NoError(t, err)
		require.NoError(t, p.Commit())
	}
	// The loop holds the blocker's Exited: the source's end, after it,
	// is not handled until the gate opens.
	defer holdLoop(t, r, gate)()
	src, ok := r.Lookup("src")
	require.True(t, ok)
	src.Stop(errors.New("crash"))
	<-src.Done()

	renamed, err := r.RenameNX(ctx, "src", "dst")
	require.ErrorIs(t, err, ErrNotFound)
	assert.False(t, renamed)
	copied, err := r.Copy(ctx, "src", "dst", false)
	require.ErrorIs(t, err, ErrNotFound, "as Copy reports it")
	assert.False(t, copied)
	err = r.Rename(ctx, "src", "dst")
	require.ErrorIs(t, err, ErrNotFound, "as Rename reports it")
	got, ok := pairsOf(t, r, "dst")
	require.True(t, ok)
	assert.Equal(t, map[string]string{"k": "dst"}, got)
}

// With a store, a source whose creating write was lost has ended and is
// not stored: until the registry forgets it, RenameNX must still report
// it missing (as Rename does), not find the target and answer false.
func TestRenameNXFromALostCreate(t *testing.T) {
	gate := blockerGate()
	st, faults := openFaultyStore(t)
	r, _, stop := newDurableTreeWith(t, &countingStore{Store: st}, gate.wrap)
	defer stop()
	putAll(t, r, "blocker", "dst")
	defer holdLoop(t, r, gate)() // the loop holds the blocker's Exited: src is not forgotten

	loseCreate(t, r, st, faults, "src")

	renamed, err := r.RenameNX(ctx, "src", "dst")
	require.ErrorIs(t, err, ErrNotFound, "src was never stored")
	assert.False(t, renamed)
	copied, err := r.Copy(ctx, "src", "dst", false)
	require.ErrorIs(t, err, ErrNotFound, "as Copy reports it")
	assert.False(t, copied)
	got, ok := pairsOf(t, r, "dst")
	require.True(t, ok)
	assert.Equal(t, map[string]string{"f": "dst"}, got)
}

// A copy is in place before its source can be written again: a client
// whose write of the source is answered after the copy read the source
// and who then finds the destination missing (KEYS, EXISTS), or still as
// it was, would later see the destination appear without its write: no
// order of the write and the COPY gives that, and Redis's COPY is one
// step. In memory the names switch under the source's read lock; with a
// store the destination is listed from the moment the copy is queued (a
// reader that loads it waits for the claim, and so for the switch).
func TestCopyIsInPlaceBeforeItsSourceIsWrittenAgain(t *testing.T) {
	for _, durable := range []bool{false, true} {
		for _, replace := range []bool{false, true} {
			t.Run(fmt.Sprintf("durable=%v/replace=%v", durable, replace), func(t *testing.T) {
				r, _ := newRenameTree(t, durable)
				src, p, err := r.CreateWith(ctx, "src", func(tx *bucket.Tx) error {
					return tx.Put("k", []byte("v"))
				})
				require.NoError(t, err)
				require.NoError(t, p.Commit())
				var old *bucket.Bucket
				if replace {
					old, p, err = r.CreateWith(ctx, "dst", func(tx *bucket.Tx) error {
						return tx.Put("old", []byte("1"))
					})
					require.NoError(t, err)
					require.NoError(t, p.Commit())
				}

				ran := false
				r.testMoveRead = func() {
					ran = true
					// Answered: from here the write is the client's to
					// build on, and the copy must not come after it
					// unseen.
					require.NoError(t, src.Put("later", []byte("1")))
					assert.Contains(t, r.Names(), "dst", "the source was written again before the copy was listed")
					if durable {
						return // a reader of dst loads it, and waits for the copy's claim
					}
					b, ok := r.lookupLive("dst")
					require.True(t, ok, "the source was written again before the copy was in place")
					assert.NotSame(t, old, b, "the source was written again before the copy replaced dst")
				}
				copied, err := r.Copy(ctx, "src", "dst", replace)
				r.testMoveRead = nil
				require.NoError(t, err)
				require.True(t, copied)
				require.True(t, ran)

				got, ok := pairsOf(t, r, "dst")
				require.True(t, ok)
				assert.Equal(t, map[string]string{"k": "v"}, got, "the copy is of the source as it was read")
				got, ok = pairsOf(t, r, "src")
				require.True(t, ok)
				assert.Equal(t, map[string]string{"k": "v", "later": "1"}, got)
			})
		}
	}
}

// With a store, a RenameNX or a Copy without replace reads the index of
// stored names again when it queues its write: a DEL of the target whose
// drop is answered lost after the target was found free puts the target
// back (the disk still holds it), and the move must then change nothing
// rather than overwrite a key its client was told still exists, whether
// its source is in memory or read from the disk.
func TestDurableMoveFindsATargetWhoseDeleteWasLost(t *testing.T) {
	moves := map[string]func(r *Registry) (bool, error){
		"RenameNX": func(r *Registry) (bool, error) { return r.RenameNX(ctx, "src", "dst") },
		"Copy":     func(r *Registry) (bool, error) { return r.Copy(ctx, "src", "dst", false) },
	}
	for op, move := range moves {
		for _, loaded := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/source loaded=%v", op, loaded), func(t *testing.T) {
				testDurableMoveFindsATargetWhoseDeleteWasLost(t, move, loaded)
			})
		}
	}
}

// testDurableMoveFindsATargetWhoseDeleteWasLost is
// TestDurableMoveFindsATargetWhoseDeleteWasLost with the source in memory
// (loaded) or on disk alone, read from the store by the move.
func testDurableMoveFindsATargetWhoseDeleteWasLost(t *testing.T, move func(r *Registry) (bool, error), loaded bool) {
	st, faults := openFaultyStore(t)
	r, _, _ := newDurableTree(t, &countingStore{Store: st})
	putAll(t, r, "src", "dst")
	if !loaded {
		src, ok := r.lookupLive("src")
		require.True(t, ok)
		src.Stop(nil)
		require.NoError(t, r.WaitForgotten(ctx, src))
		_, ok = r.lookupLive("src")
		require.False(t, ok, "stored, not in memory")
	}
	drop, err := r.DeleteNoWait(ctx, "dst") // forgotten, unindexed, its drop queued
	require.NoError(t, err)
	r.testMoveChecked = func() {
		faults.FailSyncs(syscall.EIO)
		require.ErrorIs(t, drop.Wait(), store.ErrWriteFailed)
		faults.Clear()
		waitRecovered(t, st)
	}
	moved, err := move(r)
	require.NoError(t, err)
	assert.False(t, moved, "dst is stored again")
	r.testMoveChecked = nil

	for _, name := range []string{"src", "dst"} {
		got, ok := pairsOf(t, r, name)
		require.True(t, ok, name)
		assert.Equal(t, map[string]string{"f": name}, got, name)
		stored, found, err := st.Load(name)
		require.NoError(t, err)
		require.True(t, found, name)
		assert.Equal(t, map[string][]byte{"f": []byte(name)}, stored, "%s on disk", name)
	}
}

// In memory, a bucket created under a renamed source's name is announced
// after the source's Exited, as with a store: the rename holds the name
// until the source's end is published, and the events of a name stay in
// order for every subscriber.
func TestRenameKeepsTheSourceNamesEventsInOrder(t *testing.T) {
	gate := newGate(func(ev events.Event) bool {
		e, ok := ev.(events.Exited)
		return ok && e.Bucket == "x"
	})
	tr := newTreeWith(t, gate.wrap, nil)
	r := tr.reg
	old, p, err := r.CreateWith(ctx, "x", putF("old"))
	require.NoError(t, err)
	require.NoError(t, p.Commit())
	renamed := make(chan error, 1)
	go func() { renamed <- r.Rename(ctx, "x", "y") }()
	<-gate.held // the source's Exited is held: it is not forgotten yet

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = r.Create(short, "x")
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a create of the source's name waits for its end")
	close(gate.open)
	require.NoError(t, <-renamed)
	b, err := r.Create(ctx, "x")
	require.NoError(t, err)

	at := func(match func(events.Event) bool) int {
		tr.rec.mu.Lock()
		defer tr.rec.mu.Unlock()
		for i, ev := range tr.rec.all {
			if match(ev) {
				return i
			}
		}
		return -1
	}
	created := func(ev events.Event) bool { e, ok := ev.(events.Created); return ok && e.ID == b.ID() }
	exited := func(ev events.Event) bool { e, ok := ev.(events.Exited); return ok && e.ID == old.ID() }
	require.Eventually(t, func() bool { return at(created) >= 0 && at(exited) >= 0 }, waitFor, tick)
	assert.Less(t, at(exited), at(created), "the old x's Exited comes before the new x's Created")
}

// Without an index of stored names (the store could not be listed at
// start), a RenameNX or a Copy without replace asks the store about its
// target once every write made before it has met its fate: a target whose
// create is still queued, its bucket ended and forgotten meanwhile, is
// found, not overwritten when the create's writer is told it succeeded.
func TestMoveWithoutIndexFindsATargetWhoseCreateIsQueued(t *testing.T) {
	moves := map[string]func(r *Registry) (bool, error){
		"RenameNX": func(r *Registry) (bool, error) { return r.RenameNX(ctx, "src", "dst") },
		"Copy":     func(r *Registry) (bool, error) { return r.Copy(ctx, "src", "dst", false) },
	}
	for op, move := range moves {
		t.Run(op, func(t *testing.T) {
			r := newUnindexedTreeWithSrc(t)

			dst, created, err := r.CreateWith(ctx, "dst", putF("dst")) // queued, not waited for
			require.NoError(t, err)
			dst.Stop(errors.New("crash"))
			require.NoError(t, r.WaitForgotten(ctx, dst))

			moved, err := move(r)
			require.NoError(t, err)
			assert.False(t, moved, "dst is stored")
			require.NoError(t, created.Wait(), "the create's writer is told it succeeded")
			got, ok := pairsOf(t, r, "dst")
			require.True(t, ok)
			assert.Equal(t, map[string]string{"f": "dst"}, got)
		})
	}
}

// newUnindexedTreeWithSrc is a durable tree (FsyncAlways) whose store
// holds the bucket src (f: "src") and could not be listed at start: the
// registry has no index of stored names.
func newUnindexedTreeWithSrc(t *testing.T) *Registry {
	t.Helper()
	cs := openStoreWith(t, t.TempDir(), store.Options{Fsync: store.FsyncAlways})
	require.NoError(t, cs.Apply("src", store.Put("f", []byte("src"))))
	cs.failList.Store(true)
	r, _, _ := newDurableTree(t, cs)
	require.Nil(t, r.stored, "no index")
	return r
}

// A move onto a name no bucket can have (empty, or longer than
// MaxNameLen) is refused with ErrInvalidName, and changes nothing, in
// memory as with a store.
func TestMoveRefusesAnInvalidTarget(t *testing.T) {
	moves := map[string]func(r *Registry, to string) error{
		"Rename": func(r *Registry, to string) error { return r.Rename(ctx, "a", to) },
		"RenameNX": func(r *Registry, to string) error {
			_, err := r.RenameNX(ctx, "a", to)
			return err
		},
		"Copy": func(r *Registry, to string) error {
			_, err := r.Copy(ctx, "a", to, true)
			return err
		},
	}
	for _, durable := range []bool{false, true} {
		for op, move := range moves {
			for _, to := range []string{"", strings.Repeat("x", MaxNameLen+1)} {
				t.Run(fmt.Sprintf("durable=%v/%s/%d bytes", durable, op, len(to)), func(t *testing.T) {
					r, st := newMoveFixture(t, durable)
					require.ErrorIs(t, move(r, to), ErrInvalidName)
					requireHolds(t, r, st, map[string]map[string]string{"a": {"ka": "a"}, "b": {"kb": "b"}})
					assert.ElementsMatch(t, []string{"a", "b", "empty"}, r.Names())
				})
			}
		}
	}
}

// noReplaceMoves are the moves that do not replace an existing target.
var noReplaceMoves = map[string]func(r *Registry) (bool, error){
	"RenameNX": func(r *Registry) (bool, error) { return r.RenameNX(ctx, "src", "dst") },
	"Copy":     func(r *Registry) (bool, error) { return r.Copy(ctx, "src", "dst", false) },
}

// waitedFor reports whether someone waits for b to be forgotten.
func waitedFor(r *Registry, b *bucket.Bucket) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.waiters[b.ID()] != nil
}

// With a store, a target whose creating write was lost has ended and is
// not stored: a RenameNX or a Copy without replace onto it, while the
// registry has yet to forget it, waits for that and then makes the move,
// rather than find the target existing (it never did).
func TestDurableMoveOntoALostCreate(t *testing.T) {
	for op, move := range noReplaceMoves {
		t.Run(op, func(t *testing.T) {
			gate := blockerGate()
			st, faults := openFaultyStore(t)
			r, _, stop := newDurableTreeWith(t, &countingStore{Store: st}, gate.wrap)
			defer stop()
			putAll(t, r, "blocker", "src")
			open := holdLoop(t, r, gate) // the loop holds the blocker's Exited: dst is not forgotten
			defer open()

			dst := loseCreate(t, r, st, faults, "dst")

			done := goMove(r, move)
			require.Eventually(t, func() bool { return len(done) == 1 || waitedFor(r, dst) }, waitFor, tick)
			open()
			res := <-done
			require.NoError(t, res.err)
			assert.True(t, res.moved, "dst was never stored")
			got, ok := pairsOf(t, r, "dst")
			require.True(t, ok)
			assert.Equal(t, map[string]string{"f": "src"}, got)
		})
	}
}

// The events stay in order while the registry's loop is slow to publish
// an end (held here at another bucket's Exited), in memory as with a
// store: a replaced target's Exited comes before the new target's Created
// (a copy with replace waits for the old target to be forgotten), and a
// renamed source's Exited before its destination's Created.
func TestMoveKeepsTheEventsInOrder(t *testing.T) {
	for _, durable := range []bool{false, true} {
		for _, tc := range []struct {
			name    string
			dst     bool // dst exists before the move
			move    func(r *Registry) error
			exiting string // the name whose old bucket's Exited comes first
		}{
			{"rename onto a missing name", false, func(r *Registry) error { return r.Rename(ctx, "src", "dst") }, "src"},
			{"copy replacing the target", true, func(r *Registry) error {
				_, err := r.Copy(ctx, "src", "dst", true)
				return err
			}, "dst"},
		} {
			t.Run(fmt.Sprintf("durable=%v/%s", durable, tc.name), func(t *testing.T) {
				gate := blockerGate()
				var r *Registry
				if durable {
					var stop func()
					r, _, stop = newDurableTreeWith(t, openStoreT(t, t.TempDir()), gate.wrap)
					defer stop()
				} else {
					r = newTreeWith(t, gate.wrap, nil).reg
				}
				rec := newRecorder()
				sub, err := gate.Manager.Subscribe(events.SubscribeOptions{Mailbox: 1 << 10, Name: "recorder"}, rec.handle)
				require.NoError(t, err)
				defer sub.Close()
				names := []string{"blocker", "src"}
				if tc.dst {
					names = append(names, "dst")
				}
				putAll(t, r, names...)
				old, ok := r.Lookup(tc.exiting)
				require.True(t, ok)
				open := holdLoop(t, r, gate) // the loop holds the blocker's Exited: no end is published
				defer open()

				done := make(chan error, 1)
				go func() { done <- tc.move(r) }()
				require.Eventually(t, func() bool { return len(done) == 1 || waitedFor(r, old) }, waitFor, tick)
				open()
				require.NoError(t, <-done)
				now, ok := r.lookupLive("dst")
				require.True(t, ok)
				at := func(match func(events.Event) bool) int {
					for i, ev := range rec.events() {
						if match(ev) {
							return i
						}
					}
					return -1
				}
				exited := func(ev events.Event) bool { e, ok := ev.(events.Exited); return ok && e.ID == old.ID() }
				created := func(ev events.Event) bool { e, ok := ev.(events.Created); return ok && e.ID == now.ID() }
				require.Eventually(t, func() bool { return at(exited) >= 0 && at(created) >= 0 }, waitFor, tick)
				assert.Less(t, at(exited), at(created), "the old %s's Exited comes before the new dst's Created", tc.exiting)
			})
		}
	}
}

// Without an index of stored names, the names read the store, which
// shows a move only once it is committed: a RenameNoWait or a CopyNoWait
// commits its move before it returns, even while a transaction holds the
// writes back, so that a reader never finds the pairs under neither name
// (or, for a copy, the target missing once the call has returned).
func TestMoveWithoutIndexIsListedOnceItReturns(t *testing.T) {
	for _, tc := range []struct {
		op   string
		move func(r *Registry) (bucket.Pending, error)
		want []string
	}{
		{"RenameNoWait", func(r *Registry) (bucket.Pending, error) { return r.RenameNoWait(ctx, "src", "dst") }, []string{"dst"}},
		{"CopyNoWait", func(r *Registry) (bucket.Pending, error) {
			_, p, err := r.CopyNoWait(ctx, "src", "dst", false)
			return p, err
		}, []string{"src", "dst"}},
	} {
		t.Run(tc.op, func(t *testing.T) {
			r := newUnindexedTreeWithSrc(t)

			release := r.HoldWrites()
			p, err := tc.move(r)
			names, nerr := r.NamesErr()
			release()
			require.NoError(t, err)
			require.NoError(t, p.Wait())
			require.NoError(t, nerr)
			assert.ElementsMatch(t, tc.want, names)
		})
	}
}

// A rename's index writes keep the first loss of its source: a DEL of the
// source, then a create of it, then the rename, all lost together, leave
// the disk holding the source as it was before the DEL, and the index,
// put back by the DEL's loss, must list it, even though the DEL's loss is
// answered before the rename switches the names.
func TestDurableRenameAfterALostDeleteOfItsSource(t *testing.T) {
	st, faults := openFaultyStore(t)
	r, _, _ := newDurableTree(t, &countingStore{Store: st})
	_, p, err := r.CreateWith(ctx, "src", putF("old"))
	require.NoError(t, err)
	require.NoError(t, p.Commit())
	drop, err := r.DeleteNoWait(ctx, "src")
	require.NoError(t, err)
	_, created, err := r.CreateWith(ctx, "src", putF("new"))
	require.NoError(t, err)

	ran := false
	r.testMoveRead = func() { // the move is queued, the names not yet switched
		ran = true
		faults.FailSyncs(syscall.EIO)
		require.ErrorIs(t, drop.Wait(), store.ErrWriteFailed)
	}
	moved, err := r.RenameNoWait(ctx, "src", "dst")
	r.testMoveRead = nil
	require.NoError(t, err)
	require.True(t, ran)
	require.ErrorIs(t, created.Wait(), store.ErrWriteFailed)
	require.ErrorIs(t, moved.Wait(), store.ErrWriteFailed)
	faults.Clear()
	waitRecovered(t, st)

	pairs, found, err := st.Load("src")
	require.NoError(t, err)
	require.True(t, found, "the disk holds src as it was before the DEL")
	assert.Equal(t, map[string][]byte{"f": []byte("old")}, pairs)
	found, err = st.Has("dst")
	require.NoError(t, err)
	require.False(t, found)
	names, err := r.NamesErr()
	require.NoError(t, err)
	assert.Equal(t, []string{"src"}, names, "the names are what the disk holds")
	got, ok := pairsOf(t, r, "src")
	require.True(t, ok)
	assert.Equal(t, map[string]string{"f": "old"}, got)
}

// In memory, a rename or a copy that began before the registry's stop and
// switches the names after it has begun (held here by an update of its
// source) switches nothing: it reports ErrStopped, and no bucket is made
// under the target once the stop has begun.
func TestMoveInMemoryMeetsTheStop(t *testing.T) {
	for _, tc := range []struct {
		op   string
		move func(r *Registry) error
	}{
		{"Rename", func(r *Registry) error { return r.Rename(ctx, "src", "dst") }},
		{"Copy", func(r *Registry) error {
			_, err := r.Copy(ctx, "src", "dst", false)
			return err
		}},
	} {
		t.Run(tc.op, func(t *testing.T) {
			r := newTree(t).reg
			src, p, err := r.CreateWith(ctx, "src", putF("src"))
			require.NoError(t, err)
			require.NoError(t, p.Commit())
			release := holdBucket(t, src)
			done := make(chan error, 1)
			go func() { done <- tc.move(r) }()
			require.Eventually(t, func() bool {
				r.mu.RLock()
				defer r.mu.RUnlock()
				return r.claims["dst"] != nil
			}, waitFor, tick, "the move claims its names")
			r.mu.Lock()
			r.closed = true // as drain does when the tree stops
			r.mu.Unlock()
			release()

			require.ErrorIs(t, <-done, ErrStopped)
			_, ok := r.lookupLive("dst")
			assert.False(t, ok, "no bucket is made once the stop has begun")
		})
	}
}

// goBlocked runs op on a goroutine of its own and waits until op has
// returned or a goroutine waits in frames (see goroutinesIn); it requires
// the latter (what says why not) and returns the channel op's error comes
// on once it is let go.
func goBlocked(t *testing.T, op func() error, what string, frames ...string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	require.Eventually(t, func() bool { return len(done) == 1 || goroutinesIn(frames...) == 1 }, waitFor, tick)
	assert.Equal(t, 0, len(done), what)
	return done
}

// goroutinesIn counts the goroutines whose stack holds every one of
// frames (as runtime.Stack prints them): a test's way to know that a
// goroutine waits where it must, where nothing else tells.
func goroutinesIn(frames ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
next:
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range frames {
			if !strings.Contains(g, f) {
				continue next
			}
		}
		count++
	}
	return count
}

// putSource writes b from a goroutine of its own, for goroutinesIn to find
// it waiting for b's lock.
//
//go:noinline
func putSource(b *bucket.Bucket) error { return b.Put("later", []byte("1")) }

// A copy reads its source and switches the names (in memory) or queues
// its write and lists its target (with a store) under the source's read
// lock, in one step: no write of the source comes in between, to be
// answered before the copy is in place. The copy is held at that step
// (the test holds the registry's tables), and a write of the source then
// waits for it.
func TestCopyHoldsItsSourceUntilItIsInPlace(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			r, _ := newRenameTree(t, durable)
			src, p, err := r.CreateWith(ctx, "src", putF("src"))
			require.NoError(t, err)
			require.NoError(t, p.Commit())

			// The copy waits for the source's lock, past its checks.
			release := holdBucket(t, src)
			copied := make(chan error, 1)
			go func() {
				_, err := r.Copy(ctx, "src", "dst", false)
				copied <- err
			}()
			require.Eventually(t, func() bool {
				return goroutinesIn("(*Bucket).View", "(*RWMutex).RLock") == 1
			}, waitFor, tick, "the copy waits to read its source")
			// The copy reads, then waits for the tables to put its target
			// in place.
			r.mu.Lock()
			locked := true
			unlock := func() {
				if locked {
					locked = false
					r.mu.Unlock()
				}
			}
			defer unlock()
			release()

			put := goBlocked(t, func() error { return putSource(src) },
				"the source was written between the copy's read and its switch", "registry.putSource", "(*RWMutex).Lock")
			unlock()
			require.NoError(t, <-copied)
			require.NoError(t, <-put)

			got, ok := pairsOf(t, r, "dst")
			require.True(t, ok)
			assert.Equal(t, map[string]string{"f": "src"}, got, "the copy is of the source as it was read")
		})
	}
}

// blockerGate returns a gated publisher that holds the Exited of a bucket
// named blocker (see holdLoop).
func blockerGate() *gatedPublisher {
	return newGate(func(ev events.Event) bool {
		e, ok := ev.(events.Exited)
		return ok && e.Bucket == "blocker"
	})
}

// holdLoop stops r's bucket named blocker, whose registry publishes
// through gate (blockerGate), and returns once the registry's loop holds
// its Exited: no later end is published, nor its bucket forgotten, until
// open is called. Call open before the tree stops.
func holdLoop(t *testing.T, r *Registry, gate *gatedPublisher) (open func()) {
	t.Helper()
	blocker, ok := r.Lookup("blocker")
	require.True(t, ok)
	blocker.Stop(nil)
	<-gate.held
	return sync.OnceFunc(func() { close(gate.open) })
}

// putAll creates each of names, holding {f: its name}, durably.
func putAll(t *testing.T, r *Registry, names ...string) {
	t.Helper()
	for _, name := range names {
		_, p, err := r.CreateWith(ctx, name, putF(name))
		require.NoError(t, err)
		require.NoError(t, p.Commit())
	}
}

// holdBucket holds b's write lock, from an Update of its own, until
// release, which returns once that Update has (without error).
func holdBucket(t *testing.T, b *bucket.Bucket) (release func()) {
	t.Helper()
	inside, done := make(chan struct{}), make(chan struct{})
	updated := make(chan error, 1)
	go func() {
		updated <- b.Update(func(*bucket.Tx) error {
			close(inside)
			<-done
			return nil
		})
	}()
	<-inside
	return func() {
		close(done)
		require.NoError(t, <-updated)
	}
}

// loseCreate creates name with a write the disk loses, then waits for the
// store to recover; with the registry's loop held (holdLoop), the bucket
// it returns has ended and is not yet forgotten.
func loseCreate(t *testing.T, r *Registry, st *store.Store, faults *store.Faults, name string) *bucket.Bucket {
	t.Helper()
	faults.FailSyncs(syscall.EIO)
	b, p, err := r.CreateWith(ctx, name, putF("lost"))
	require.NoError(t, err)
	require.ErrorIs(t, p.Wait(), store.ErrWriteFailed)
	faults.Clear()
	waitRecovered(t, st)
	_, live := r.lookupLive(name)
	require.True(t, live, "ended, not yet forgotten")
	require.True(t, ended(b))
	return b
}

// moveResult is what a move run by goMove reported.
type moveResult struct {
	moved bool
	err   error
}

// goMove runs move on a goroutine of its own; its result comes on the
// channel returned.
func goMove(r *Registry, move func(*Registry) (bool, error)) <-chan moveResult {
	done := make(chan moveResult, 1)
	go func() {
		moved, err := move(r)
		done <- moveResult{moved, err}
	}()
	return done
}
