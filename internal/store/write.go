package store

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Op is one change to a bucket's pairs: a put of Value under Key, or a
// delete of Key. Make one with [Put] or [Delete].
type Op struct {
	Key    string
	Value  []byte // ignored by a delete
	Delete bool
}

// Put returns the Op that stores value under key.
func Put(key string, value []byte) Op { return Op{Key: key, Value: value} }

// Delete returns the Op that removes key.
func Delete(key string) Op { return Op{Key: key, Delete: true} }

// Waiter is a write that has been applied and may still be on its way to the
// disk; [Waiter.Wait] waits until it is as durable as the policy asks. The
// zero Waiter waits for nothing.
type Waiter struct {
	s      *Store
	g      *group // nil for the zero Waiter
	what   string // with bucket, quoted unless empty, names the write in an error
	bucket string
}

// Wait returns once the write is durable under the store's policy: fsynced
// for FsyncAlways; for the others, written to the OS (a process kill then
// loses nothing), with the fsync to come (within a second for
// FsyncEverySec). Call it exactly once for each Waiter (Close waits for
// them all), outside any lock the caller holds, so that concurrent writers
// share one commit and one sync. A caller may hold several Waiters while
// it goes on writing; after a failed write the store reopens only once
// every Waiter of the failed engine has been called, and fails writes
// until then. An error (wrapping ErrWriteFailed) means the write was not
// acknowledged and will not be in the store once it has recovered: the
// caller, which has already applied it in memory, should reload that
// bucket from the store (see [Store.Load]) or end it, so that memory and
// disk agree.
func (w Waiter) Wait() error { return w.wait(true, nil, false) }

// WaitOrUndo is Wait for a caller whose memory already holds the write
// and that others may read. gathered says that the caller has made,
// before it waits, every write that should share this one's commit (an
// event loop that has run the commands of every ready client): it then
// commits at once, where Wait first lets the goroutines ready to run join
// the group. From an event loop, that yield cost a trip through the
// scheduler and a thread wake-up for each commit: under --fsync everysec,
// redis-benchmark -c 50 without pipelining ran at 76k-85k req/s with it,
// 85k-87k without. On a failure it calls undo, if not nil, with the error
// before the write stops counting as in flight. The store cannot recover
// from the failure, and so takes no new write, until undo returns: undo
// must make sure that nothing built on the lost write can be written
// after it (a bucket ends itself, under its lock, so that no writer reads
// the lost write from its memory and makes it durable after all). undo
// must not wait for another write. Unlike Wait, WaitOrUndo does not
// commit a group that a Hold keeps: it waits for the Hold to end, so that
// a client's wait does not split a transaction's writes.
func (w Waiter) WaitOrUndo(gathered bool, undo func(error)) error {
	return w.wait(!gathered, undo, true)
}

// CommitOrUndo is WaitOrUndo for a caller that may hold the store's
// writes itself (see Hold): it commits the write's group even while a
// Hold keeps it, as Wait does, rather than wait for a release that only
// the caller can make.
func (w Waiter) CommitOrUndo(undo func(error)) error {
	return w.wait(false, undo, false)
}

func (w Waiter) wait(yield bool, undo func(error), respectHold bool) error {
	if w.g == nil {
		return nil
	}
	defer func() {
		w.s.outstanding.Add(-1)
		w.s.waiters.Done()
	}()
	if err := w.s.await(w.g, yield, respectHold); err != nil {
		err = fmt.Errorf("store: %s: %w", describe(w.what, w.bucket), err)
		if undo != nil {
			undo(err)
		}
		return err
	}
	return nil
}

// Apply writes ops to bucket atomically and returns once they are durable
// under the policy. It also records the bucket as existing. On an error
// (wrapping ErrWriteFailed or ErrClosed), nothing was written.
func (s *Store) Apply(bucket string, ops ...Op) error {
	w, err := s.ApplyNoWait(bucket, ops...)
	if err != nil {
		return err
	}
	return w.Wait()
}

// ApplyNoWait writes ops to bucket atomically, as Apply does, but returns as
// soon as the write has its place in the commit order, with a Waiter that
// commits it (with the writes around it) and waits for its durability. A
// bucket holds its write lock across ApplyNoWait and its in-memory change,
// releases it, then calls Wait: writers of one bucket are ordered by the
// lock, and concurrent writers share commits and syncs. On an error nothing
// was written and the caller must not apply the change in memory.
func (s *Store) ApplyNoWait(bucket string, ops ...Op) (Waiter, error) {
	return s.applyNoWait(bucket, true, ops)
}

