package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/scanorder"
	"github.com/kvproject/kv/internal/store"
)

// Rename moves the pairs of bucket from to bucket to, replacing to (Redis's
// RENAME). from ends, and its pairs are taken in the same step, so that no
// write to it is acknowledged and then lost; with a store the move is one
// atomic write, and Rename returns once it is durable. It returns an error
// wrapping ErrNotFound when from does not exist. A ctx that has ended
// before the call changes nothing (an error wrapping ctx's error, as from
// Create and Delete), and so does a Rename that begins once the registry's
// stop has begun (an error wrapping ErrStopped, as from Delete); in
// memory, one under way when the stop begins may end its source before it
// reports ErrStopped (its pairs go with the rest of memory). While a
// rename runs, both names are claimed: a create, rename or copy of either
// waits until the names have switched.
func (r *Registry) Rename(ctx context.Context, from, to string) error {
	_, err := r.moveAndCommit(ctx, from, to, moveOp{name: "rename", replace: true})
	return err
}

// RenameNoWait is Rename for a caller that waits for the move's
// durability itself, with its buckets' writes (a connection answering a
// pipeline, as with DeleteNoWait): it returns once the names have
// switched, with the move queued in the store, and its Pending (the zero
// Pending in memory, and with a store whose buckets could not be listed
// at start, where the move is waited for, as DeleteNoWait waits for a
// drop). If the move is lost, the Pending's wait fails, the bucket now
// named to ends (its next use brings back what the disk holds: to as it
// was), and from is listed again. Wait for the Pending exactly once.
func (r *Registry) RenameNoWait(ctx context.Context, from, to string) (bucket.Pending, error) {
	_, p, err := r.move(ctx, from, to, moveOp{name: "rename", replace: true})
	return p, err
}

// RenameNX is Rename that renames only if no bucket is named to (Redis's
// RENAMENX): when one is, or when to is from, it reports false and changes
// nothing. The check and the rename are one step: while a RenameNX runs,
// no create of either name and no other rename of them comes in between,
// in memory as with a store. A bucket named to that has ended but is not
// yet forgotten counts as missing in memory (its pairs are gone), and as
// what the disk holds with a store. It returns an error wrapping
// ErrNotFound when from does not exist (even when to is from), and fails
// as Rename does.
func (r *Registry) RenameNX(ctx context.Context, from, to string) (bool, error) {
	return r.moveAndCommit(ctx, from, to, moveOp{name: "rename"})
}

// RenameNXNoWait is RenameNX for a caller that waits for the move's
// Pending itself, as with RenameNoWait. The Pending is the zero Pending
// when it reports false.
func (r *Registry) RenameNXNoWait(ctx context.Context, from, to string) (bool, bucket.Pending, error) {
	return r.move(ctx, from, to, moveOp{name: "rename"})
}

// Copy makes bucket to a copy of bucket from, which is left as it is
// (Redis's COPY): a copy of from's pairs as they are at one moment, with a
// store recorded in one atomic write. When a bucket is named to, Copy
// replaces it if replace is true, and otherwise reports false and changes
// nothing; a copy of a name onto itself reports false and changes
// nothing. The check of to and the copy are one step, as RenameNX's are
// (the names are claimed), and a bucket named to that has ended counts as
// RenameNX counts it. It returns an error wrapping ErrNotFound when from
// does not exist, and fails as Rename does.
func (r *Registry) Copy(ctx context.Context, from, to string, replace bool) (bool, error) {
	return r.moveAndCommit(ctx, from, to, moveOp{name: "copy", keep: true, replace: replace})
}

// CopyNoWait is Copy for a caller that waits for the copy's durability
// itself, as with RenameNoWait: if the copy's write is lost, the Pending's
// wait fails and the bucket named to ends (its next use brings back what
// the disk holds). The Pending is the zero Pending when it reports false.
func (r *Registry) CopyNoWait(ctx context.Context, from, to string, replace bool) (bool, bucket.Pending, error) {
	return r.move(ctx, from, to, moveOp{name: "copy", keep: true, replace: replace})
}

// moveAndCommit is move for Rename, RenameNX and Copy: it returns once
// the move, if made, is durable.
func (r *Registry) moveAndCommit(ctx context.Context, from, to string, op moveOp) (bool, error) {
	done, p, err := r.move(ctx, from, to, op)
	if err != nil || !done {
		return false, err
	}
	// Committed even while a Hold keeps the move's group, as the store's
	// own synchronous writes are (see store.Store.Hold).
	if err := p.Commit(); err != nil {
		return false, fmt.Errorf("registry: %s %q: %w", op.name, from, err)
	}
	return true, nil
}

// moveOp says what a move of a bucket's pairs onto another name does.
type moveOp struct {
	name    string // for errors: "rename" or "copy"
	keep    bool   // the source stays as it is (a copy); otherwise it ends
	replace bool   // a bucket named to is replaced; otherwise the move is not made
}

