package store

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
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
	s    *Store
	b    *pebble.Batch // nil for the zero Waiter
	seq  uint64        // the batch's first sequence number
	key  uint64        // its recordKey in the WAL
	repr []byte        // FsyncEverySec: the batch's bytes, for a replay
}

// Wait returns once the write is durable under the store's policy: fsynced
// for FsyncAlways; for the others, written to the OS (a process kill then
// loses nothing), with the fsync to come (within a second for
// FsyncEverySec). Call it exactly once for each Waiter (Close waits for
// them all), outside any lock the caller holds, so that concurrent writers
// share one sync. A caller may hold several Waiters while it goes on
// writing; after a failed write the store reopens only once every Waiter
// of the failed engine has been called, and fails writes until then. An
// error (wrapping ErrWriteFailed) means the write was not acknowledged and
// will not be in the store once it has recovered: the caller, which has
// already applied it in memory, should reload that bucket from the store
// (see [Store.Load]) or end it, so that memory and disk agree.
func (w Waiter) Wait() error {
	if w.b == nil {
		return nil
	}
	defer func() {
		w.s.outstanding.Add(-1)
		w.s.waiters.Done()
	}()
	if err := w.b.SyncWait(); err != nil {
		return fmt.Errorf("%w: write-ahead log in %s: %w", ErrWriteFailed, w.s.dir, err)
	}
	if w.s.fs.fenced.Load() && w.key > w.s.fs.goodKey() {
		// Pebble wrote it into the fence's memory, not to the disk (or not
		// durably, for FsyncAlways): the store, not pebble, knows.
		_ = w.b.Close()
		return fmt.Errorf("write-ahead log in %s: %w", w.s.dir, w.s.faultErr())
	}
	if w.s.opts.Fsync == FsyncEverySec {
		// Kept for a replay until the background fsync covers it.
		u := unsyncedBatch{seq: w.seq, repr: w.repr}
		w.s.unsyncedMu.Lock()
		if u.seq >= w.s.syncedSeq { // else a sync has covered it already
			w.s.unsynced = append(w.s.unsynced, u)
			w.s.dirty.Store(true)
		}
		w.s.unsyncedMu.Unlock()
	}
	_ = w.b.Close()
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
// soon as the write is in the log, with a Waiter for its durability. A
// bucket holds its write lock across ApplyNoWait and its in-memory change,
// releases it, then calls Wait: writers of one bucket are ordered by the
// lock, and concurrent writers share syncs. On an error nothing was written
// and the caller must not apply the change in memory.
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
	db, err := s.writable()
	if err != nil {
		return Waiter{}, fmt.Errorf("store: write to bucket %s: %w", quote(bucket), err)
	}
	b := db.NewBatch()
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
	return s.commit(b, db, "write to bucket", bucket)
}

