package registry

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/scanorder"
)

// MaxNameLen is the longest bucket name, in bytes.
const MaxNameLen = 4096

var (
	// ErrNotFound is returned (wrapped) by Delete, and by Rename and Copy
	// for their source, when no bucket has the name: none live, and with
	// a store none stored either.
	ErrNotFound = errors.New("registry: bucket not found")

	// ErrInvalidName is returned (wrapped, with the detail) for an empty
	// name or one longer than MaxNameLen.
	ErrInvalidName = errors.New("registry: invalid bucket name")

	// ErrStopped is returned (wrapped) by Create and CreateWith once the
	// registry's stop has begun (its Serve's context has ended, or Drain
	// runs), and, with a store, by Delete, Rename and FlushAll from the
	// same moment: the stop waits for those begun before it, and no new
	// one begins, so that nothing of this registry writes to the store
	// once its Serve has returned (another tree may serve on the store
	// then). Create, LookupCurrent, Delete and FlushAll waiting for an
	// ended bucket to be forgotten return it too once Serve has returned
	// (no loop forgets it), and so do LookupErr and LookupCurrent, with a
	// store, for a name that may be stored but is not in memory once the
	// stop has begun (it loads nothing then).
	ErrStopped = errors.New("registry: stopped")
)

// Starter starts buckets under supervision; *bucket.Supervisor is one. Start
// must call onEnd exactly once when b ends, unless it returns an error.
type Starter interface {
	Start(b *bucket.Bucket, onEnd func(b *bucket.Bucket, reason error)) error
}

// Publisher receives the registry's events; *events.Manager is one. Hold
// keeps it open while the registry may still publish.
type Publisher interface {
	Publish(events.Event)
	Hold() (release func())
}

// Config configures a Registry. Buckets and Events are required.
type Config struct {
	Buckets Starter      // the bucket supervisor
	Events  Publisher    // the event manager
	Logger  *slog.Logger // nil discards the registry's logs
	// Store, when not nil, keeps every bucket's data durably, and the
	// registry loads stored buckets at their first use; nil keeps buckets
	// in memory only.
	Store Store
	// Admit, when not nil (with a Store), is asked before each operation
	// that brings a bucket from the store into memory or changes the store
	// (a load, a create, a delete, a rename, a flush); an error refuses the
	// operation, wrapped. A host that lets several registries share one
	// store, one serving at a time, admits only the one serving (a
	// services root admits while it holds its DataDir, which the first
	// admission makes it take): another would keep its own copy of a
	// bucket and write the store behind the back of the one serving.
	// Another registry may change the store until this one is admitted,
	// so New does not list the store then: until the host calls Reindex
	// (once it admits this registry, before the first admitted operation
	// runs), a miss tries a load, which asks Admit, and Names, Len and
	// Scan read the store.
	Admit func() error
	// StopTimeout bounds how long a stopping registry waits for the end
	// notices of the buckets stopped with it, and for the operations under
	// way on them; 0 means 10 seconds.
	StopTimeout time.Duration
	// UnloadIdle, with a Store, takes out of memory each live bucket that
	// no lookup has returned (Lookup, LookupErr, LookupCurrent, Create,
	// CreateWith) and no Copy has read for at least UnloadIdle (at most
	// about twice that, and the time the passes take): the registry ends
	// it (bucket.StopIdle, reason bucket.ErrIdle, an Exited like any
	// other) and its data stays in the store, which its next use loads
	// again, as after a restart. A caller that keeps a *bucket.Bucket
	// rather than looking its name up meets bucket.ErrEnded then, and
	// looks the name up again (see bucket.EndedBefore). 0 keeps every
	// bucket in memory until it is deleted. Without a Store it must be 0:
	// a bucket's memory is all its data.
	UnloadIdle time.Duration
}

