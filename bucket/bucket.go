package bucket

import (
	"context"
	"errors"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kvproject/kv/internal/store"
)

// ErrTxClosed is returned by a Tx used after its View or Update returned.
var ErrTxClosed = errors.New("bucket: transaction has ended")

// errNilFunc is returned by View, Update, UpdateNoWait and Tx.ForEach for a
// nil function: a caller's mistake, which must not crash the bucket.
var errNilFunc = errors.New("bucket: nil function")

// Bucket is one bucket: a name, an instance ID and the pairs it owns. Create
// one with [New]; start it with [Supervisor.Start]. All methods are safe for
// concurrent use.
type Bucket struct {
	name string
	id   uint64

	mu    sync.RWMutex
	data  map[string][]byte // nil until the first write, and again once ended
	ended bool
	// started: Supervisor.Start has taken the bucket (a bucket runs under
	// one child, once). Under the write lock.
	started bool
	// used: a lookup returned the bucket since the last StopIdle (see
	// MarkUsed).
	used   atomic.Bool
	reason error
	done   chan struct{} // closed when the bucket ends
	store  Store         // nil: in memory only
	// unrecorded: the store does not record the bucket yet; its first
	// write will (see NewUnrecorded). Under the write lock.
	unrecorded bool
	recorded   func(lost bool) // see NewUnrecorded
	// version counts the writes that changed the pairs (see Version).
	// Under the write lock.
	version uint64

	// The keys in scan order for Tx.Scan (nil: none kept). Writers change
	// it under the write lock; readers, under the read lock, only replace
	// it (with scanMu: one builds at a time) and never change one in place.
	scan   atomic.Pointer[scanIndex]
	scanMu sync.Mutex
}

// New returns an empty, live bucket. id identifies this instance of name; the
// registry gives each bucket it creates a new one.
func New(name string, id uint64) *Bucket {
	b := &Bucket{name: name, id: id, done: make(chan struct{})}
	b.used.Store(true)
	return b
}

// Name returns the bucket's name.
func (b *Bucket) Name() string { return b.name }

// ID returns the bucket's instance ID.
func (b *Bucket) ID() uint64 { return b.id }

// String returns the bucket's name; suture uses it in its logs.
func (b *Bucket) String() string { return b.name }

// Get returns a copy of the value stored under key, ErrNotFound when there is
// none, or ErrEnded.
func (b *Bucket) Get(key string) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.ended {
		return nil, ErrEnded
	}
	v, ok := b.data[key]
	if !ok {
		return nil, ErrNotFound
	}
	return clone(v), nil
}

// AppendValue appends the value stored under key to dst and returns the
// extended slice; it allocates only if dst is too small. It returns dst
// unchanged with ErrNotFound or ErrEnded. A present empty value appends
// nothing, so with a nil dst the result is nil: tell a missing key by the
// error, not by a nil slice.
func (b *Bucket) AppendValue(dst []byte, key string) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.ended {
		return dst, ErrEnded
	}
	v, ok := b.data[key]
	if !ok {
		return dst, ErrNotFound
	}
	return append(dst, v...), nil
}

// ValueLen returns the length of the value stored under key, ErrNotFound
// when there is none, or ErrEnded. It copies nothing.
func (b *Bucket) ValueLen(key string) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.ended {
		return 0, ErrEnded
	}
	v, ok := b.data[key]
	if !ok {
		return 0, ErrNotFound
	}
	return len(v), nil
}

// Bytes returns the number of pairs and the bytes of their keys and
// values (MEMORY USAGE), copying nothing. With samples above 0 it looks at
// that many pairs at most, picked as Go's map iteration picks them, and
// scales their bytes to the whole; 0 looks at every pair.
func (b *Bucket) Bytes(samples int) (pairs int, bytes int64, err error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.ended {
		return 0, 0, ErrEnded
	}
	seen := 0
	for k, v := range b.data {
		if samples > 0 && seen == samples {
			break
		}
		bytes += int64(len(k) + len(v))
		seen++
	}
	if seen > 0 && seen < len(b.data) {
		bytes = bytes * int64(len(b.data)) / int64(seen)
	}
	return len(b.data), bytes, nil
}

// Put stores a copy of value under key, replacing any value there. A
// durable bucket returns once the write is durable. On an error the write
// was not made, except when the store took it and then failed to make it
// durable: memory held it meanwhile (readers may have seen it), and the
// bucket has ended (see SetNoWait).
func (b *Bucket) Put(key string, value []byte) error {
	if b.store != nil {
		_, err := b.Set(key, value)
		return err
	}
	v := clone(value) // outside the lock
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return ErrEnded
	}
	if b.data == nil {
		b.data = make(map[string][]byte)
	}
	b.addingKey(key)
	b.data[key] = v
	b.version++
	return nil
}