// ApplyPairsNoWait is ApplyNoWait for a caller that knows bucket is
// recorded as existing (created with CreateBucket, written with Apply or
// ApplyNoWait, or the target of a Move, and neither dropped nor moved away
// since): it writes the pairs only, not the bucket's marker again, which
// makes a small write markedly cheaper (the marker is one more key, and
// rewriting one key many times is slow in the engine's memtable). Pairs
// written to a bucket that is not recorded are not found by Load, LoadAll
// or Buckets, and Check reports them.
func (s *Store) ApplyPairsNoWait(bucket string, ops ...Op) (Waiter, error) {
	return s.applyNoWait(bucket, false, ops)
}

func (s *Store) applyNoWait(bucket string, marker bool, ops []Op) (Waiter, error) {
	size := 0
	if marker {
		size += len(bucket) + perChange
	}
	for _, op := range ops {
		size += len(bucket) + len(op.Key) + len(op.Value) + perChange
	}
	return s.enqueue("write to bucket", bucket, size, func(b *pebble.Batch) {
		key := make([]byte, 0, 64)
		if marker {
			_ = b.Set(markerKey(bucket), nil, nil)
		}
		for _, op := range ops {
			key = appendPairKey(key[:0], bucket, op.Key)
			if op.Delete {
				_ = b.Delete(key, nil)
			} else {
				_ = b.Set(key, op.Value, nil)
			}
		}
	})
}

// CreateBucket records bucket as existing, with no pairs (an empty bucket
// survives a restart), and returns once that is durable under the policy.
// Creating an existing bucket changes nothing.
func (s *Store) CreateBucket(name string) error {
	return s.write("create bucket", name, len(name)+perChange, func(b *pebble.Batch) {
		_ = b.Set(markerKey(name), nil, nil)
	})
}

// DropBucket deletes bucket name and all its pairs, and returns once that is
// durable under the policy. Dropping a bucket that does not exist is not an
// error.
func (s *Store) DropBucket(name string) error {
	return s.write("drop bucket", name, dropSize(name), func(b *pebble.Batch) {
		dropInto(b, name)
	})
}

// DropBucketNoWait deletes bucket name and all its pairs, as DropBucket
// does, but returns as soon as the deletion is queued, with its Waiter
// (see ApplyNoWait): readers of the store see the bucket until the
// deletion is committed, and a Load commits it first.
func (s *Store) DropBucketNoWait(name string) (Waiter, error) {
	return s.enqueue("drop bucket", name, dropSize(name), func(b *pebble.Batch) {
		dropInto(b, name)
	})
}

// dropInto adds to b the deletion of bucket name: its marker and its pairs.
func dropInto(b *pebble.Batch, name string) {
	_ = b.Delete(markerKey(name), nil)
	p := pairPrefix(name)
	_ = b.DeleteRange(p, prefixEnd(p), nil)
}

// dropSize is the size of what dropInto adds, as enqueue counts it.
func dropSize(name string) int { return 3*len(name) + 2*perChange }

// DropAll deletes every bucket and pair (FLUSHALL), and returns once that is
// durable under the policy. The time of the last checkpoint is kept.
func (s *Store) DropAll() error {
	return s.write("drop all", "", perChange, func(b *pebble.Batch) {
		_ = b.DeleteRange([]byte{tagBucket}, []byte{tagEnd}, nil)
	})
}

// Move replaces bucket to with pairs and deletes bucket from, in one atomic
// write (RENAME: the caller passes the pairs it took from the bucket in
// memory). It returns a Waiter, as ApplyNoWait does; on an error nothing
// was written.
func (s *Store) Move(from, to string, pairs map[string][]byte) (Waiter, error) {
	return s.replace("move bucket "+quote(from)+" to", &from, to, pairs)
}

// Replace replaces bucket to with pairs, in one atomic write (COPY: the
// caller passes a copy of the pairs of the source bucket in memory). It
// returns a Waiter, as Move does.
func (s *Store) Replace(to string, pairs map[string][]byte) (Waiter, error) {
	return s.replace("replace bucket", nil, to, pairs)
}