// Registry is the registry service. Create one with [New]; the zero value is
// not usable. All methods are safe for concurrent use.
type Registry struct {
	buckets Starter
	events  Publisher
	log     *slog.Logger
	stopFor time.Duration
	idle    time.Duration // Config.UnloadIdle
	store   Store         // nil: in memory only
	admit   func() error  // nil: every store operation is admitted
	flushMu sync.RWMutex  // write-locked by FlushAll, read-locked by loads and renames
	loadLog *logLimit     // Lookup's failures to load
	txLock  sync.RWMutex  // see TxLock
	births  births        // see Births
	ends    endCounters   // see Ends

	mu       sync.RWMutex // guards everything below
	nextID   uint64
	closed   bool // the stop has begun: no more Create, and no claim or flush (see claim)
	names    map[string]*bucket.Bucket
	refs     map[uint64]ref           // bucket ID -> the bucket, until forgotten
	waiters  map[uint64]chan struct{} // bucket ID -> closed once forgotten (nil: no one waits yet)
	claims   map[string]chan struct{} // name -> closed when its load, delete or rename is done
	flushing chan struct{}            // closed when the FlushAll under way is done (nil: none)
	// exiting holds, by name, the ID of the bucket last registered under
	// it whose Exited forget is publishing: out of the tables already, so
	// that a new bucket of that name may be made meanwhile, which start
	// announces only once that Exited is out (see start).
	exiting map[string]uint64
	// stored holds the name of every stored bucket, loaded or not (with a
	// store; nil without one, or if New could not list the store), so that
	// a miss, Names and Len never read the store: reads never touch the
	// disk, except to bring a stored bucket into memory.
	stored map[string]struct{}
	// order holds the names Scan walks, in scan order: the live buckets'
	// without a store, the stored buckets' with one (nil when stored is).
	order *btree.BTreeG[scanorder.Item]
	// indexWrites holds, by name, the queued writes that change whether
	// it is stored and have not all met their fate (see indexWrite).
	indexWrites map[string][]*indexWrite
	// indexMu makes queueing an index write (a rename's move, a DEL's
	// drop, a create's first write) and tracking it one step against the
	// settling of the others (see indexWrite): taken before mu, and never
	// while waiting for a store write.
	indexMu sync.Mutex
	// testIndexBlocked, if set, runs when settledIndexWrite must wait for
	// indexMu (tests only).
	testIndexBlocked func()
	// testMoveRead, if set, runs once a rename or a copy has read its
	// source's pairs and released the source's lock (tests only).
	testMoveRead func()
	// testMoveChecked, if set, runs once a rename or a copy with a store
	// has checked its source and target, before it queues its write
	// (tests only).
	testMoveChecked func()
	// testUnloadAfter, if set, is what the unloader waits on for its next
	// pass instead of a timer (tests only; set before Serve).
	testUnloadAfter func(time.Duration) <-chan time.Time

	box *mailbox
	// stopped is closed, under mu, once a stop's drain is over: Serve
	// returns, and nothing is forgotten any more. (No store operation
	// starts from closed on, earlier: see claim.)
	stopped chan struct{}
	runs    atomic.Uint64 // how many times Serve has started
	release func()        // releases the hold on the event manager
	// serving holds a token while a Serve's loop, or Drain or a bucket's
	// end hook in its stead (see monitor), takes the mailbox's notices:
	// never two at once.
	serving chan struct{}
	// down is set while no Serve runs after one crashed: the end hooks
	// stand in for the loop (see monitor). lost is set when a crashed loop
	// may have taken notices with it; the next to take the notices finds
	// their buckets again (remonitor).
	down, lost atomic.Bool
}

// New returns a registry that starts buckets with cfg.Buckets and publishes
// to cfg.Events. It panics if either is nil, or if cfg.UnloadIdle is set
// without a cfg.Store.
func New(cfg Config) *Registry {
	if cfg.Buckets == nil || cfg.Events == nil {
		panic("registry: New needs Config.Buckets and Config.Events")
	}
	if cfg.UnloadIdle > 0 && cfg.Store == nil {
		panic("registry: Config.UnloadIdle needs a Config.Store: in memory, an unloaded bucket's data would be lost")
	}
	r := &Registry{
		buckets: cfg.Buckets,
		events:  cfg.Events,
		log:     cfg.Logger,
		stopFor: cfg.StopTimeout,
		idle:    cfg.UnloadIdle,
		names:   make(map[string]*bucket.Bucket),
		refs:    make(map[uint64]ref),
		waiters: make(map[uint64]chan struct{}),
		claims:  make(map[string]chan struct{}),
		exiting: make(map[string]uint64),
		store:   cfg.Store,
		admit:   cfg.Admit,
		loadLog: newLogLimit(time.Second),
		box:     newMailbox(),
		stopped: make(chan struct{}),
		serving: make(chan struct{}, 1),
	}
	r.births.seed = maphash.MakeSeed()
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.stopFor <= 0 {
		r.stopFor = 10 * time.Second
	}
	r.order = newOrder()
	if r.store != nil {
		if r.admit == nil {
			r.indexStore()
		} else {
			r.order = nil // no index until Reindex (see Config.Admit)
		}
	}
	// Held from the start, not from Serve: a tree stopped before the
	// registry's goroutine ran must still deliver the Exited of the buckets
	// created meanwhile.
	r.release = r.events.Hold()
	return r
}

// CheckName returns nil if name can name a bucket, or an error wrapping
// ErrInvalidName that says what is wrong with it.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidName, len(name), MaxNameLen)
	}
	return nil
}

// TxLock returns the lock that isolates transactions across front ends:
// a Redis EXEC holds it alone while it checks its watched keys and runs
// its commands, and every front end (the Redis protocol, the line
// protocol, HTTP) holds it shared while one of its commands reads or
// changes buckets, so that nothing runs between a transaction's commands
// and no watched key changes unseen. A host that embeds the tree and
// wants its own operations isolated likewise holds it shared around them.
// Hold it only while a command runs, never while waiting for the network,
// and not while waiting for a write to be durable where that can be
// avoided (write with bucket.SetNoWait, DeleteNoWait or UpdateNoWait under
// it, and wait for the Pending after): an EXEC waits meanwhile, and with
// Go's RWMutex everyone behind it. Never hold it twice on one goroutine (a
// second RLock waits for an EXEC that waits for the first). A host that
// writes without it is not held back by a transaction: a transaction then
// may not see, or may overwrite, what the host wrote while it ran.
func (r *Registry) TxLock() *sync.RWMutex { return &r.txLock }