// move is RenameNoWait, RenameNXNoWait and CopyNoWait, as op says: it
// reports whether the move was made.
func (r *Registry) move(ctx context.Context, from, to string, op moveOp) (bool, bucket.Pending, error) {
	if err := CheckName(to); err != nil {
		return false, bucket.Pending{}, err
	}
	if err := ctx.Err(); err != nil {
		return false, bucket.Pending{}, fmt.Errorf("registry: %s %q: %w", op.name, from, err)
	}
	var done bool
	var p bucket.Pending
	var err error
	if r.store == nil {
		done, err = r.moveInMemory(ctx, from, to, op)
	} else {
		done, p, err = r.moveStored(ctx, from, to, op)
	}
	if err != nil {
		return false, bucket.Pending{}, fmt.Errorf("registry: %s %q: %w", op.name, from, err)
	}
	return done, p, nil
}

// errTargetExists is what a move that does not replace finds when its
// target has become stored again since it was checked (see moveStored).
var errTargetExists = errors.New("registry: the target exists")

// moveStored is move with a store.
func (r *Registry) moveStored(ctx context.Context, from, to string, op moveOp) (bool, bucket.Pending, error) {
	if err := r.claim(ctx, from, to); err != nil {
		return false, bucket.Pending{}, err
	}
	defer r.unclaim(from, to)
	r.flushMu.RLock()
	defer r.flushMu.RUnlock()
	// No load: the names are claimed. Marked used, as a lookup's (see
	// Config.UnloadIdle): a bucket read by COPY after COPY stays in memory.
	src, live := r.live(from)
	// A source that has ended is what the disk holds: stored after a
	// crash, missing when its creating write was lost. It is asked about
	// before to is looked at, so that a missing source is reported as
	// such (as Redis checks the source first), not as a target that
	// exists; a stored one is read from the store below.
	if !live || ended(src) {
		found, err := r.has(from)
		if err != nil {
			return false, bucket.Pending{}, err
		}
		if !found {
			return false, bucket.Pending{}, ErrNotFound
		}
	}
	if from == to && (op.keep || !op.replace) {
		return false, bucket.Pending{}, nil // nothing to do, and nothing done
	}
	// The bucket named to ends before the move is queued: its writes are
	// queued before the move's drop of its pairs, none after.
	dstStored := true // from == to: stored, as from is
	if from != to {
		if dst, ok := r.lookupLive(to); ok {
			if !op.replace && !ended(dst) {
				return false, bucket.Pending{}, nil
			}
			dst.Stop(nil)
			if err := r.WaitForgotten(ctx, dst); err != nil {
				return false, bucket.Pending{}, err
			}
		}
		// Without the index, has reads what is committed: a create of to
		// still queued, its bucket ended and forgotten since, would not
		// show, and a move that does not replace would overwrite it once
		// its writer is told it succeeded. Every write made so far meets
		// its fate first.
		r.mu.RLock()
		unindexed := r.stored == nil
		r.mu.RUnlock()
		if unindexed && !op.replace {
			if err := r.store.Settle(); err != nil {
				return false, bucket.Pending{}, err
			}
		}
		// Asked once it is forgotten: a live bucket may have ended
		// because its creating write was lost, and then it is not stored.
		var err error
		if dstStored, err = r.has(to); err != nil {
			return false, bucket.Pending{}, err
		}
		if !op.replace && dstStored {
			return false, bucket.Pending{}, nil
		}
	}
	if r.testMoveChecked != nil {
		r.testMoveChecked()
	}
	r.mu.RLock()
	indexed := r.stored != nil
	r.mu.RUnlock()
	// The move's index writes are tracked in the same step as the move is
	// queued, with no write of either name settled in between: an earlier
	// write of the name answered lost before it belongs to a failure that
	// is over (the store took the move), one answered after it to the
	// failure that loses the move too, and must not be forgotten (see
	// trackIndexWriteLocked). A copy leaves from as it is: it writes to
	// alone, and lists to at once, under from's lock: from can be written
	// again as soon as the copy is queued, and a client whose write of
	// from is answered must not then find to missing, to see it appear
	// later without that write. A reader of to now loads it, and waits for
	// the claim, and so for the switch below.
	var w store.Waiter
	var iwFrom, iwTo *indexWrite
	queue := func(pairs map[string][]byte) error {
		r.indexMu.Lock()
		defer r.indexMu.Unlock()
		if indexed && from != to {
			// What the index says of to now, with no write of it settled
			// until the move is queued: a write of to answered lost since
			// it was asked above (a DEL's drop, a create's first write)
			// has put the index back to what the disk holds, which the
			// move must neither overwrite unasked nor restore wrongly if
			// it is lost in turn.
			r.mu.RLock()
			_, dstStored = r.stored[to]
			r.mu.RUnlock()
			if dstStored && !op.replace {
				return errTargetExists
			}
		}
		var err error
		if op.keep {
			w, err = r.store.Replace(to, pairs)
		} else {
			w, err = r.store.Move(from, to, pairs)
		}
		if err != nil {
			return err
		}
		if indexed {
			r.mu.Lock()
			if !op.keep {
				iwFrom = r.trackIndexWriteLocked(from, true)
			}
			if to != from {
				iwTo = r.trackIndexWriteLocked(to, dstStored)
			}
			if op.keep {
				r.indexLocked(to)
			}
			r.mu.Unlock()
		}
		return nil
	}
	var data map[string][]byte
	if live {
		var err error
		if op.keep {
			// Read and queued in one step under the bucket's read lock: a
			// write of from still on its way to the disk is queued before
			// the copy, and if it is lost, so is the copy, which holds it.
			err = src.View(func(tx *bucket.Tx) error {
				data = make(map[string][]byte, tx.Len())
				if err := tx.ForEach(func(k string, v []byte) error {
					data[k] = v // ForEach hands out copies
					return nil
				}); err != nil {
					return err
				}
				return queue(data)
			})
		} else {
			// Taken and moved in one step under the bucket's lock: a write
			// of from still on its way to the disk is queued before the
			// move, and if it is lost, so is the move (see
			// bucket.TakeMoving).
			data, err = src.TakeMoving(nil, queue)
		}
		if errors.Is(err, bucket.ErrEnded) {
			live = false // it ended (a crash): its data is in the store
		} else if errors.Is(err, errTargetExists) {
			return false, bucket.Pending{}, nil // nothing written
		} else if err != nil {
			return false, bucket.Pending{}, err // nothing written; from is as it was
		}
	}
	if r.testMoveRead != nil {
		r.testMoveRead()
	}
	if !live {
		pairs, found, err := r.store.Load(from)
		if err != nil {
			return false, bucket.Pending{}, err
		}
		if !found {
			return false, bucket.Pending{}, ErrNotFound
		}
		if err := queue(pairs); errors.Is(err, errTargetExists) {
			return false, bucket.Pending{}, nil // nothing written
		} else if err != nil {
			return false, bucket.Pending{}, err
		}
		data = pairs
	}
	// Queued: the move stands from here, unless it is lost, which its
	// Pending reports. The wait for from's bucket to be forgotten only
	// keeps the events in order (its Exited before to's Created), bounded
	// by StopTimeout rather than by ctx, as in moveInMemory.
	if src != nil && !op.keep {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.stopFor)
		err := r.WaitForgotten(wctx, src)
		cancel()
		if err != nil {
			r.log.Warn("registry: rename: the source's end was not reported in time; the destination's Created may come first",
				"bucket", from, "err", err)
		}
	}
	b, p := bucket.RestoreMoved(to, r.newID(), data, r.store, w, func(lost error) {
		if iwFrom != nil {
			r.settledIndexWrite(from, iwFrom, lost != nil)
		}
		if iwTo != nil {
			r.settledIndexWrite(to, iwTo, lost != nil)
		}
	})
	if !indexed {
		// Without the index, has, Names, Len and Scan read the store,
		// which shows from (and not to) until the move is committed: the
		// move is waited for here, as a DEL waits for its drop (see
		// deleteStoredBatch). If it is lost, b ends, never registered,
		// and both buckets are as they were on disk: their next use
		// brings them back.
		if err := p.Commit(); err != nil {
			return false, bucket.Pending{}, err
		}
		p = bucket.Pending{}
	}
	// One step switches the names in the index, as the move does on disk
	// (and as moveInMemory does in memory): no reader (a miss, Names,
	// Len, Scan) finds the pairs under neither name, or under both.
	// Unindexing from, then registering to, would let a KEYS or a miss of
	// each name in between find neither. If the move is lost, the index
	// goes back to what the disk holds (see indexWrite).
	r.mu.Lock()
	if !op.keep {
		r.unindexLocked(from) // first: from may be to
	}
	refused := r.closed
	if refused {
		r.indexLocked(to) // stored: it loads at its next use
	} else {
		r.addLocked(to, b) // indexes to
	}
	// A write of either name queued before the move and answered lost
	// since has put the index back to what the disk holds; the move,
	// queued after it, is lost too: the switch above must not undo that.
	if iwFrom != nil {
		r.keepFirstLossLocked(from, iwFrom)
	}
	if iwTo != nil {
		r.keepFirstLossLocked(to, iwTo)
	}
	r.mu.Unlock()
	err := errRefused
	if !refused {
		err = r.start(to, b)
	}
	if err != nil {
		// Most likely the tree is stopping (the registry, or the bucket
		// supervisor before it). Whatever the cause, the move stands (if
		// it is not lost), and to is loaded at its next use.
		r.log.Warn("registry: "+op.name+" queued on disk; the destination could not be started, and will load at its next use",
			"bucket", to, "err", err)
	}
	return true, p, nil
}

