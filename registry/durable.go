package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/scanorder"
	"github.com/kvproject/kv/internal/store"
)

// Store is the durable store under the buckets; *store.Store is one. With a
// Store the registry loads buckets lazily: a stored bucket comes into
// memory (and gets a goroutine) at its first use, on the caller's
// goroutine, and a bucket that ended for any reason but a Delete keeps its
// data, which its next use brings back.
type Store interface {
	bucket.Store
	// Has reports whether bucket name is stored.
	Has(name string) (bool, error)
	// Load returns the pairs of bucket name and whether it is stored.
	Load(name string) (pairs map[string][]byte, found bool, err error)
	// CreateBucket records an empty bucket, durably.
	CreateBucket(name string) error
	// DropBucket deletes a bucket and its pairs, durably.
	DropBucket(name string) error
	// DropBucketNoWait deletes a bucket and its pairs, and returns the
	// deletion's Waiter.
	DropBucketNoWait(name string) (store.Waiter, error)
	// DropAll deletes every bucket, durably.
	DropAll() error
	// Buckets calls fn with each stored bucket's name.
	Buckets(fn func(name string) error) error
	// Move replaces bucket to with pairs and deletes from, atomically.
	Move(from, to string, pairs map[string][]byte) (store.Waiter, error)
	// Replace replaces bucket to with pairs, atomically.
	Replace(to string, pairs map[string][]byte) (store.Waiter, error)
	// Settle returns once every write made so far has met its fate.
	Settle() error
	// Hold keeps the writes made until release in one atomic write (see
	// store.Store.Hold).
	Hold() (release func())
}

// HoldWrites keeps the store writes made from now until release in one
// atomic write, so that a crash keeps all of them or none: EXEC holds
// while it runs a transaction's commands, under TxLock. A flush or the
// load of a stored bucket meanwhile (a rename's source that is not in
// memory, the first use of a stored bucket), or a delete or rename without
// the index of stored names, commits what came before it (see
// store.Store.Hold). Without a store it does nothing. Call release exactly
// once, and do not wait for a bucket's Pending in between.
func (r *Registry) HoldWrites() (release func()) {
	if r.store == nil {
		return func() {}
	}
	return r.store.Hold()
}

// Durable reports whether the registry's buckets are recorded in a store.
func (r *Registry) Durable() bool { return r.store != nil }

// claim reserves names for the caller: while a name is claimed, no other
// caller loads, creates, deletes or renames it. Claims of several names are
// taken at once, so that two callers cannot deadlock.
//
// Once the registry has closed (its stop has begun, see drain), claim
// refuses with ErrStopped (after Admit, whose refusal says more: a tree
// refused its DataDir is drained at once): a stop waits for the claims
// taken before it, which are finite, and for none after, so that callers
// that keep coming while the tree stops (a host, a front end slow to
// stop) cannot hold it until StopTimeout, and no write of this registry
// can reach the store after its Serve has returned.
func (r *Registry) claim(ctx context.Context, names ...string) error {
	if err := r.admitted(); err != nil {
		return err
	}
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return ErrStopped
		}
		var busy chan struct{}
		for _, n := range names {
			if c := r.claims[n]; c != nil {
				busy = c
				break
			}
		}
		if busy == nil {
			c := make(chan struct{})
			for _, n := range names {
				r.claims[n] = c
			}
			r.mu.Unlock()
			return nil
		}
		r.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// admitted asks Config.Admit whether the store may be used now.
func (r *Registry) admitted() error {
	if r.admit == nil {
		return nil
	}
	return r.admit()
}

// unclaim releases names claimed together.
func (r *Registry) unclaim(names ...string) {
	r.mu.Lock()
	c := r.claims[names[0]]
	for _, n := range names {
		delete(r.claims, n)
	}
	r.mu.Unlock()
	close(c)
}

