package bucket

import (
	"fmt"

	"github.com/kvproject/kv/internal/store"
)

// Store is the durable store under a bucket; *store.Store is one. A bucket
// with a Store records every write in it before the write is acknowledged;
// one without keeps its pairs in memory only.
type Store interface {
	// ApplyPairsNoWait writes ops to bucket, which the store records as
	// existing, atomically, and returns a Waiter for their durability. On
	// an error nothing was written.
	ApplyPairsNoWait(bucket string, ops ...store.Op) (store.Waiter, error)
	// ApplyNoWait is ApplyPairsNoWait that also records bucket as
	// existing, in the same atomic write.
	ApplyNoWait(bucket string, ops ...store.Op) (store.Waiter, error)
}

// Restore returns a live bucket holding data (the map becomes the bucket's;
// nil means empty) whose writes are recorded in st before they are
// acknowledged. st nil gives an in-memory bucket, as New does. The registry
// uses it to bring a stored bucket back into memory. The bucket must be
// recorded in st (store.CreateBucket, or found by store.Load) and stay
// recorded while the bucket is live: its writes do not record it again.
func Restore(name string, id uint64, data map[string][]byte, st Store) *Bucket {
	b := New(name, id)
	if len(data) > 0 {
		b.data = data
	}
	b.store = st
	return b
}

// NewUnrecorded returns a new, empty bucket for st that st does not record
// yet: its first write records it, in the same atomic write (a crash
// leaves both or neither), where a bucket made with store.CreateBucket and
// Restore is recorded first, on its own. The registry makes one for a
// write to a missing bucket (HSET creates its hash with its field). Until
// that write, or if it records nothing, st does not know the bucket: see
// Recorded. recorded, if not nil, learns the fate of the write that
// records the bucket, on the goroutine that waits for it: if it fails,
// recorded(true) runs before the bucket ends and before the store may
// recover (see store.Waiter.WaitOrUndo): st does not know the bucket; if
// it is durable, recorded(false) runs once its wait has returned.
func NewUnrecorded(name string, id uint64, st Store, recorded func(lost bool)) *Bucket {
	b := Restore(name, id, nil, st)
	b.unrecorded = true
	b.recorded = recorded
	return b
}

// RestoreMoved is Restore for a bucket whose pairs were just moved to it
// in st by w, a write that may not be durable yet (a RENAME's
// store.Store.Move): it returns the bucket with w as its Pending. If w is
// lost, the bucket ends with the error (its memory holds what the disk
// does not; its next use brings back what the disk holds), after
// onSettled, if not nil, has been called with the error and before the
// store may recover; if w is durable, onSettled(nil) runs once its wait has
// returned. The bucket's writes join the store after w, and are lost with
// it.
func RestoreMoved(name string, id uint64, data map[string][]byte, st Store, w store.Waiter, onSettled func(lost error)) (*Bucket, Pending) {
	b := Restore(name, id, data, st)
	return b, Pending{w: &pendingWrite{b: b, w: w, onSettled: onSettled}}
}

// Recorded reports whether the bucket's store records it: false only for a
// bucket made with NewUnrecorded that has not written yet.
func (b *Bucket) Recorded() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return !b.unrecorded
}

// record writes ops to the store, and returns the write as a pending one;
// the caller holds the write lock and has a store. On an error the caller
// must not change its memory.
func (b *Bucket) record(ops ...store.Op) (*pendingWrite, error) {
	var w store.Waiter
	var err error
	marker := b.unrecorded
	if marker {
		w, err = b.store.ApplyNoWait(b.name, ops...)
	} else {
		w, err = b.store.ApplyPairsNoWait(b.name, ops...)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", b.name, err)
	}
	b.unrecorded = false
	return &pendingWrite{b: b, w: w, marker: marker}, nil
}

// settle waits for a recorded write to be durable, outside the lock. If it
// is not, the write is lost: memory, which already holds it, no longer
// agrees with the store, so the bucket ends with the error (its next use
// brings it back from the store, which does not hold the write), and the
// error is returned. It ends before the store may recover from the
// failure: a writer that read the lost write from memory could otherwise
// make it durable through a write of its own (an HINCRBY after a failed
// one), once the store took writes again.
func (pw *pendingWrite) settle(gathered bool) error {
	return pw.settleWith(func(undo func(error)) error { return pw.w.WaitOrUndo(gathered, undo) })
}