// Delete removes key and returns the value it had, or ErrNotFound when there
// was none.
func (b *Bucket) Delete(key string) ([]byte, error) {
	if b.store != nil {
		return b.deleteDurable(key)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return nil, ErrEnded
	}
	v, ok := b.data[key]
	if !ok {
		return nil, ErrNotFound
	}
	delete(b.data, key)
	b.version++
	return v, nil // the stored slice was never handed out: the caller may own it
}

func (b *Bucket) deleteDurable(key string) ([]byte, error) {
	v, p, err := b.DeleteNoWait(key)
	if err != nil {
		return nil, err
	}
	if err := p.Wait(); err != nil {
		return nil, err
	}
	return v, nil
}

// DeleteNoWait is Delete that returns as soon as the removal is made in
// memory and recorded in the store, with a Pending for its durability, as
// [Bucket.SetNoWait] does (the same rules apply). For an in-memory bucket
// it is Delete, with a zero Pending.
func (b *Bucket) DeleteNoWait(key string) (old []byte, p Pending, err error) {
	if b.store == nil {
		old, err = b.Delete(key)
		return old, Pending{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return nil, Pending{}, ErrEnded
	}
	v, ok := b.data[key]
	if !ok {
		return nil, Pending{}, ErrNotFound
	}
	pw, err := b.record(store.Delete(key))
	if err != nil {
		return nil, Pending{}, err
	}
	delete(b.data, key)
	b.version++
	return v, Pending{pw}, nil
}

// Len returns the number of keys.
func (b *Bucket) Len() (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.ended {
		return 0, ErrEnded
	}
	return len(b.data), nil
}

// Keys returns the keys, in no particular order.
func (b *Bucket) Keys() ([]string, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.ended {
		return nil, ErrEnded
	}
	keys := make([]string, 0, len(b.data))
	for k := range b.data {
		keys = append(keys, k)
	}
	return keys, nil
}

// View runs fn with a read-only transaction: a consistent view of the bucket
// while writers wait. fn must not call b's own methods (the read lock is
// held), nor the registry's (a FlushAll, a Rename or a Delete may wait for
// this lock while fn waits for them). A panic in fn crashes the bucket, as
// in Update. A nil fn is refused with an error; the bucket carries on.
func (b *Bucket) View(fn func(*Tx) error) error {
	if fn == nil {
		return errNilFunc
	}
	b.mu.RLock()
	if b.ended {
		b.mu.RUnlock()
		return ErrEnded
	}
	perr, err := (&Tx{b: b}).run(fn, b.mu.RUnlock)
	if perr != nil {
		b.Stop(perr)
		return &crashError{bucket: b.name, panic: perr}
	}
	return err
}

// Update runs fn with a writable transaction, atomically "in the bucket's
// context": no other operation on b runs meanwhile. If fn returns an error,
// its writes are undone and the error is returned. If fn panics, its writes
// are undone, the bucket ends with a *PanicError as its reason (this bucket
// only: the registry, the other buckets and the caller carry on), and Update
// returns an error that wraps the *PanicError. fn must not call b's own
// methods (the write lock is held), nor the registry's (a FlushAll, a
// Rename or a Delete may wait for this lock while fn waits for them). A nil
// fn is refused with an error; the bucket carries on.
func (b *Bucket) Update(fn func(*Tx) error) error {
	p, err := b.UpdateNoWait(fn)
	if err != nil {
		return err
	}
	return p.Wait()
}

// UpdateNoWait is Update that returns as soon as fn's writes are made in
// memory and recorded in the store, with a Pending for their durability, as
// [Bucket.SetNoWait] does. On an error (fn's, a panic's or the store's)
// nothing was written and the Pending is zero.
func (b *Bucket) UpdateNoWait(fn func(*Tx) error) (Pending, error) {
	if fn == nil {
		return Pending{}, errNilFunc
	}
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return Pending{}, ErrEnded
	}
	tx := &Tx{b: b, writable: true}
	var p Pending
	perr, err := tx.run(fn, func() {
		// Still under the write lock: undo, and end the bucket on a panic,
		// before anyone else can see the half-done writes.
		if !tx.ok || tx.err != nil {
			tx.rollback()
		} else if len(tx.undo) > 0 && b.store == nil {
			b.version++
		} else if len(tx.undo) > 0 {
			// One batch with the final state of every key written.
			ops := make([]store.Op, 0, len(tx.undo))
			for _, u := range tx.undo {
				if v, ok := b.data[u.key]; ok {
					ops = append(ops, store.Put(u.key, v))
				} else {
					ops = append(ops, store.Delete(u.key))
				}
			}
			if pw, rerr := b.record(ops...); rerr != nil {
				tx.rollback()
				tx.err = rerr
			} else {
				b.version++
				p = Pending{pw}
			}
		}
		if tx.perr != nil {
			b.endLocked(tx.perr)
		}
		b.mu.Unlock()
	})
	if perr != nil {
		return Pending{}, &crashError{bucket: b.name, panic: perr}
	}
	return p, err
}