// load returns the bucket named name, bringing it into memory from the
// store if it is stored there, or (when create is true) creating it, empty,
// in the store and in memory. Concurrent loads of one name share one read
// of the store. It reports found false, with no error, for a name neither
// live nor stored when create is false.
func (r *Registry) load(ctx context.Context, name string, create bool) (*bucket.Bucket, bool, error) {
	if err := r.claim(ctx, name); err != nil {
		return nil, false, fmt.Errorf("registry: load %q: %w", name, err)
	}
	defer r.unclaim(name)
	// Under the claim, only this caller can add name to the tables.
	r.mu.RLock()
	b, ok := r.names[name]
	closed := r.closed
	r.mu.RUnlock()
	if ok {
		return b, true, nil
	}
	if closed {
		return nil, false, ErrStopped
	}
	r.flushMu.RLock()
	defer r.flushMu.RUnlock()
	var (
		pairs map[string][]byte
		found bool
	)
	if r.maybeStored(name) { // else known absent: a create reads nothing
		var err error
		if pairs, found, err = r.store.Load(name); err != nil {
			return nil, false, fmt.Errorf("registry: load %q: %w", name, err)
		}
	}
	var err error
	switch {
	case found:
		b, err = r.register(name, pairs)
	case create:
		b, err = r.createEmpty(name)
	default:
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// createEmpty records bucket name, empty, in the store, and registers it.
// The caller has claimed name, and found it not stored.
func (r *Registry) createEmpty(name string) (*bucket.Bucket, error) {
	if err := r.store.CreateBucket(name); err != nil {
		return nil, fmt.Errorf("registry: create %q: %w", name, err)
	}
	b, err := r.register(name, nil)
	if err != nil {
		if errors.Is(err, errRefused) {
			// Never shown to anyone: a create reported as failed leaves
			// nothing. (A bucket that was recorded, then could not start,
			// may hold others' writes: it stays, and loads at its next
			// use.)
			r.undoCreate(name)
		}
		return nil, err
	}
	return b, nil
}

// lookupStored is Lookup's miss with a store: it loads a stored bucket.
// A registry that has stopped loads nothing, and says so (ErrStopped): the
// bucket may be stored, and is not known to be absent.
func (r *Registry) lookupStored(name string) (*bucket.Bucket, bool, error) {
	if CheckName(name) != nil {
		return nil, false, nil
	}
	// Callers may pass a name that aliases a buffer they reuse (the RESP
	// server does): the tables and the bucket keep a copy.
	name = strings.Clone(name)
	return r.load(context.Background(), name, false)
}

// register records a new bucket holding pairs under name, publishes its
// Created and starts it.
func (r *Registry) register(name string, pairs map[string][]byte) (*bucket.Bucket, error) {
	b := bucket.Restore(name, r.newID(), pairs, r.store)
	return b, r.registerBucket(name, b)
}

// newID returns a new bucket ID.
func (r *Registry) newID() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	return r.nextID
}

// registerBucket records b, new, under name and in the index of stored
// names, publishes its Created and starts it. The caller has claimed name,
// and has stored or loaded b, or made its first write, which records it.
// An error wrapping errRefused means that b was not recorded (the registry
// has stopped); any other, that b was, and others may have used it.
func (r *Registry) registerBucket(name string, b *bucket.Bucket) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errRefused
	}
	r.addLocked(name, b)
	r.mu.Unlock()
	return r.start(name, b)
}

// errRefused is ErrStopped from registerBucket: the bucket was not
// recorded, so no one can have used it.
var errRefused = fmt.Errorf("%w (nothing recorded)", ErrStopped)