// replace is Move, and with a nil from Replace.
func (s *Store) replace(what string, from *string, to string, pairs map[string][]byte) (Waiter, error) {
	size := dropSize(to) + perChange
	if from != nil {
		size += dropSize(*from)
	}
	for k, v := range pairs {
		size += len(to) + len(k) + len(v) + perChange
	}
	return s.enqueue(what, to, size, func(b *pebble.Batch) {
		if from != nil {
			dropInto(b, *from)
		}
		dropInto(b, to)
		_ = b.Set(markerKey(to), nil, nil)
		key := make([]byte, 0, 64)
		for k, v := range pairs {
			key = appendPairKey(key[:0], to, k)
			_ = b.Set(key, v, nil)
		}
	})
}

// write makes the write fill, of about size bytes, and waits for it.
func (s *Store) write(what, bucket string, size int, fill func(*pebble.Batch)) error {
	w, err := s.enqueue(what, bucket, size, fill)
	if err != nil {
		return err
	}
	return w.Wait()
}

func quote(name string) string { return fmt.Sprintf("%q", name) }

// describe names a write in an error: what, followed by bucket quoted
// unless it is empty (put together only for an error: the hot path
// formats nothing).
func describe(what, bucket string) string {
	if bucket == "" {
		return what
	}
	return what + " " + quote(bucket)
}

// perChange is what one change costs in a batch's size, on top of its key
// and value: its encoding, and the memtable entry it becomes (once folded,
// for a group's changes; at once, for the log record itself). A group
// closes before its changes, counted so, reach largeBatch.
const perChange = 16 + 256

// A group is writes committed together, as one batch: writers of small
// batches join the open group, and the first of them to wait commits it,
// with every group queued before it, while the next group fills. One
// commit and one WAL record for many writes is what makes a pipelined
// durable write cheap: pebble's commit costs about as much as the memtable
// inserts of a whole small batch.
//
// Writers are ordered as they join (a bucket joins under its write lock,
// before it changes its memory), and groups commit in that order, so the
// engine sees every bucket's writes in its memory's order.
type group struct {
	db   *pebble.DB
	b    *pebble.Batch
	size int    // len(b.Repr()) + perChange for each change
	next *group // the queue, in joining order

	committed bool // under commitMu: taken by a committer
	done      chan struct{}
	// held: a Hold keeps the group open; unheld is closed when it no
	// longer does. Under queueMu.
	held   bool
	unheld chan struct{}

	// Set by the committer, and read by waiters once done is closed.
	err  error
	seq  uint64 // the batch's first sequence number
	key  uint64 // its recordKey in the WAL
	repr []byte // FsyncEverySec: the batch's bytes, for a replay
}

// enqueue adds the write fill, of about size bytes, to the open group, or
// to a new one (a group reaches at most largeBatch; a larger write commits
// alone), and returns its Waiter. It fails only when the store is closed or
// fenced: the write then was not made, and the caller must not apply it in
// memory. what and bucket name the write in errors.
func (s *Store) enqueue(what, bucket string, size int, fill func(*pebble.Batch)) (Waiter, error) {
	if s.fault.Load() != nil {
		if err := s.recover(); err != nil {
			return Waiter{}, fmt.Errorf("store: %s: %w", describe(what, bucket), err)
		}
	}
	// Held while the Waiter is counted, so that Close, which sets closed
	// under the write lock and then waits for the Waiters, sees it.
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return Waiter{}, fmt.Errorf("store: %s: %w", describe(what, bucket), ErrClosed)
	case s.db == nil || s.fault.Load() != nil:
		err := ErrClosed
		if fi := s.fault.Load(); fi != nil {
			err = fi.error()
		}
		return Waiter{}, fmt.Errorf("store: %s: %w", describe(what, bucket), err)
	}
	g := s.join(size, fill)
	s.outstanding.Add(1)
	s.waiters.Add(1)
	return Waiter{s: s, g: g, what: what, bucket: bucket}, nil
}

// join adds the write fill, of about size bytes, to the open group or a
// new one, and returns its group. Called with s.mu held for reading and the
// engine open.
func (s *Store) join(size int, fill func(*pebble.Batch)) *group {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	g := s.open
	if g == nil || g.db != s.db || s.holds == 0 && g.size+size >= largeBatch {
		g = &group{db: s.db, b: s.db.NewBatch(), done: make(chan struct{})}
		if s.tail == nil {
			s.head = g
		} else {
			s.tail.next = g
		}
		s.tail, s.open = g, g
	}
	fill(g.b)
	g.size = len(g.b.Repr()) + perChange*int(g.b.Count())
	switch {
	case s.holds > 0:
		// Kept whole, whatever its size, until the Holds end.
		if !g.held {
			g.held, g.unheld = true, make(chan struct{})
		}
	case g.size >= largeBatch:
		s.open = nil // full, or a large write alone
	}
	return g
}