// writable returns the engine to write to: after a fault, once recovery
// (tried at most once per RetryInterval) has reopened it.
func (s *Store) writable() (*pebble.DB, error) {
	if s.fault.Load() != nil {
		if err := s.recover(); err != nil {
			return nil, err
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return nil, ErrClosed
	case s.db == nil:
		if fi := s.fault.Load(); fi != nil {
			return nil, fi.error()
		}
		return nil, ErrClosed
	}
	return s.db, nil
}

// CreateBucket records bucket as existing, with no pairs (an empty bucket
// survives a restart), and returns once that is durable under the policy.
// Creating an existing bucket changes nothing.
func (s *Store) CreateBucket(name string) error {
	return s.write("create bucket "+quote(name), func(b *pebble.Batch) {
		_ = b.Set(markerKey(name), nil, nil)
	})
}

// DropBucket deletes bucket name and all its pairs, and returns once that is
// durable under the policy. Dropping a bucket that does not exist is not an
// error.
func (s *Store) DropBucket(name string) error {
	return s.write("drop bucket "+quote(name), func(b *pebble.Batch) {
		_ = b.Delete(markerKey(name), nil)
		p := pairPrefix(name)
		_ = b.DeleteRange(p, prefixEnd(p), nil)
	})
}

// DropAll deletes every bucket and pair (FLUSHALL), and returns once that is
// durable under the policy. The time of the last checkpoint is kept.
func (s *Store) DropAll() error {
	return s.write("drop all", func(b *pebble.Batch) {
		_ = b.DeleteRange([]byte{tagBucket}, []byte{tagEnd}, nil)
	})
}

// Move replaces bucket to with pairs and deletes bucket from, in one atomic
// write (RENAME: the caller passes the pairs it took from the bucket in
// memory). It returns a Waiter, as ApplyNoWait does; on an error nothing
// was written.
func (s *Store) Move(from, to string, pairs map[string][]byte) (Waiter, error) {
	what := "move bucket " + quote(from) + " to " + quote(to)
	db, err := s.writable()
	if err != nil {
		return Waiter{}, fmt.Errorf("store: %s: %w", what, err)
	}
	b := db.NewBatch()
	for _, name := range []string{from, to} {
		_ = b.Delete(markerKey(name), nil)
		p := pairPrefix(name)
		_ = b.DeleteRange(p, prefixEnd(p), nil)
	}
	_ = b.Set(markerKey(to), nil, nil)
	key := make([]byte, 0, 64)
	for k, v := range pairs {
		key = appendPairKey(key[:0], to, k)
		_ = b.Set(key, v, nil)
	}
	return s.commit(b, db, what, "")
}

// write builds a batch with fill, commits it and waits.
func (s *Store) write(what string, fill func(*pebble.Batch)) error {
	db, err := s.writable()
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	b := db.NewBatch()
	fill(b)
	w, err := s.commit(b, db, what, "")
	if err != nil {
		return err
	}
	return w.Wait()
}

func quote(name string) string { return fmt.Sprintf("%q", name) }

// commit commits b, built on db, under the store's policy. what, followed
// by bucket quoted unless it is empty, names the write in errors (and is
// put together only for an error: the hot path formats nothing).
func (s *Store) commit(b *pebble.Batch, db *pebble.DB, what, bucket string) (Waiter, error) {
	name := func() string {
		if bucket == "" {
			return what
		}
		return what + " " + quote(bucket)
	}
	discard := func() { _ = b.Close() }
	// Pebble clears a large batch once committed (it joins the memtables
	// as it is), and its sequence number with it. A large batch is
	// committed alone, after an empty mark that takes the same number.
	large := len(b.Repr())+256*int(b.Count()) >= largeBatch
	if large {
		s.mu.Lock()
		defer s.mu.Unlock()
	} else {
		s.mu.RLock()
		defer s.mu.RUnlock()
	}
	switch {
	case s.closed:
		discard()
		return Waiter{}, fmt.Errorf("store: %s: %w", name(), ErrClosed)
	case s.fault.Load() != nil:
		discard()
		return Waiter{}, fmt.Errorf("store: %s: %w", name(), s.fault.Load().error())
	case s.db != db:
		discard()
		return Waiter{}, fmt.Errorf("store: %s: %w", name(), errRetry)
	}

	var repr []byte
	if s.opts.Fsync == FsyncEverySec {
		// Copied now: pebble clears the data of a large batch it commits.
		repr = slices.Clone(b.Repr())
	}
	fatals := s.fatals.Load()
	// Counted before the engine shows the write to readers, so that settle
	// sees it.
	s.outstanding.Add(1)
	count := b.Count()
	var seq uint64
	if large {
		mark := db.NewBatch()
		_ = mark.LogData(nil, nil)
		if err := db.Apply(mark, pebble.NoSync); err != nil {
			s.outstanding.Add(-1)
			discard()
			return Waiter{}, fmt.Errorf("store: %s: %w: %w", name(), ErrWriteFailed, err)
		}
		seq = uint64(mark.SeqNum())
		_ = mark.Close()
	}
	var err error
	// Every policy requests a WAL sync and returns before it. Under
	// FsyncAlways the Waiter waits for the fsync; under the others the
	// file system below defers the fsync, and the Waiter waits only for the
	// write to reach the OS.
	err = db.ApplyNoSyncWait(b, pebble.Sync)
	if err == nil && s.fatals.Load() != fatals {
		// Pebble hit a fatal error during this commit; it may not have
		// applied the batch, and its sync would never complete. The batch
		// is abandoned, not closed.
		err = errors.New("the storage engine failed during the commit")
		if fi := s.fault.Load(); fi != nil {
			err = fi.error()
		}
		s.outstanding.Add(-1)
		return Waiter{}, fmt.Errorf("store: %s: %w", name(), err)
	}
	if err != nil {
		s.outstanding.Add(-1)
		discard()
		return Waiter{}, fmt.Errorf("store: %s: %w: %w", name(), ErrWriteFailed, err)
	}
	if !large {
		seq = uint64(b.SeqNum())
	}
	s.waiters.Add(1)
	return Waiter{s: s, b: b, seq: seq, key: recordKey(seq, count), repr: repr}, nil
}

// settle returns once every write committed so far has met its fate under
// the policy: durable, or failed. The engine shows a write to readers as
// soon as it is committed, before it is on disk; a read that rebuilds a
// bucket (Load) settles first, so that it cannot pick up a write whose
// writer is then told that it failed (memory would hold what the disk does
// not). It costs one empty commit, waited for like a write, only while
// some Waiter has not been waited for; nothing, most of the time.
func (s *Store) settle() error {
	if s.outstanding.Load() == 0 {
		return nil
	}
	return s.write("wait for the writes in flight", func(b *pebble.Batch) {
		_ = b.LogData(nil, nil)
	})
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
			s.log.Warn("store: closing the failed engine", "err", err)
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
	s.log.Info("store: recovered; writes work again", "dir", s.dir, "replayed writes", len(replay),
		"failing since", fi.at)
	return nil
}