// createStoredWith is CreateWith with a store.
func (r *Registry) createStoredWith(ctx context.Context, name string, first func(*bucket.Tx) error) (*bucket.Bucket, bucket.Pending, error) {
	if err := r.claim(ctx, name); err != nil {
		return nil, bucket.Pending{}, fmt.Errorf("registry: create %q: %w", name, err)
	}
	defer r.unclaim(name)
	// Under the claim, only this caller can add name to the tables.
	r.mu.RLock()
	b, ok := r.names[name]
	closed := r.closed
	r.mu.RUnlock()
	if ok { // created or loaded meanwhile
		p, err := b.UpdateNoWait(first)
		return b, p, err
	}
	if closed { // checked before anything is written, as load does
		return nil, bucket.Pending{}, ErrStopped
	}
	r.flushMu.RLock()
	defer r.flushMu.RUnlock()
	if r.maybeStored(name) {
		pairs, found, err := r.store.Load(name)
		if err != nil {
			return nil, bucket.Pending{}, fmt.Errorf("registry: load %q: %w", name, err)
		}
		if found {
			b, err := r.register(name, pairs)
			if err != nil {
				return nil, bucket.Pending{}, err
			}
			p, err := b.UpdateNoWait(first)
			return b, p, err
		}
	}
	// Not stored: first's write records the bucket, in one write with it,
	// before anyone can find the bucket. The name is in the index of
	// stored names from the start (a KEYS pipelined after the HSET lists
	// it), and leaves it if that write fails, when it still leads to this
	// bucket or to none (the bucket was forgotten first: another writer's
	// failed write ended it, or a DEL): no other marker for it can have
	// become durable since, for the store takes no write until this one is
	// answered.
	//
	// Whether it leaves the index on a failure is decided with the other
	// queued writes that change whether name is stored (a DEL's drop, see
	// settledIndexWrite), whatever order their writers are answered in.
	var iw *indexWrite
	nb := bucket.NewUnrecorded(name, r.newID(), r.store, func(lost bool) {
		r.settledIndexWrite(name, iw, lost)
	})
	// The write is queued and tracked in one step under indexMu, as a
	// rename's move is (see moveStored): no write of name is answered
	// in between. (nb's lock is taken inside indexMu, where a rename
	// takes its source's outside: no one else can reach nb yet.)
	p, err := func() (bucket.Pending, error) {
		r.indexMu.Lock()
		defer r.indexMu.Unlock()
		p, err := nb.UpdateNoWait(first)
		if err != nil || !nb.Recorded() {
			return p, err
		}
		// Before anyone can wait for the write: under the claim, in the
		// store's order among the writes of name.
		r.mu.Lock()
		iw = r.trackIndexWriteLocked(name, false)
		r.mu.Unlock()
		return p, nil
	}()
	if err != nil {
		return nil, bucket.Pending{}, err // nothing written: no bucket
	}
	if !nb.Recorded() {
		// first wrote nothing: an empty bucket, recorded on its own, as
		// Create makes one.
		b, err := r.createEmpty(name)
		return b, bucket.Pending{}, err
	}
	if err := r.registerBucket(name, nb); err != nil {
		// Refused before anyone could use the bucket (the tree stops): the
		// caller reports the write failed, so it must not stay. A bucket
		// that was recorded but could not start may hold others' writes:
		// it stays, and loads at its next use.
		// The write may be in a group that a Hold keeps (an EXEC's, on
		// this goroutine): Commit does not wait for the Hold to end.
		if p.Commit() == nil && errors.Is(err, errRefused) {
			r.undoCreate(name)
		}
		return nil, bucket.Pending{}, err
	}
	return nb, p, nil
}

// undoCreate drops bucket name, just written to the store by a create
// that then failed (the tree stopped meanwhile), so that a create reported
// as failed leaves nothing on disk. The caller has claimed name.
func (r *Registry) undoCreate(name string) {
	if err := r.store.DropBucket(name); err != nil {
		r.log.Error("registry: a create failed after its write, which could not be undone: the bucket stays on disk",
			"bucket", name, "err", err)
		r.index(name) // still stored: listed, and found by a miss
		return
	}
	r.unindex(name)
}