// Hold keeps every write made from now until release in one group, one
// atomic write to the engine, so that a crash keeps all of them or none
// (a Redis transaction's: EXEC holds while its commands run). Meanwhile a
// WaitOrUndo of a write in that group, a client's wait for its reply,
// waits for the release rather than committing the group (which a later
// write of the transaction could then not join); the store's own
// synchronous operations (Wait: Apply, CreateBucket, DropBucket, DropAll,
// Move; Settle, and with it Load) commit it as usual, and the writes
// after them form a new held group: a transaction that uses them is
// atomic only between them. A Checkpoint waits for the Holds under way to
// end, and holds new ones back until it has committed what was written
// before it: it holds a transaction whole or not at all; the record of
// its time, once it is written, joins a held group and waits for its
// release, as a client's write does. Holds may overlap; the groups are
// released when the last one ends. Call release exactly once, soon (the
// clients whose writes share the group wait for it), and between Hold and
// release, on the same goroutine, never wait for a write with WaitOrUndo
// nor call Checkpoint.
func (s *Store) Hold() (release func()) {
	s.holdMu.RLock()
	s.queueMu.Lock()
	s.holds++
	s.queueMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.unhold()
			s.holdMu.RUnlock()
		})
	}
}

// unhold ends one Hold, and with the last one releases the held groups.
func (s *Store) unhold() {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	if s.holds--; s.holds > 0 {
		return
	}
	// A held group is in the queue until it is committed, which releases
	// it (commitThrough).
	for g := s.head; g != nil; g = g.next {
		s.releaseLocked(g)
		if s.open == g && g.size >= largeBatch {
			s.open = nil // as join would have, had it not been held
		}
	}
}

// releaseLocked marks g, if held, no longer held, and wakes its waiters;
// the caller holds queueMu.
func (s *Store) releaseLocked(g *group) {
	if g.held {
		g.held = false
		close(g.unheld)
	}
}

// await returns once g has been committed and is durable under the policy,
// or has failed. If no one is committing g, the caller commits it, after
// every group queued before it; with respectHold, not while a Hold keeps
// g: it waits for the Hold to end first.
func (s *Store) await(g *group, yield, respectHold bool) error {
	select {
	case <-g.done:
		return g.err
	default:
	}
	// A writer whose group is not yet committed lets the goroutines that
	// are ready to run go first, before it tries to commit: the
	// connections whose requests arrived with its own (one network poll
	// readies them together) then join its group, and share its commit and
	// its WAL write, rather than each committing a group of one in turn.
	// With no one else ready, the yield costs a trip through the
	// scheduler. Measured in-process (redis-benchmark HSET -c 50 against
	// kv on one core, the client on the other), unpipelined: 63-69k to
	// 89-91k req/s under everysec, 39-43k to 49-50k under always; with
	// -P 16: 281-324k to 347-378k (everysec), 269-280k to 288-293k
	// (always).
	if yield {
		runtime.Gosched()
	}
	var first *group
	for {
		// Whether a Hold keeps g is decided where g is taken, under the
		// queue's lock: a Hold that began after an earlier look (during
		// the yield, say) has had its writes join g since, and committing
		// g would split them from the transaction's next ones.
		var unheld <-chan struct{}
		first, unheld = s.commitThrough(g, respectHold)
		if unheld == nil {
			break
		}
		if s.testHoldWaitHook != nil {
			s.testHoldWaitHook()
		}
		<-unheld
	}
	if first == nil { // another waiter is committing g
		<-g.done
		return g.err
	}
	// Waited for outside commitMu, so that the next groups commit while
	// these sync, and share the syncs.
	for h := first; ; h = h.next {
		s.settleGroup(h)
		if h == g {
			break
		}
	}
	return g.err
}