// settleWith is settle with the store's wait given: wait calls the
// Waiter's WaitOrUndo or CommitOrUndo with undo. A write of no bucket's
// (see NewPending) calls its onSettled (with the error if the write is
// lost, with nil once it is durable) instead of ending a bucket.
func (pw *pendingWrite) settleWith(wait func(undo func(error)) error) error {
	if pw.b == nil {
		err := wait(func(err error) {
			if pw.onSettled != nil {
				pw.onSettled(err)
			}
		})
		if err == nil && pw.onSettled != nil {
			pw.onSettled(nil)
		}
		return err
	}
	var lost error
	b := pw.b
	if err := wait(func(err error) {
		lost = fmt.Errorf("bucket %s: %w", b.name, err)
		if pw.marker && b.recorded != nil {
			b.recorded(true)
		}
		if pw.onSettled != nil {
			pw.onSettled(lost)
		}
		b.loseWrite(lost)
	}); err != nil {
		return lost
	}
	if pw.marker && b.recorded != nil {
		b.recorded(false)
	}
	if pw.onSettled != nil {
		pw.onSettled(nil)
	}
	return nil
}

// loseWrite ends the bucket with err, a write of it that failed after it
// was applied in memory.
func (b *Bucket) loseWrite(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endLocked(err)
}

// Pending is a write that a bucket (or, see NewPending, the registry) has
// made in memory and recorded in its store, and that may not be durable
// yet: [Bucket.SetNoWait], [Bucket.UpdateNoWait] and [Bucket.DeleteNoWait]
// (and the registry's NoWait methods) return one so that a caller with
// several writes under way (a network connection running a pipeline of
// commands) waits for their durability once, together, before it answers
// them, rather than once per write. The zero Pending, which an in-memory
// bucket returns, has nothing to wait for.
type Pending struct {
	w *pendingWrite // nil: nothing to wait for (one word, so that the hot
	// in-memory path returns it in a register)
}

type pendingWrite struct {
	b      *Bucket // nil for a write of no bucket's (see NewPending)
	w      store.Waiter
	marker bool // the write records the bucket (see NewUnrecorded)
	// onSettled learns the write's fate (see NewPending, RestoreMoved).
	onSettled func(lost error)
}

// NewPending returns the Pending of a store write that no bucket made (a
// registry's drop of a deleted bucket), so that a caller waits for it
// with its buckets' writes, by the same rules. onSettled, if not nil, is
// called once the write has met its fate: if it is lost, with the error,
// before the store may recover from the failure (see
// store.Waiter.WaitOrUndo for what it must and must not do); if it is
// durable, with nil, once its wait has returned.
func NewPending(w store.Waiter, onSettled func(lost error)) Pending {
	return Pending{w: &pendingWrite{w: w, onSettled: onSettled}}
}

// IsZero reports whether p has nothing to wait for: the write was made in
// an in-memory bucket.
func (p Pending) IsZero() bool { return p.w == nil }

// Wait returns once the write is as durable as the store's policy asks. An
// error means the write is lost: the bucket has ended with it (its next use
// brings it back from the store, without the write; a bucket of
// NewUnrecorded whose first write is lost was never stored, and its next
// use finds none), and the caller must
// report the write as failed. Call Wait exactly once for each Pending that
// came with a nil error, outside any bucket's transaction.
func (p Pending) Wait() error {
	if p.w == nil {
		return nil
	}
	return p.w.settle(false)
}

// WaitGathered is Wait for a caller that has made, before it waits, every
// write that should share this one's commit with the store (an event loop
// that has run the commands of all its ready clients): it commits at once
// (see store.Waiter.WaitOrUndo). The same rules as Wait's apply.
func (p Pending) WaitGathered() error {
	if p.w == nil {
		return nil
	}
	return p.w.settle(true)
}

// Commit is Wait for a caller that may hold the store's writes itself
// (an EXEC's goroutine, under registry.Registry.HoldWrites): it commits
// the write's group even while the hold keeps it, rather than wait for a
// release that only the caller can make. The same rules as Wait's apply.
func (p Pending) Commit() error {
	if p.w == nil {
		return nil
	}
	return p.w.settleWith(p.w.w.CommitOrUndo)
}

// Durable reports whether the bucket records its writes in a store.
func (b *Bucket) Durable() bool { return b.store != nil }