// indexWrite is a queued store write that changes whether a name is
// stored: a DEL's drop (queueDrop) or the first write of a bucket that
// records it (CreateWith). Each changes the index of stored names when it
// is queued; if it is lost, the index must go back to what the disk
// holds. The store loses the writes from the first failed one on (it
// takes none until every one of them has been answered), so the disk
// holds what the first lost write of the name found: stored before it.
// Their writers are answered in any order (a pipeline DEL x; HSET x
// answers the drop first), so the first lost one decides, and a later one
// changes nothing.
type indexWrite struct {
	stored  bool // whether the name was stored before the write
	settled bool
	lost    bool
}

// trackIndexWriteLocked records a write of name, just queued under its
// claim, that finds the name stored or not. The caller holds r.mu.
func (r *Registry) trackIndexWriteLocked(name string, stored bool) *indexWrite {
	// Those settled belong to a failure already over, or were durable:
	// a write is queued only once the store has recovered from the last
	// failure, after every lost write was answered.
	q := r.indexWrites[name]
	kept := q[:0]
	for _, w := range q {
		if !w.settled {
			kept = append(kept, w)
		}
	}
	clear(q[len(kept):])
	w := &indexWrite{stored: stored}
	if r.indexWrites == nil {
		r.indexWrites = make(map[string][]*indexWrite)
	}
	r.indexWrites[name] = append(kept, w)
	return w
}

// settledIndexWrite records the fate of w, a write of name: if it is
// lost, and no earlier write of name was, the index goes back to what w
// found (see indexWrite).
func (r *Registry) settledIndexWrite(name string, w *indexWrite, lost bool) {
	if !r.indexMu.TryLock() {
		if r.testIndexBlocked != nil {
			r.testIndexBlocked()
		}
		r.indexMu.Lock()
	}
	defer r.indexMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	w.settled = true
	q := r.indexWrites[name]
	if lost {
		w.lost = true
		if r.firstLossLocked(name, w) == w {
			r.restoreIndexLocked(name, w.stored)
		}
	}
	for _, e := range q {
		if !e.settled {
			return
		}
	}
	delete(r.indexWrites, name)
}

// keepFirstLossLocked puts the index of name back to what the first lost
// write of name queued before w found, if one has been answered: w, queued
// after it in the same failure, is lost too, and the index change made
// with w must not stand. The caller holds r.mu.
func (r *Registry) keepFirstLossLocked(name string, w *indexWrite) {
	if e := r.firstLossLocked(name, w); e != nil {
		r.restoreIndexLocked(name, e.stored)
	}
}

// firstLossLocked returns the first lost write of name queued up to w, w
// included, or nil. The caller holds r.mu.
func (r *Registry) firstLossLocked(name string, w *indexWrite) *indexWrite {
	for _, e := range r.indexWrites[name] {
		if e.lost {
			return e
		}
		if e == w {
			return nil
		}
	}
	return nil
}

// restoreIndexLocked puts name in the index of stored names or takes it
// out, as a lost write found it. The caller holds r.mu.
func (r *Registry) restoreIndexLocked(name string, stored bool) {
	if stored {
		r.indexLocked(name)
	} else {
		r.unindexLocked(name)
	}
}

// has reports whether bucket name is stored: from the index of stored
// names, or the store when there is none. The caller has claimed name.
func (r *Registry) has(name string) (bool, error) {
	r.mu.RLock()
	indexed := r.stored != nil
	_, found := r.stored[name]
	r.mu.RUnlock()
	if indexed {
		return found, nil
	}
	return r.store.Has(name)
}

// index records name as stored, as register does.
func (r *Registry) index(name string) {
	r.mu.Lock()
	r.indexLocked(name)
	r.mu.Unlock()
}

// indexLocked is index for a caller that holds r.mu.
func (r *Registry) indexLocked(name string) {
	if r.stored != nil {
		r.stored[name] = struct{}{}
		r.order.ReplaceOrInsert(scanorder.Of(name))
	}
}