// Stop ends the bucket with reason: nil for a normal stop, or an error. It
// reports whether this call ended it (false if it had already ended). The
// data is released; every later operation returns ErrEnded.
func (b *Bucket) Stop(reason error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.endLocked(reason)
}

// MarkUsed records that the bucket is in use, for StopIdle: a registry
// that takes idle buckets out of memory marks each bucket its lookups
// return. A new bucket is marked.
func (b *Bucket) MarkUsed() {
	if !b.used.Load() { // a load only, while marked: no cache line to take
		b.used.Store(true)
	}
}

// StopIdle ends the bucket with reason if it has not been marked used
// since the last StopIdle, and otherwise clears the mark: called every
// period, it ends a bucket unused for a whole period. A bucket whose lock
// is held is in use: StopIdle does not wait for it, marks it used and
// leaves it. It reports whether this call ended the bucket. A caller that
// meets the ended bucket afterwards gets ErrEnded, and looks it up again
// (see EndedBefore).
func (b *Bucket) StopIdle(reason error) bool {
	if b.used.Swap(false) {
		return false
	}
	ended, free := b.tryStop(reason)
	if !free {
		b.used.Store(true)
	}
	return ended
}

// tryStop is Stop for a caller that must not wait for b's lock: free is
// false, and b goes on, while another holds the lock.
func (b *Bucket) tryStop(reason error) (ended, free bool) {
	if !b.mu.TryLock() {
		return false, false
	}
	defer b.mu.Unlock()
	return b.endLocked(reason), true
}

// Version returns a number that changes with every write that may change
// the bucket's pairs (Put and Set, even of the value already there; Delete
// of a present key; an Update that wrote and returned nil, even if its
// writes cancel out) and with nothing else: no read, no failed write, no
// Delete of a missing key. Or ErrEnded. A caller that saw
// the same bucket live with the same version twice knows that no write
// changed it in between: Redis's WATCH is built on it. A write counts as
// soon as memory holds it, before it is durable; one that is then lost
// ends the bucket.
func (b *Bucket) Version() (uint64, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.ended {
		return 0, ErrEnded
	}
	return b.version, nil
}

// Done is closed when the bucket has ended.
func (b *Bucket) Done() <-chan struct{} { return b.done }

// Err returns why the bucket ended: nil while it is live and after a normal
// stop, the error it was stopped with, a *PanicError, or the context's error
// when it was cancelled with its supervisor.
func (b *Bucket) Err() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.reason
}

func (b *Bucket) endLocked(reason error) bool {
	if b.ended {
		return false
	}
	b.ended = true
	b.reason = reason
	b.data = nil
	b.scan.Store(nil)
	close(b.done)
	return true
}

// run is the bucket's life as a service: it blocks until the bucket is
// stopped or ctx ends, and returns the reason it ended.
func (b *Bucket) run(ctx context.Context) error {
	select {
	case <-b.done:
	case <-ctx.Done():
		b.Stop(endReason(ctx))
	}
	return b.Err()
}

// endReason is what a bucket ends with when ctx, its supervisor's,
// stops it: ctx's cause when that is a context error too (a services.Root
// stopped by its host's deadline cancels its children's contexts with
// context.DeadlineExceeded as their cause), or else ctx's error. It is
// context.Canceled or context.DeadlineExceeded, or wraps one of them.
func endReason(ctx context.Context) error {
	if c := context.Cause(ctx); errors.Is(c, context.Canceled) || errors.Is(c, context.DeadlineExceeded) {
		return c
	}
	return ctx.Err()
}

func clone(v []byte) []byte {
	// Never nil, so that an empty value is still a value.
	return append(make([]byte, 0, len(v)), v...)
}