// commitThrough commits, in order, every queued group up to and including
// g, and returns the first of them; or nil if g was taken by another
// committer. With respectHold it commits nothing while a Hold keeps one
// of those groups, and returns the channel that is closed once it no
// longer does.
func (s *Store) commitThrough(g *group, respectHold bool) (first *group, unheld <-chan struct{}) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if g.committed {
		return nil, nil
	}
	s.queueMu.Lock()
	if respectHold {
		for h := s.head; ; h = h.next {
			if h.held {
				// Read under the lock: once it is let go, the hold may
				// end and a new one take h, writing h.unheld (join).
				unheld := h.unheld
				s.queueMu.Unlock()
				return nil, unheld
			}
			if h == g {
				break
			}
		}
	}
	first = s.head
	s.head = g.next
	if s.head == nil {
		s.tail = nil
	}
	if s.open == g {
		s.open = nil
	}
	// A held group committed by a synchronous operation is held no more:
	// its waiters go on, and the next write starts a new held group.
	for h := first; ; h = h.next {
		s.releaseLocked(h)
		if h == g {
			break
		}
	}
	s.queueMu.Unlock()
	// The groups from first to g left the queue: nothing joins them now,
	// and their next links, set before g was taken, stay as they are.
	h := first
	defer func() {
		if r := recover(); r != nil {
			// The engine panicked inside a commit. The store fences itself,
			// as for the engine's fatal errors (the next write or read
			// reopens it), and this group and the ones after it fail:
			// their waiters, this caller included, are told so rather
			// than left waiting for a commit that will never come.
			err := fmt.Errorf("%w: the storage engine panicked during a commit: %v", ErrWriteFailed, r)
			s.log.Error("store: "+err.Error(), "stack", string(debug.Stack()))
			s.fatals.Add(1)
			s.fs.fail("", err)
			for ; ; h = h.next {
				if !h.committed {
					h.err, h.b, h.committed = err, nil, true
				}
				if h == g {
					break
				}
			}
		}
	}()
	for ; ; h = h.next {
		if s.testCommitHook != nil {
			s.testCommitHook()
		}
		s.commitGroup(h)
		h.committed = true
		if h == g {
			return first, nil
		}
	}
}

// commitGroup commits g's batch under the store's policy, and records the
// outcome in g. Called with commitMu held, for each group in turn.
func (s *Store) commitGroup(g *group) {
	db := g.db
	// The group is committed as one log record (see fold.go), numbered in
	// commit order.
	b := db.NewBatch()
	_ = b.Set(logKey(s.logNext), g.b.Repr(), nil)
	s.logNext++
	_ = g.b.Close()
	g.b = b
	recLen := len(b.Repr())
	fail := func(err error) {
		_ = b.Close()
		g.err = err
	}
	// Pebble clears a large batch once committed (it joins the memtables
	// as it is), and its sequence number with it. A large batch is
	// committed alone, after an empty mark that takes the same number.
	large := recLen+perChange >= largeBatch
	if large {
		s.mu.Lock()
		defer s.mu.Unlock()
	} else {
		s.mu.RLock()
		defer s.mu.RUnlock()
	}
	// Not s.closed: a write that joined before Close began is committed
	// (Close waits for its Waiter, and closes the engine after).
	if fi := s.fault.Load(); fi != nil {
		fail(fi.error())
		return
	}
	if s.db != db {
		fail(errRetry)
		return
	}
	if s.opts.Fsync == FsyncEverySec {
		// Copied now: pebble clears the data of a large batch it commits.
		g.repr = slices.Clone(b.Repr())
	}
	fatals := s.fatals.Load()
	count := b.Count()
	if large {
		mark := db.NewBatch()
		_ = mark.LogData(nil, nil)
		if err := db.Apply(mark, pebble.NoSync); err != nil {
			fail(fmt.Errorf("%w: %w", ErrWriteFailed, err))
			return
		}
		g.seq = uint64(mark.SeqNum())
		_ = mark.Close()
	}
	// Every policy requests a WAL sync and returns before it. Under
	// FsyncAlways the waiter waits for the fsync; under the others the
	// file system below defers the fsync, and the waiter waits only for
	// the write to reach the OS.
	err := db.ApplyNoSyncWait(b, pebble.Sync)
	if err == nil && s.fatals.Load() != fatals {
		// Pebble hit a fatal error during this commit; it may not have
		// applied the batch, and its sync would never complete. The batch
		// is abandoned, not closed.
		err = errors.New("the storage engine failed during the commit")
		if fi := s.fault.Load(); fi != nil {
			err = fi.error()
		}
		g.err = err
		g.b = nil
		return
	}
	if err != nil {
		fail(fmt.Errorf("%w: %w", ErrWriteFailed, err))
		return
	}
	if !large {
		g.seq = uint64(b.SeqNum())
	}
	g.key = recordKey(g.seq, count)
	s.logged(recLen)
}