// unindex removes name, just dropped from the store, from the index of
// stored names. The caller has claimed name.
func (r *Registry) unindex(name string) {
	r.mu.Lock()
	r.unindexLocked(name)
	r.mu.Unlock()
}

// unindexLocked is unindex for a caller that holds r.mu.
func (r *Registry) unindexLocked(name string) {
	if r.stored != nil {
		delete(r.stored, name)
		r.order.Delete(scanorder.Of(name))
	}
}

// FlushAll deletes every bucket (FLUSHALL): it stops every live bucket and,
// with a store, empties it. It returns once the registry has forgotten
// them. A ctx that has ended before the call changes nothing (an error
// wrapping ctx's error, as from Delete); one that ends while FlushAll waits
// for the buckets to be forgotten makes it return ctx's error, the flush
// done: every bucket has ended, and the registry forgets them on its own.
// With a store, a FlushAll that begins once the registry's stop has begun
// changes nothing and returns an error wrapping ErrStopped, as Delete does.
func (r *Registry) FlushAll(ctx context.Context) error {
	wait, err := r.FlushAllNoWait(ctx)
	if err != nil {
		return err
	}
	return wait(ctx)
}

// FlushAllNoWait is FlushAll up to the wait for the registry to forget the
// buckets: it returns once every bucket has ended and, with a store, the
// store is empty, with wait, which returns once they are forgotten (or
// ctx's error, or an error wrapping ErrStopped if the registry's stop
// gave up on them). A caller that holds a lock others need while the flush
// runs (a front end's TxLock) can let it go before it waits: a name that
// leads to an ended bucket meanwhile is followed until it is forgotten
// (see LookupCurrent and Create). Call wait at most once.
func (r *Registry) FlushAllNoWait(ctx context.Context) (wait func(context.Context) error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("registry: flush: %w", err)
	}
	if r.store != nil {
		if err := r.admitted(); err != nil {
			return nil, fmt.Errorf("registry: flush: %w", err)
		}
	}
	// No load or rename runs meanwhile: every bucket is either stopped
	// here or loaded after the store is empty, and a rename cannot move a
	// bucket that the flush has not stopped yet to a name it has passed.
	r.flushMu.Lock()
	r.mu.Lock()
	if r.store != nil && r.closed { // refused once the stop has begun, as a claim is (see claim)
		r.mu.Unlock()
		r.flushMu.Unlock()
		return nil, fmt.Errorf("registry: flush: %w", ErrStopped)
	}
	live := make([]*bucket.Bucket, 0, len(r.names))
	for _, b := range r.names {
		live = append(live, b)
	}
	var done chan struct{}
	if r.store != nil {
		// Set under mu with the closed check above, as a claim is taken:
		// a stop waits for a flush that began before it to have emptied
		// the store before Serve returns, and none begins after.
		done = make(chan struct{})
		r.flushing = done // a later FlushAll may replace it once this one is past DropAll
	}
	r.mu.Unlock()
	// Every bucket is stopped before the first is waited for: the
	// registry forgets them in batches, not one round trip each.
	gone := make([]<-chan struct{}, len(live))
	for i, b := range live {
		gone[i] = r.Forgotten(b)
		b.Stop(nil)
	}
	if r.store != nil {
		err = r.store.DropAll()
		r.mu.Lock()
		if err == nil && r.stored != nil {
			// Before flushMu is released: a bucket created after the
			// flush is indexed after this.
			clear(r.stored)
			r.order.Clear(false)
		}
		if r.flushing == done { // a later FlushAll may have set its own
			r.flushing = nil
		}
		r.mu.Unlock()
		close(done)
	}
	r.flushMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("registry: flush: %w", err)
	}
	return func(ctx context.Context) error {
		for _, g := range gone {
			if err := r.awaitForgotten(ctx, g); err != nil {
				return fmt.Errorf("registry: flush: %w", err)
			}
		}
		return nil
	}, nil
}
