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

// group is a group commit: the writes of Put and Set that arrived while
// the previous group was being written, recorded in the store as one batch.
// Its first writer (the leader) has it written and waits for it; the others
// wait for done.
type group struct {
	ops  []store.Op
	w    store.Waiter // set, under the bucket's lock, by whoever flushed it
	err  error        // the store refused it, or (once done) it failed
	done chan struct{}
}

// record writes ops to the store; the caller holds the write lock and has a
// store. The pending group, if any, is written first, so that the store
// sees the writes in the order memory did. On an error the caller must not
// change its memory (and the bucket may have ended: check b.ended).
func (b *Bucket) record(ops ...store.Op) (store.Waiter, error) {
	b.flushLocked()
	if b.ended {
		return store.Waiter{}, fmt.Errorf("bucket %s: %w", b.name, ErrEnded)
	}
	w, err := b.store.ApplyPairsNoWait(b.name, ops...)
	if err != nil {
		return store.Waiter{}, fmt.Errorf("bucket %s: %w", b.name, err)
	}
	return w, nil
}

// join adds op, already applied in memory, to the pending group (starting
// one if there is none); the caller holds the write lock. It reports
// whether the caller leads the group.
func (b *Bucket) join(op store.Op) (g *group, leader bool) {
	g = b.pending
	if g == nil {
		g = &group{done: make(chan struct{})}
		b.pending = g
		leader = true
	}
	g.ops = append(g.ops, op)
	return g, leader
}

// flushLocked writes the pending group to the store; the caller holds the
// write lock. If the store refuses it, its writes, already in memory, are
// not in the store: the bucket ends with the error.
func (b *Bucket) flushLocked() {
	g := b.pending
	if g == nil {
		return
	}
	b.pending = nil
	g.w, g.err = b.store.ApplyPairsNoWait(b.name, g.ops...)
	if g.err != nil {
		g.err = fmt.Errorf("bucket %s: %w", b.name, g.err)
		b.endLocked(g.err)
	}
}

// commit waits for the group g to be durable and returns its error; the
// caller does not hold the lock. The leader writes the group (unless an end
// of the bucket or another write did it first) and waits for the store;
// the others wait for the leader.
func (b *Bucket) commit(g *group, leader bool) error {
	if !leader {
		<-g.done
		return g.err
	}
	b.mu.Lock()
	if b.pending == g {
		b.flushLocked()
	}
	b.mu.Unlock()
	if g.err == nil {
		if err := g.w.Wait(); err != nil {
			g.err = fmt.Errorf("bucket %s: %w", b.name, err)
			b.Stop(g.err)
		}
	}
	close(g.done)
	return g.err
}

// settle waits for a recorded write to be durable, outside the lock. If it
// is not, the write is lost: memory, which already holds it, no longer
// agrees with the store, so the bucket ends with the error (its next use
// brings it back from the store, which does not hold the write), and the
// error is returned.
func (b *Bucket) settle(w store.Waiter) error {
	if err := w.Wait(); err != nil {
		err = fmt.Errorf("bucket %s: %w", b.name, err)
		b.Stop(err)
		return err
	}
	return nil
}

// Durable reports whether the bucket records its writes in a store.
func (b *Bucket) Durable() bool { return b.store != nil }