// Shared runs fn with tx, a registry's TxLock, held shared, as a front
// end's command does, and releases it however fn ends: a panic that the
// caller recovers (the line protocol ends the connection alone; net/http,
// the request) must not leave it held, or the next EXEC, which takes it
// alone, would wait for ever, and every command of every front end after
// it. A function, not a method of an interface: fn does not escape, and a
// command's closure costs no allocation.
func Shared(tx *sync.RWMutex, fn func()) {
	tx.RLock()
	defer tx.RUnlock()
	fn()
}

// Births returns a number that changes whenever a bucket is recorded
// under name: created, loaded from the store or renamed onto it. It is
// kept per hash of names, so it may also change for another name (a false
// alarm), never stay for this one. A caller that found name absent twice,
// with the same Births read before each lookup, knows that no bucket had
// that name in between: Redis's WATCH of a missing key is built on it,
// where a bucket's Version serves for a present one.
func (r *Registry) Births(name string) uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.births.of(name)
}

// births counts, per hash of names, the buckets recorded under them (see
// Births). Under the registry's mu.
type births struct {
	seed  maphash.Seed
	slots [birthSlots]uint64
}

// birthSlots is how many counts births keeps: 8 KiB, and a false alarm
// for one name in 1,024.
const birthSlots = 1024

func (bs *births) add(name string) { bs.slots[maphash.String(bs.seed, name)%birthSlots]++ }

func (bs *births) of(name string) uint64 {
	return bs.slots[maphash.String(bs.seed, name)%birthSlots]
}

// String names the service in suture's logs.
func (r *Registry) String() string { return "kv registry" }

// Create returns the live bucket named name, creating and starting it if
// there is none. It is synchronous: when it returns, Lookup finds the bucket.
// Creating an existing name returns the existing bucket and publishes
// nothing; a new bucket is announced with one events.Created. A bucket of
// that name that has ended (a crash) but that the loop has not yet
// forgotten is not returned: Create waits until it is forgotten (or ctx
// ends, or the registry's Serve returns: ErrStopped), then creates the
// name again (with a store, the bucket comes back
// from the disk); a name whose buckets end maxFollows times in a row gets
// an error wrapping bucket.ErrEnded. A Create of a name that a rename is
// moving (its source or its target) waits until the names have switched,
// in memory as with a store, as CreateWith does.
func (r *Registry) Create(ctx context.Context, name string) (*bucket.Bucket, error) {
	for range maxFollows {
		b, err := r.create(ctx, name)
		if err != nil || b == nil {
			return b, err
		}
		select {
		case <-b.Done(): // ended, not yet forgotten: follow the name
		default:
			return b, nil
		}
		if err := r.awaitForgotten(ctx, r.Forgotten(b)); err != nil {
			return nil, fmt.Errorf("registry: create %q: %w", name, err)
		}
	}
	return nil, fmt.Errorf("registry: create %q: it ended %d times in a row: %w", name, maxFollows, bucket.ErrEnded)
}

// create is one attempt of Create: the bucket it returns may have ended.
func (r *Registry) create(ctx context.Context, name string) (*bucket.Bucket, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if b, ok := r.Lookup(name); ok {
		return b, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("registry: create %q: %w", name, err)
	}
	if r.store != nil {
		b, _, err := r.load(ctx, name, true)
		return b, err
	}

	r.mu.Lock()
	if b, err := r.freeNameLocked(ctx, name); b != nil || err != nil {
		return b, err
	}
	r.nextID++
	b := bucket.New(name, r.nextID)
	r.addLocked(name, b)
	r.mu.Unlock()
	return b, r.start(name, b)
}

// CreateWith returns the live bucket named name with first run in it, as
// bucket.UpdateNoWait runs it, and first's Pending. When there is no such
// bucket it creates one whose first write is first, made before any other
// caller can find the bucket: no reader sees it empty, and with a store
// the bucket and that write are recorded in one write, so that a crash
// leaves both or neither (HSET on a missing hash creates it with its
// field, as in Redis). When first fails on a new bucket, the bucket is not
// created. Create, by contrast, makes an empty bucket (the guide's CREATE).
// In memory, first may run twice: on the new bucket, then, if a
// concurrent Create made the name meanwhile, on that one instead; it must
// set whatever it reports afresh at each run. first must not use the
// registry: it runs under the lock of an existing bucket of that name, as
// Bucket.Update's fn does (a rename or a copy may wait for that lock while
// holding the names first would create), and with a store while the name
// is claimed (against concurrent loads, deletes and renames of it) and
// FLUSHALL is held off.
func (r *Registry) CreateWith(ctx context.Context, name string, first func(*bucket.Tx) error) (*bucket.Bucket, bucket.Pending, error) {
	if err := CheckName(name); err != nil {
		return nil, bucket.Pending{}, err
	}
	if b, ok := r.Lookup(name); ok {
		p, err := b.UpdateNoWait(first)
		return b, p, err
	}
	if err := ctx.Err(); err != nil {
		return nil, bucket.Pending{}, fmt.Errorf("registry: create %q: %w", name, err)
	}
	name = strings.Clone(name) // the tables and the bucket keep it
	if r.store != nil {
		return r.createStoredWith(ctx, name, first)
	}
	// In memory: first runs on a bucket no one can find yet, outside the
	// tables' lock (it may take its time). If a Create made the name
	// meanwhile, first runs again, on that bucket.
	b := bucket.New(name, r.newID())
	p, err := b.UpdateNoWait(first)
	if err != nil {
		return nil, bucket.Pending{}, err
	}
	r.mu.Lock()
	old, err := r.freeNameLocked(ctx, name)
	if err != nil {
		return nil, bucket.Pending{}, err
	}
	if old != nil { // created meanwhile
		p, err := old.UpdateNoWait(first)
		return old, p, err
	}
	r.addLocked(name, b)
	r.mu.Unlock()
	return b, p, r.start(name, b)
}