// crashError is what View and Update return when fn panicked.
type crashError struct {
	bucket string
	panic  *PanicError
}

func (e *crashError) Error() string {
	return "bucket " + e.bucket + ": function crashed the bucket: " + e.panic.Error()
}

func (e *crashError) Unwrap() []error { return []error{e.panic, ErrEnded} }

// Tx is a transaction of View or Update. It is valid only until the function
// it was given to returns, and only on that function's goroutine.
type Tx struct {
	b        *Bucket
	writable bool
	closed   bool
	undo     []undoRecord

	// How fn ended: returned (ok, with err), or panicked (perr).
	ok   bool
	err  error
	perr *PanicError
}

type undoRecord struct {
	key     string
	old     []byte
	existed bool
}

// run calls fn, then release, whatever happens: a return, a panic
// (recovered and reported as perr) or runtime.Goexit (release runs, and the
// goroutine goes on exiting).
func (tx *Tx) run(fn func(*Tx) error, release func()) (perr *PanicError, err error) {
	defer func() {
		tx.closed = true
		if r := recover(); r != nil {
			tx.perr = &PanicError{Value: r, Stack: debug.Stack()}
		}
		release()
		perr, err = tx.perr, tx.err
	}()
	tx.err = fn(tx)
	tx.ok = true
	return nil, tx.err
}

// Get returns a copy of the value under key, as this transaction sees it.
func (tx *Tx) Get(key string) ([]byte, error) {
	if tx.closed {
		return nil, ErrTxClosed
	}
	v, ok := tx.b.data[key]
	if !ok {
		return nil, ErrNotFound
	}
	return clone(v), nil
}

// Has reports whether key is present; false once the transaction has
// ended.
func (tx *Tx) Has(key string) bool {
	if tx.closed {
		return false
	}
	_, ok := tx.b.data[key]
	return ok
}

// Len returns the number of keys; 0 once the transaction has ended.
func (tx *Tx) Len() int {
	if tx.closed {
		return 0
	}
	return len(tx.b.data)
}

// ForEach calls fn with each key and a copy of its value, in no particular
// order, until fn returns an error, which ForEach returns. fn must not write
// through tx. A nil fn is refused with an error.
func (tx *Tx) ForEach(fn func(key string, value []byte) error) error {
	if tx.closed {
		return ErrTxClosed
	}
	if fn == nil {
		return errNilFunc
	}
	for k, v := range tx.b.data {
		if err := fn(k, clone(v)); err != nil {
			return err
		}
	}
	return nil
}

// Put stores a copy of value under key.
func (tx *Tx) Put(key string, value []byte) error {
	if err := tx.writableErr(); err != nil {
		return err
	}
	old, existed := tx.b.data[key]
	tx.undo = append(tx.undo, undoRecord{key: key, old: old, existed: existed})
	if tx.b.data == nil {
		tx.b.data = make(map[string][]byte)
	}
	if !existed {
		tx.b.keyAdded(key)
	}
	tx.b.data[key] = clone(value)
	return nil
}

// Delete removes key and returns its value, or ErrNotFound. Like Get and
// Has, it keeps no reference to key once the transaction has ended (a key
// that a rollback puts back is a copy), so key may alias a buffer that the
// caller reuses afterwards.
func (tx *Tx) Delete(key string) ([]byte, error) {
	if err := tx.writableErr(); err != nil {
		return nil, err
	}
	old, existed := tx.b.data[key]
	if !existed {
		return nil, ErrNotFound
	}
	tx.undo = append(tx.undo, undoRecord{key: key, old: old, existed: true})
	delete(tx.b.data, key)
	return clone(old), nil
}

func (tx *Tx) writableErr() error {
	switch {
	case tx.closed:
		return ErrTxClosed
	case !tx.writable:
		return ErrReadOnly
	}
	return nil
}

// rollback undoes the transaction's writes, newest first. A key it puts
// back is a copy: Get, Has and Delete may be given a key that aliases the
// caller's buffer (the network front ends' zero-copy strings), and a map
// assignment stores the key it is given, even over an equal one.
func (tx *Tx) rollback() {
	for i := len(tx.undo) - 1; i >= 0; i-- {
		u := tx.undo[i]
		if u.existed {
			key := strings.Clone(u.key)
			tx.b.addingKey(key) // a deleted key comes back
			tx.b.data[key] = u.old
		} else {
			delete(tx.b.data, u.key)
		}
	}
	tx.undo = nil
}