// settleGroup waits for a committed group to be durable under the policy,
// records how it ended, and tells its waiters.
func (s *Store) settleGroup(g *group) {
	defer close(g.done)
	if g.err != nil {
		return
	}
	if err := g.b.SyncWait(); err != nil {
		g.err = fmt.Errorf("%w: write-ahead log in %s: %w", ErrWriteFailed, s.dir, err)
		return
	}
	if s.fs.fenced.Load() && g.key > s.fs.goodKey() {
		// Pebble wrote it into the fence's memory, not to the disk (or not
		// durably, for FsyncAlways): the store, not pebble, knows.
		_ = g.b.Close()
		g.err = fmt.Errorf("write-ahead log in %s: %w", s.dir, s.faultErr())
		return
	}
	if s.opts.Fsync == FsyncEverySec {
		// Kept for a replay until the background fsync covers it.
		u := unsyncedBatch{seq: g.seq, repr: g.repr}
		s.unsyncedMu.Lock()
		if u.seq >= s.syncedSeq { // else a sync has covered it already
			s.unsynced = append(s.unsynced, u)
			s.dirty.Store(true)
		}
		s.unsyncedMu.Unlock()
	}
	_ = g.b.Close()
}

// Settle returns once every write made so far has been committed and has
// met its fate under the policy, as its Waiter reports it: durable, or
// failed; and, for a failed one whose Waiter has been called, once its
// WaitOrUndo's undo has returned. It fails if a write made before it
// failed and its Waiter has not been called yet. The engine shows a write
// to readers as soon as it is committed, before it is on disk, and not at
// all while it waits in a group for its Waiter; a read that rebuilds a
// bucket (Load) settles first, so that it cannot pick up a write whose
// writer is then told that it failed (memory would hold what the disk does
// not), nor miss one made before it, and so does a checkpoint. It costs
// one empty commit, waited for like a write, only while some Waiter has
// not been waited for; nothing, most of the time.
func (s *Store) Settle() error {
	if s.outstanding.Load() == 0 {
		return nil
	}
	return s.write("wait for the writes in flight", "", perChange, func(b *pebble.Batch) {
		_ = b.LogData(nil, nil)
	})
}

// Sync returns once every write made before it is on disk, whatever the
// fsync policy (Redis's WAITAOF): it settles the writes in flight (see
// Settle), then, unless FsyncAlways has synced them already, fsyncs the
// log as the background sync does. It fails if a write made before it
// failed, or the disk does.
func (s *Store) Sync() error {
	if err := s.Settle(); err != nil {
		return err
	}
	if s.opts.Fsync == FsyncAlways {
		return nil
	}
	return s.syncNow()
}

// replayOne applies repr, an acknowledged batch a recovery replays.
func (s *Store) replayOne(db *pebble.DB, repr []byte) error {
	b := db.NewBatch()
	defer b.Close()
	// The batch takes the slice, and pebble's pool reuses it once the
	// batch is closed; the list keeps its own bytes for another attempt,
	// should this one fail.
	if err := b.SetRepr(slices.Clone(repr)); err != nil {
		return err
	}
	fatals := s.fatals.Load()
	if err := db.Apply(b, pebble.NoSync); err != nil {
		return err
	}
	if s.fatals.Load() != fatals || s.fs.fenced.Load() {
		return errors.New("the engine failed")
	}
	return nil
}

// errRetry is wrapped by writes that raced with a recovery of the store.
var errRetry = fmt.Errorf("%w: the store reopened during the write; retry", ErrWriteFailed)

// recover tries, at most once per RetryInterval, to make the store writable
// again after a fault: it closes the engine, cuts from each WAL what was
// written but never synced (under FsyncAlways those writes were reported as
// failed), reopens the engine from the disk, and replays the FsyncEverySec
// writes acknowledged since the last good sync. It returns nil once the
// store can write again, or the fault.
func (s *Store) recover() error {
	s.retryMu.Lock()
	if fi := s.fault.Load(); fi != nil && time.Since(s.lastRetry) < s.opts.RetryInterval {
		s.retryMu.Unlock()
		return fi.error()
	}
	s.lastRetry = time.Now()
	s.retryMu.Unlock()
	s.retries.Add(1)

	s.mu.Lock()
	defer s.mu.Unlock()
	fi := s.fault.Load()
	switch {
	case s.closed:
		return ErrClosed
	case fi == nil:
		return nil // recovered meanwhile
	}
	return s.reopen(fi)
}