// freeNameLocked is the in-memory create's check of name, under r.mu,
// which the caller holds: once name is neither claimed (by a rename of
// it) nor the registry closed, it returns the bucket named name, if there
// is one, with r.mu released, or nil with r.mu still held, for the caller
// to register a new bucket. On an error (ErrStopped, or ctx's while it
// waits for a claim) r.mu is released.
func (r *Registry) freeNameLocked(ctx context.Context, name string) (*bucket.Bucket, error) {
	for {
		if r.closed {
			r.mu.Unlock()
			return nil, ErrStopped
		}
		if b, ok := r.names[name]; ok {
			r.mu.Unlock()
			return b, nil
		}
		waited, err := r.awaitUnclaimedLocked(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("registry: create %q: %w", name, err)
		}
		if !waited {
			return nil, nil
		}
	}
}

// awaitUnclaimedLocked waits, when name is claimed (in memory, by a
// rename of it), until the claim is released or ctx ends, and reports
// whether it waited. The caller holds r.mu, which is released while it
// waits and held again when it returns with no error (released when it
// returns one): what the caller checked under it must be checked again.
func (r *Registry) awaitUnclaimedLocked(ctx context.Context, name string) (bool, error) {
	c := r.claims[name]
	if c == nil {
		return false, nil
	}
	r.mu.Unlock()
	select {
	case <-c:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	r.mu.Lock()
	return true, nil
}

// ref is what refs keeps of a bucket until it is forgotten: the bucket
// (its name is the one it was registered under, even once a rename has
// taken that name away from it), and whether its Created is published.
type ref struct {
	b         *bucket.Bucket
	announced bool
}

// addLocked records b, new, under name: in the tables, and in the scan
// order (with a store, in the index of stored names, which the caller has
// made sure holds it). The caller holds r.mu.
func (r *Registry) addLocked(name string, b *bucket.Bucket) {
	r.births.add(name)
	r.names[name] = b
	r.refs[b.ID()] = ref{b: b}
	if r.store == nil {
		r.order.ReplaceOrInsert(scanorder.Of(name))
	} else {
		r.indexLocked(name)
	}
}

// start announces and starts b, just recorded under name.
func (r *Registry) start(name string, b *bucket.Bucket) error {
	// From here a concurrent Create of the same name returns b, which may
	// not be running yet: it is usable, and its end is reported either way.
	// Published before the bucket runs, so that its Exited, which the loop
	// publishes, cannot come first; and after the Exited of the name's
	// last bucket, if the loop is publishing it (see forget).
	r.awaitExiting(name)
	r.events.Publish(events.Created{Bucket: name, ID: b.ID()})
	r.mu.Lock()
	if rf, ok := r.refs[b.ID()]; ok {
		rf.announced = true
		r.refs[b.ID()] = rf
	}
	r.mu.Unlock()
	if err := r.buckets.Start(b, r.monitor); err != nil {
		b.Stop(err)
		r.monitor(b, err) // it never ran: report its end ourselves
		return fmt.Errorf("registry: create %q: %w", name, err)
	}
	return nil
}

// Lookup returns the bucket named name: a live one, or one that has just
// ended and that the loop has not yet forgotten (LookupCurrent follows the
// name past such a bucket). It does not wait for the
// registry's loop, but for one case below. With a store, a miss loads the
// bucket if it is stored (on the caller's goroutine), after any load,
// delete or rename of that name under way: a RENAME onto a stored bucket
// that is not in memory holds the name until the source's end is
// reported, so a Lookup of it waits for the rename, and with it for the
// loop.
func (r *Registry) Lookup(name string) (*bucket.Bucket, bool) {
	b, ok := r.live(name)
	if ok || r.store == nil || !r.maybeStored(name) {
		return b, ok
	}
	b, ok, err := r.lookupStored(name)
	if err != nil && !errors.Is(err, ErrStopped) { // stopped: nothing to report
		if ok, dropped := r.loadLog.allow(); ok {
			// A copy of the name: it may alias the caller's buffer (see
			// lookupStored), and a handler may keep the record to format
			// it later.
			r.log.Error("registry: lookup could not load a stored bucket (at most one line a second)",
				"bucket", strings.Clone(name), "err", err, "lines_held_back", dropped)
		}
	}
	return b, ok
}

// live returns the bucket in memory named name, marked used (see
// Config.UnloadIdle): the first step of Lookup and LookupErr.
func (r *Registry) live(name string) (*bucket.Bucket, bool) {
	b, ok := r.lookupLive(name)
	if ok {
		b.MarkUsed()
	}
	return b, ok
}

// LookupErr is Lookup that also reports why a stored bucket could not be
// loaded (the store cannot be read, for example while it recovers from a
// failed write; or the registry has stopped, ErrStopped): then the bucket
// is not known to be absent.
func (r *Registry) LookupErr(name string) (*bucket.Bucket, bool, error) {
	b, ok := r.live(name)
	if ok || r.store == nil || !r.maybeStored(name) {
		return b, ok, nil
	}
	return r.lookupStored(name)
}

// maxFollows bounds how often LookupCurrent follows a name past a bucket
// it found ended.
const maxFollows = 8

// LookupCurrent is LookupErr for a caller about to use the bucket. A bucket
// found ended (a crash, a rename, a delete under way) but not yet forgotten
// is followed: LookupCurrent waits, bounded by ctx, until the registry has
// forgotten it and looks the name up again, so that the caller meets what
// the name means now (with a store, the same data loaded back after a
// crash; a renamed bucket; or nothing) rather than a bucket that reads as
// empty. A bucket that ends after LookupCurrent returns is the caller's
// to handle (bucket.ErrEnded). If the name leads to an ended bucket
// maxFollows times in a row, it returns an error wrapping
// bucket.ErrEnded: try again.
func (r *Registry) LookupCurrent(ctx context.Context, name string) (*bucket.Bucket, bool, error) {
	for range maxFollows {
		b, ok, err := r.LookupErr(name)
		if err != nil || !ok {
			return nil, false, err
		}
		select {
		case <-b.Done(): // ended: follow the name
		default:
			return b, true, nil
		}
		if err := r.awaitForgotten(ctx, r.Forgotten(b)); err != nil {
			return nil, false, fmt.Errorf("registry: lookup %q: %w", name, err)
		}
	}
	// Ended over and over (a bucket that crashes at each load, or renames
	// onto it without end): an error, not an absent bucket, which it is
	// not.
	return nil, false, fmt.Errorf("registry: lookup %q: it ended %d times in a row: %w", name, maxFollows, bucket.ErrEnded)
}

// maybeStored reports whether a bucket named name may be in the store:
// false only when the index of stored names says it is not.
func (r *Registry) maybeStored(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.stored == nil {
		return true
	}
	_, ok := r.stored[name]
	return ok
}

// lookupLive returns the bucket named name if it is in memory.
func (r *Registry) lookupLive(name string) (*bucket.Bucket, bool) {
	r.mu.RLock()
	b, ok := r.names[name]
	r.mu.RUnlock()
	return b, ok
}

// Delete stops the bucket named name normally and returns once the registry
// has forgotten it and published its Exited and, with a store, once its
// data is dropped durably. It returns an error wrapping ErrNotFound if
// there is no such bucket (with a store, none stored either), or, in
// memory, if the bucket was already ending for another reason (then it
// still waits for it to be forgotten). With a store, a bucket that had
// ended so (a crash) still has its data, which Delete drops: it returns
// nil. A ctx that has ended before the call changes nothing: Delete
// returns an error wrapping ctx's error, as Create does. ctx then bounds
// the wait for the bucket to be forgotten: if it ends meanwhile, Delete
// returns its error, the bucket stopped (in memory its pairs are gone;
// with a store they stay, and its next use loads them back). With a
// store, a Delete that begins once the registry's stop has begun changes
// nothing and returns an error wrapping ErrStopped; one begun before it
// finishes, and the stop waits for it.
func (r *Registry) Delete(ctx context.Context, name string) error {
	p, err := r.DeleteNoWait(ctx, name)
	if err != nil {
		return err
	}
	// Committed even while a Hold keeps the drop's group, as the store's
	// own synchronous writes are (see store.Store.Hold).
	if err := p.Commit(); err != nil {
		return fmt.Errorf("registry: delete %q: %w", name, err)
	}
	return nil
}

// DeleteNoWait is Delete for a caller that waits for the drop's
// durability itself, with its buckets' writes (a connection answering a
// pipeline: see bucket.Pending): it returns once the registry has
// forgotten the bucket, with the drop queued in the store, and its
// Pending (the zero Pending in memory, and with a store whose buckets
// could not be listed at start, where the drop is waited for: without the
// index of stored names, the store, which shows the bucket until its drop
// is committed, answers for it). The name is gone from the registry at
// once; if the drop is lost, the Pending's wait fails and the name is
// listed again, as the disk holds it. Wait for the Pending exactly once.
func (r *Registry) DeleteNoWait(ctx context.Context, name string) (bucket.Pending, error) {
	n, drops, err := r.DeleteManyNoWait(ctx, []string{name})
	switch {
	case err != nil:
		return bucket.Pending{}, err
	case n == 0:
		return bucket.Pending{}, fmt.Errorf("registry: delete %q: %w", name, ErrNotFound)
	case len(drops) == 1:
		return drops[0], nil
	}
	return bucket.Pending{}, nil
}

// Names returns the names of the live buckets, in no particular order; with
// a store, those of the stored buckets too, loaded or not. If the store
// cannot be read, it logs why and returns the live buckets only.
func (r *Registry) Names() []string {
	names, err := r.NamesErr()
	if err != nil {
		r.log.Error("registry: cannot list the stored buckets", "err", err)
	}
	return names
}

// NamesErr is Names that reports an error when the stored buckets cannot
// be listed (the store cannot be read, for example while it recovers from
// a failed write); the names returned then are the live buckets' only.
func (r *Registry) NamesErr() ([]string, error) {
	r.mu.RLock()
	if r.stored != nil { // every live bucket is stored too
		names := make([]string, 0, len(r.stored))
		for n := range r.stored {
			names = append(names, n)
		}
		r.mu.RUnlock()
		return names, nil
	}
	names := make([]string, 0, len(r.names))
	for n := range r.names {
		names = append(names, n)
	}
	r.mu.RUnlock()
	if r.store == nil {
		return names, nil
	}
	seen := make(map[string]struct{}, len(names))
	for _, n := range names {
		seen[n] = struct{}{}
	}
	err := r.store.Buckets(func(n string) error {
		if _, ok := seen[n]; !ok {
			seen[n] = struct{}{}
			names = append(names, n)
		}
		return nil
	})
	if err != nil {
		return names, fmt.Errorf("registry: list stored buckets: %w", err)
	}
	return names, nil
}

// Live returns the buckets in memory, in no particular order. With a
// store, the stored buckets that have not been loaded are not among them
// (Names has them): Live loads nothing.
func (r *Registry) Live() []*bucket.Bucket {
	r.mu.RLock()
	defer r.mu.RUnlock()
	live := make([]*bucket.Bucket, 0, len(r.names))
	for _, b := range r.names {
		live = append(live, b)
	}
	return live
}

// Len returns the number of live buckets; with a store, of the live and
// stored buckets (if the store cannot be read, of the live ones).
func (r *Registry) Len() int {
	n, _ := r.LenErr()
	return n
}

// LenErr is Len that reports an error when the stored buckets cannot be
// counted (the count returned is then that of the live ones).
func (r *Registry) LenErr() (int, error) {
	r.mu.RLock()
	switch {
	case r.store == nil:
		defer r.mu.RUnlock()
		return len(r.names), nil
	case r.stored != nil:
		defer r.mu.RUnlock()
		return len(r.stored), nil
	}
	r.mu.RUnlock()
	names, err := r.NamesErr()
	return len(names), err
}

// Serve runs the registry's loop until ctx ends. A Serve that crashed and is
// run again carries on with the same tables and mailbox. When ctx ends, it
// stops creating, waits (up to StopTimeout) for the end notices of every
// live bucket, which the stopping bucket supervisor sends, publishes their
// Exited, waits (within the same StopTimeout) for the loads, creates,
// deletes, renames and flushes begun before ctx ended to finish (with a
// store, any that begins after is refused with ErrStopped), so that
// nothing of this registry writes to the store once it returns (after
// StopTimeout, those still under way go on), releases its hold on
// the event manager (taken by New) and returns. A registry serves one
// tree: once it has drained, by a Serve or by [Registry.Drain], Serve
// returns suture.ErrDoNotRestart at once.
func (r *Registry) Serve(ctx context.Context) error {
	if !r.takeLoop() {
		return errDrained
	}
	r.down.Store(false)
	returned := false
	defer func() {
		if returned {
			r.leaveLoop()
			return
		}
		// A panic: until suture runs Serve again (at once, or after
		// FailureBackoff), the buckets' end hooks do the loop's work (see
		// monitor), starting with the notices sent meanwhile.
		r.lost.Store(true)
		r.down.Store(true)
		r.leaveLoop()
		r.standIn()
	}()
	if r.runs.Add(1) > 1 {
		live, ended := r.remonitor()
		r.log.Info("registry restarted", "buckets", live, "ended_while_down", ended)
	}
	stopUnloads := r.unloadIdle()
	defer stopUnloads()
	for {
		select {
		case <-r.box.ready:
			r.handle(r.box.take())
		case <-ctx.Done():
			stopUnloads() // the buckets stopped with the tree end as a shutdown
			r.drain()
			returned = true
			return ctx.Err()
		}
	}
}

// unloadIdle starts, with Config.UnloadIdle, the goroutine that takes idle
// buckets out of memory, and returns what stops it and waits for it
// (callable more than once). Off the loop: ending many buckets at once
// must not hold back the end notices of the others.
func (r *Registry) unloadIdle() (stop func()) {
	if r.idle <= 0 {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	after := r.testUnloadAfter
	if after == nil {
		after = time.After
	}
	go func() {
		defer close(done)
		for {
			// A whole period from the end of the last pass, not a ticker's:
			// a pass that waits for batches to be forgotten may take longer
			// than the period, and a ticker's next tick (kept while the pass
			// ran) would start the next one at once, visiting a bucket soon
			// after the last pass cleared its mark: a bucket used just
			// before that would be ended though it was not idle a whole
			// period.
			select {
			case <-quit:
				return
			case <-after(r.idle):
			}
			if n := r.unloadIdleOnce(quit); n > 0 {
				r.log.Debug("registry: idle buckets taken out of memory", "buckets", n)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// unloadIdleOnce is one period's pass of unloadIdle: it ends the live
// buckets that no lookup has returned since the last pass (see
// bucket.StopIdle), until quit is closed, and returns how many. It ends
// them in batches, as DEL does (deleteBatch), waits for the registry to
// forget each batch, and then for the events' subscribers to make room
// (unloadRoom) before the next, at most unloadRate a second: tens of
// thousands of Exited at once would overflow their mailboxes (a
// subscriber with 4,096 places lost 14,751 of 86,355 in one pass before;
// under bench/soak.sh, event streams were cut and a subscriber
// disconnected), and a subscriber whose mailbox overflows is told so, or
// disconnected.
func (r *Registry) unloadIdleOnce(quit <-chan struct{}) (unloaded int) {
	batch := make([]*bucket.Bucket, 0, deleteBatch)
	limit := r.unloadRoom(quit)
	began := time.Now()
	wait := func() bool {
		for _, b := range batch {
			select {
			case <-r.Forgotten(b):
			case <-quit:
				return false
			}
		}
		// At most unloadRate a second.
		if rest := time.Duration(len(batch))*time.Second/unloadRate - time.Since(began); rest > 0 {
			t := time.NewTimer(rest)
			defer t.Stop()
			select {
			case <-t.C:
			case <-quit:
				return false
			}
		}
		batch, began = batch[:0], time.Now()
		return true
	}
	for _, b := range r.Live() {
		select {
		case <-quit:
			return unloaded
		default:
		}
		if b.StopIdle(bucket.ErrIdle) {
			unloaded++
			if batch = append(batch, b); len(batch) >= limit {
				if !wait() {
					return unloaded
				}
				if limit = r.unloadRoom(quit); limit == 0 {
					return unloaded
				}
			}
		}
	}
	wait()
	return unloaded
}

// unloadWait bounds how long a batch of unloads waits for the events'
// subscribers to make room (see unloadRoom).
const unloadWait = time.Second

// unloadRate is how many buckets a second the unloads end at most. Room
// sees the subscriptions' mailboxes, not what a subscriber queues past
// them: an HTTP event stream hands its events to its writer through a
// queue of its own, and under bench/soak.sh (UNLOAD_IDLE=3s, 5 minutes,
// two busy cores) streams were still cut 20 times with no cap, at bursts
// of a few thousand Exited in milliseconds, 3 times with 10,000 a second,
// once with 2,000 (one run each: a starved client is cut now and then
// without unloads too). A million idle buckets take 500 s to leave memory
// at this rate: a background task's pace, for periods of minutes.
const unloadRate = 2000

// unloadRoom returns how many buckets the next batch of unloads may end,
// at most deleteBatch, once the events' subscribers have room for their
// Exited (when the Publisher tells its Room, as events.Manager does): it
// waits until every mailbox has room for 64, then allows half the least
// room, so that a subscriber that keeps up is not cut for a burst. After
// unloadWait it allows a whole batch: a subscriber that takes nothing
// must not stop the unloads, and loses events as it would anyway. 0: quit
// was closed.
func (r *Registry) unloadRoom(quit <-chan struct{}) int {
	rm, ok := r.events.(interface{ Room() int })
	if !ok {
		return deleteBatch
	}
	var tick *time.Ticker
	deadline := time.Now().Add(unloadWait)
	for {
		if room := rm.Room(); room >= 64 {
			return min(deleteBatch, room/2)
		}
		if !time.Now().Before(deadline) {
			return deleteBatch
		}
		if tick == nil {
			tick = time.NewTicker(time.Millisecond)
			defer tick.Stop()
		}
		select {
		case <-quit:
			return 0
		case <-tick.C:
		}
	}
}

// errDrained is what Serve returns once the registry has drained.
var errDrained = fmt.Errorf("registry: stopped already; build a new one with New: %w", suture.ErrDoNotRestart)

// Reindex lists the stored buckets again, for the index that lets misses,
// Names, Len and Scan answer without reading the store. New lists them,
// unless Config.Admit is set: a host that lets another registry change the
// store until this one is admitted (one tree at a time serving on a data
// directory, as services.DataDir allows) calls Reindex once it admits this
// one, before the first operation it admits runs. Operations running
// meanwhile are consistent with it: they update the index under the same
// lock, after the store.
func (r *Registry) Reindex() {
	if r.store != nil {
		r.indexStore()
	}
}

// indexStore lists the stored buckets into stored and order; on an error
// it leaves both nil, and misses, Names, Len and Scan read the store.
//
// It first waits for the writes in flight to meet their fate: the store
// lists a bucket only once the write that records it is committed, and a
// registry that shared the store before this one (see Config.Admit) may
// have stopped with its last create still on its way (CreateWith's write,
// which its caller waits for after the claim). Listed before, that bucket
// would be missing from the index once its write succeeds.
func (r *Registry) indexStore() {
	err := r.store.Settle() // outside mu: it waits for the disk
	if err != nil {
		err = fmt.Errorf("a write in flight failed: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.stored, r.order = make(map[string]struct{}), newOrder()
		err = r.store.Buckets(func(name string) error {
			r.indexLocked(name)
			return nil
		})
	}
	if err != nil {
		r.stored, r.order = nil, nil
		r.log.Error("registry: cannot list the stored buckets; misses, Names and Len will read the store", "err", err)
	}
}

// remonitor finds the buckets that ended while a crashed loop held their
// notices, and sends those notices again: every bucket not yet forgotten,
// including those whose name a rename has taken away. A bucket whose
// Created is not published yet is left alone: it has not been started, so
// its end is still to be reported, after its Created.
// It returns the number of live buckets and of those it found ended. It
// clears lost: the notices a crashed loop took with it are found again.
// The caller holds the serving token.
func (r *Registry) remonitor() (live, ended int) {
	r.lost.Store(false)
	r.mu.RLock()
	var found []*bucket.Bucket
	for _, rf := range r.refs {
		if !rf.announced {
			continue
		}
		select {
		case <-rf.b.Done():
			found = append(found, rf.b)
		default:
		}
	}
	live = len(r.names)
	r.mu.RUnlock()
	for _, b := range found {
		r.box.send(notice{b: b, reason: b.Err()})
	}
	return live, len(found)
}

func (r *Registry) handle(batch []notice) {
	for _, n := range batch {
		r.handleOne(n)
	}
}

func (r *Registry) handleOne(n notice) {
	if n.crash {
		panic("registry: crash requested")
	}
	r.forget(n.b, n.reason)
}

// forget removes an ended bucket from both tables and publishes its Exited.
// It is idempotent: refs says whether the end was already handled.
func (r *Registry) forget(b *bucket.Bucket, reason error) {
	id := b.ID()
	r.mu.Lock()
	if _, ok := r.refs[id]; !ok {
		r.mu.Unlock()
		return
	}
	name := b.Name()
	delete(r.refs, id)
	if r.names[name] == b {
		delete(r.names, name)
		if r.store == nil { // with a store, order follows the stored names
			r.order.Delete(scanorder.Of(name))
		}
	}
	// Until its Exited is published, the bucket stays in waiters (with a
	// nil channel if no one waits yet): a Forgotten asked meanwhile waits
	// for the publish rather than finding the bucket forgotten already.
	if _, ok := r.waiters[id]; !ok {
		r.waiters[id] = nil
	}
	// A bucket made under its name meanwhile (nothing holds the name any
	// more) is announced after this Exited: see start.
	r.exiting[name] = id
	r.mu.Unlock()

	// After the Exited, and even if a host's Publisher panics: the
	// bucket is out of the tables, and nothing would close it later.
	defer func() {
		r.mu.Lock()
		gone := r.waiters[id]
		delete(r.waiters, id)
		if r.exiting[name] == id {
			delete(r.exiting, name)
		}
		r.mu.Unlock()
		if gone != nil {
			close(gone)
		}
	}()
	r.ends.add(reason)
	r.events.Publish(events.Exited{Bucket: name, ID: id, Reason: reason})
}

// awaitExiting waits, when the loop is publishing the Exited of a bucket
// that had name (see forget), until that Exited is out, bounded by
// StopTimeout: a new bucket of name is announced after it, so that the
// events of a name stay in order. The loop's publish waits for no one, so
// the wait is short; the bound is for a host's Publisher that blocks.
func (r *Registry) awaitExiting(name string) {
	r.mu.RLock()
	_, ok := r.exiting[name]
	r.mu.RUnlock()
	if !ok {
		return
	}
	r.mu.Lock()
	id, ok := r.exiting[name]
	var gone chan struct{}
	if ok {
		gone = r.waiterLocked(id)
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	timeout := time.NewTimer(r.stopFor)
	defer timeout.Stop()
	select {
	case <-gone:
	case <-timeout.C:
		r.log.Warn("registry: the Exited of a bucket's name was not published in time; its new bucket's Created comes first",
			"bucket", name, "waited", r.stopFor)
	}
}

// awaitForgotten waits until gone (a Forgotten channel) is closed, and
// returns nil; or ctx's error; or ErrStopped once the registry's Serve has
// returned without forgetting it (drain gave up: nothing forgets a bucket
// any more). A forget that happened wins over the stop.
func (r *Registry) awaitForgotten(ctx context.Context, gone <-chan struct{}) error {
	select {
	case <-gone:
		return nil
	case <-r.stopped:
		select {
		case <-gone:
			return nil
		default:
			return ErrStopped
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}