// moveInMemory is move without a store.
func (r *Registry) moveInMemory(ctx context.Context, from, to string, op moveOp) (bool, error) {
	// Both names are claimed until they have switched, as with a store:
	// no create of either name and no other rename or copy of them comes
	// in between, so that what a RenameNX or a Copy finds of to still
	// holds at the switch (see create and CreateWith).
	if err := r.claim(ctx, from, to); err != nil {
		return false, err
	}
	// Until the names have switched: a FlushAll runs wholly before or
	// after (see FlushAll).
	r.flushMu.RLock()
	switched := false
	defer func() {
		if !switched {
			r.flushMu.RUnlock()
			r.unclaim(from, to)
		}
	}()
	src, ok := r.Lookup(from)
	if !ok || ended(src) {
		// An ended source has lost its pairs (Take would find it ended):
		// missing, before to is looked at, as Redis checks the source
		// first.
		return false, ErrNotFound
	}
	if from == to {
		return !op.keep && op.replace, nil // a rename onto itself is done
	}
	if !op.replace {
		// A bucket that has ended has lost its pairs: the name is free,
		// and the switch replaces the bucket, as Rename's does.
		if dst, ok := r.Lookup(to); ok && !ended(dst) {
			return false, nil
		}
	}
	// One step switches the names: to names a new bucket that already
	// holds the pairs, and (for a rename) from names nothing (the claim
	// keeps writers from making a new bucket of that name until the
	// switch is done). No reader sees to missing or half filled, and no
	// writer's bucket of that name can be merged into: a bucket named to
	// before this step is replaced. A copy switches under from's read
	// lock: no write of from is answered between the copy's read and the
	// switch, so no client writes from and then finds to missing, or as it
	// was, to see it appear later without that write.
	var b, old *bucket.Bucket
	stopped := false
	switchNames := func(data map[string][]byte) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			stopped = true
			return
		}
		r.nextID++
		b = bucket.Restore(to, r.nextID, data, nil)
		old = r.names[to]
		r.addLocked(to, b)
		if !op.keep && r.names[from] == src {
			delete(r.names, from)
			r.order.Delete(scanorder.Of(from))
		}
	}
	var err error
	if op.keep {
		err = src.View(func(tx *bucket.Tx) error {
			data := make(map[string][]byte, tx.Len())
			if err := tx.ForEach(func(k string, v []byte) error {
				data[k] = v // ForEach hands out copies
				return nil
			}); err != nil {
				return err
			}
			switchNames(data)
			return nil
		})
	} else {
		var data map[string][]byte
		if data, err = src.Take(nil); err == nil {
			switchNames(data)
		}
	}
	if r.testMoveRead != nil {
		r.testMoveRead()
	}
	if err != nil {
		return false, ErrNotFound
	}
	if stopped {
		return false, ErrStopped
	}
	switched = true
	r.flushMu.RUnlock()
	if op.keep {
		r.unclaim(from, to)
	} else {
		// A rename keeps its claims until its source's Exited is
		// published (below): a create of from waits for it, so that the
		// events of the name stay in order (the source's Exited before a
		// new bucket's Created), as with a store, where the claims last
		// the whole move.
		defer r.unclaim(from, to)
	}
	// The names have switched: the move has happened, and it reports
	// success whatever ctx says from here on. The waits below only keep
	// the events in order, bounded by StopTimeout rather than by ctx, as
	// with a store: the replaced bucket ends normally, and its Exited, and
	// a renamed source's, are published before the new bucket's Created.
	// Until then the new bucket is usable but not yet running; a Delete
	// meanwhile waits for it to start and end. The ends reach the loop,
	// which publishes their Exited without touching the names they no
	// longer hold.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.stopFor)
	defer cancel()
	if old != nil {
		old.Stop(nil)
		if err := r.WaitForgotten(wctx, old); err != nil {
			r.log.Warn("registry: "+op.name+": the replaced bucket's end was not reported in time; the new bucket's Created may come first",
				"bucket", to, "err", err)
		}
	}
	if !op.keep {
		if err := r.WaitForgotten(wctx, src); err != nil {
			r.log.Warn("registry: rename: the source's end was not reported in time; the destination's Created may come first",
				"bucket", from, "err", err)
		}
	}
	if err := r.start(to, b); err != nil {
		return true, err
	}
	return true, nil
}

// ended reports whether b has ended.
func ended(b *bucket.Bucket) bool {
	select {
	case <-b.Done():
		return true
	default:
		return false
	}
}