// reopen is recover's work, with s.mu held: it makes the store writable
// again after the fault fi, or returns why it cannot yet.
func (s *Store) reopen(fi *faultInfo) error {
	if s.db != nil {
		if err := s.closeDB(); err != nil {
			s.log.Warn("store: closing the failed engine", "err", detail(err))
		}
	}
	// Closing the engine ended every pending WAL write; once the Waiters
	// have seen how theirs ended, the list of acknowledged writes to replay
	// is complete. Their owners call them, and an owner may hold several
	// while it goes on writing (a connection running a pipeline answers
	// its writes together), or be this caller: waiting here could wait for
	// ever. So until every Waiter has been called, writes fail (the engine
	// is closed) and a later attempt goes on from here.
	if n := s.outstanding.Load(); n > 0 {
		return fmt.Errorf("%w (recovery waits for %d writes in flight to be answered)", fi.error(), n)
	}
	// Reopening replays the WAL and flushes it to a table; on a disk that
	// is still full pebble retries that flush for ever, inside Open. So
	// first check that the space has returned: write and sync as much as
	// the flush will need.
	if err := s.fs.probe(s.dir); err != nil {
		return fmt.Errorf("%w (still failing: %v)", fi.error(), err)
	}
	s.log.Info("store: trying to recover from a failed write", "dir", s.dir, "failed", fi.err)
	if s.opts.Fsync != FsyncNo {
		cut, err := s.fs.cutUnsynced()
		if err != nil {
			return fmt.Errorf("%w (recovery: %v)", fi.error(), err)
		}
		for file, n := range cut {
			s.log.Warn("store: cut the unsynced tail of the write-ahead log (writes that were not acknowledged, or are replayed below)",
				"file", file, "bytes", n)
		}
		s.cutTail = s.cutTail || len(cut) > 0
	} else {
		s.fs.forgetWALs() // fsync=no syncs nothing: nothing to cut by
	}
	s.fs.reset()
	// Pebble's Open waits for the compactions it starts: should the disk
	// fail again while it opens, a compaction must fail at once rather
	// than wait on the fence for a Close that would never come.
	s.fs.setClosing(true)
	db, err := pebble.Open(s.dir, s.pebbleOptions(false))
	s.fs.setClosing(false)
	if err != nil {
		s.fs.fenceAgain()
		return fmt.Errorf("%w (reopen: %v)", fi.error(), err)
	}
	s.db = db

	s.unsyncedMu.Lock()
	replay := s.unsynced
	s.unsyncedMu.Unlock()
	slices.SortFunc(replay, func(a, b unsyncedBatch) int { return cmp.Compare(a.seq, b.seq) })
	for _, u := range replay {
		if err := s.replayOne(db, u.repr); err != nil {
			return fmt.Errorf("%w (replay: %v)", fi.error(), err)
		}
	}
	// The engine may hold log records again (replayed, or left by a fold
	// the recovery cut): the next read folds first.
	s.logPending.Add(1)
	if err := db.LogData(nil, pebble.Sync); err != nil || s.fs.fenced.Load() {
		return fmt.Errorf("%w (sync after reopen: %v)", fi.error(), err)
	}
	if s.opts.Fsync == FsyncEverySec {
		// The replayed writes leave the list below: first make them
		// durable (under everysec the WAL's sync above only wrote them).
		if err := s.fs.syncWALs(); err != nil {
			return fmt.Errorf("%w (sync after reopen: %v)", fi.error(), err)
		}
	}
	// Cleared before the last look at the fence: a fault from here on
	// records itself (onFault finds no fault), one before is seen below.
	s.fault.Store(nil)
	if s.fs.fenced.Load() {
		s.fault.CompareAndSwap(nil, fi)
		return fmt.Errorf("%w (sync after reopen: the disk failed again)", fi.error())
	}
	s.unsyncedMu.Lock()
	s.unsynced = nil
	s.unsyncedMu.Unlock()
	s.cutTail = false
	s.log.Info("store: recovered; writes work again", "dir", s.dir, "replayed_writes", len(replay),
		"failing_since", fi.at)
	return nil
}
