package registry

import (
	"context"
	"fmt"

	"github.com/kvproject/kv/bucket"
)

// deleteBatch is how many names DeleteManyNoWait handles at a time: their
// buckets are stopped together, then waited for together, so that the
// registry forgets them in batches; with a store they are claimed
// together, and a batch bounds how many names one DEL holds from the
// others at once.
const deleteBatch = 256

// DeleteManyNoWait is DeleteNoWait for several names (DEL k1 k2 ...): it
// stops the buckets of a batch of names before it waits for any of them
// to be forgotten, so that the registry forgets them in batches rather
// than one round trip each. It returns how many of the names it deleted (a
// name given twice counts once, as Redis counts it) and the Pendings of
// their drops (none in memory), to be waited for exactly once each. On an
// error (the first other than a missing name), the names counted are
// deleted, with their Pendings: those of the batches before, and with a
// store those of the failing batch whose drops were queued before the
// one that failed; the others of the failing batch may be stopped (in
// memory their pairs are gone; with a store they stay, and their next use
// loads them). The buckets of a batch end together: their Exited events
// come in the order they end, not in the order of names.
func (r *Registry) DeleteManyNoWait(ctx context.Context, names []string) (deleted int, drops []bucket.Pending, err error) {
	if err := ctx.Err(); err != nil && len(names) > 0 {
		return 0, nil, fmt.Errorf("registry: delete %q: %w", names[0], err)
	}
	seen := make(map[string]struct{}, min(len(names), deleteBatch))
	batch := make([]string, 0, min(len(names), deleteBatch))
	for len(names) > 0 {
		batch = batch[:0]
		clear(seen)
		for len(names) > 0 && len(batch) < deleteBatch {
			if _, dup := seen[names[0]]; !dup {
				seen[names[0]] = struct{}{}
				batch = append(batch, names[0])
			}
			names = names[1:]
		}
		var n int
		if r.store != nil {
			var ps []bucket.Pending
			n, ps, err = r.deleteStoredBatch(ctx, batch)
			drops = append(drops, ps...)
		} else {
			n, err = r.deleteBatchInMemory(ctx, batch)
		}
		deleted += n
		if err != nil {
			return deleted, drops, err
		}
	}
	return deleted, drops, nil
}

// victim is a bucket that a delete stops: b is nil for a stored bucket
// that is not in memory; gone is closed once the registry has forgotten b.
type victim struct {
	name    string
	b       *bucket.Bucket
	gone    <-chan struct{}
	stopped bool // this delete ended b
}

// stopAndWait stops the live buckets of vs, then waits until the registry
// has forgotten every one of them.
func (r *Registry) stopAndWait(ctx context.Context, vs []victim) error {
	r.mu.Lock()
	for i := range vs {
		if vs[i].b != nil {
			vs[i].gone = r.forgottenLocked(vs[i].b)
		}
	}
	r.mu.Unlock()
	for i := range vs {
		if vs[i].b != nil {
			vs[i].stopped = vs[i].b.Stop(nil)
		}
	}
	for _, v := range vs {
		if v.gone == nil {
			continue
		}
		if err := r.awaitForgotten(ctx, v.gone); err != nil {
			return fmt.Errorf("registry: delete %q: %w", v.name, err)
		}
	}
	return nil
}

// deleteBatchInMemory deletes the buckets of names, distinct, without a
// store: those it ends count as deleted; one that had already ended (a
// crash, another delete) is waited for, and not counted.
func (r *Registry) deleteBatchInMemory(ctx context.Context, names []string) (int, error) {
	vs := make([]victim, 0, len(names))
	r.mu.RLock()
	for _, name := range names {
		if b, ok := r.names[name]; ok {
			vs = append(vs, victim{name: name, b: b})
		}
	}
	r.mu.RUnlock()
	if err := r.stopAndWait(ctx, vs); err != nil {
		return 0, err
	}
	n := 0
	for _, v := range vs {
		if v.stopped {
			n++
		}
	}
	return n, nil
}

// deleteStoredBatch deletes the buckets of names, distinct, with a store:
// each bucket is stopped if it is live and its data is dropped, whether it
// was live, ended (a crash) or only stored. The drops are queued, and the
// names leave the index of stored names at once: a later create of a name
// writes after its drop, and a Load commits it first. If a drop is then
// lost, its name goes back into the index (the bucket may still be stored:
// its next use loads it, if it is).
func (r *Registry) deleteStoredBatch(ctx context.Context, names []string) (int, []bucket.Pending, error) {
	if err := r.claim(ctx, names...); err != nil {
		return 0, nil, fmt.Errorf("registry: delete %q: %w", names[0], err)
	}
	defer r.unclaim(names...)
	vs := make([]victim, 0, len(names))
	for _, name := range names {
		b, live := r.lookupLive(name) // no load: the names are claimed
		if !live {
			found, err := r.has(name)
			if err != nil {
				return 0, nil, fmt.Errorf("registry: delete %q: %w", name, err)
			}
			if !found {
				continue
			}
		}
		vs = append(vs, victim{name: name, b: b})
	}
	if err := r.stopAndWait(ctx, vs); err != nil {
		return 0, nil, err
	}
	r.mu.RLock()
	indexed := r.stored != nil
	r.mu.RUnlock()
	var drops []bucket.Pending
	for i, v := range vs {
		if !indexed {
			// Without the index, has, Names, Len and Scan read the store,
			// which shows the bucket until its drop is committed: the drop
			// is waited for here, or a second DEL would count the bucket
			// again and KEYS would list it.
			if err := r.store.DropBucket(v.name); err != nil {
				return i, drops, fmt.Errorf("registry: delete %q: %w", v.name, err)
			}
			continue
		}
		p, err := r.queueDrop(v.name)
		if err != nil {
			return i, drops, fmt.Errorf("registry: delete %q: %w", v.name, err)
		}
		drops = append(drops, p)
	}
	return len(vs), drops, nil
}

// queueDrop queues the drop of bucket name, claimed and stopped, takes the
// name out of the index of stored names, and returns the drop's Pending.
// The drop is queued and tracked in one step, as a rename's move is (see
// moveStored).
//
// Whether name was stored before the drop is what the index says now,
// not what it said when the delete looked at name: the delete has waited
// since for buckets to be forgotten (name's own, or others' of its batch),
// and meanwhile the write that created name may have been answered lost
// (taking name out of the index, as the disk holds no name). Taken as
// stored, a loss of the drop too would then list name again, as a
// phantom (as a rename asks about its destination once it is forgotten).
func (r *Registry) queueDrop(name string) (bucket.Pending, error) {
	r.indexMu.Lock()
	defer r.indexMu.Unlock()
	w, err := r.store.DropBucketNoWait(name)
	if err != nil {
		return bucket.Pending{}, err
	}
	r.mu.Lock()
	_, stored := r.stored[name] // under indexMu: no write of name is answered meanwhile
	r.unindexLocked(name)
	iw := r.trackIndexWriteLocked(name, stored)
	r.mu.Unlock()
	return bucket.NewPending(w, func(lost error) { r.settledIndexWrite(name, iw, lost != nil) }), nil
}
