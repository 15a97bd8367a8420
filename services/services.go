package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/registry"
)

// Config configures a tree. The zero value is ready to use.
type Config struct {
	// Logger receives the tree's logs, suture's events included (unless a
	// host tree replaces the root's event hook with its own, as suture does
	// on Add). Nil discards them.
	Logger *slog.Logger
	// StopTimeout bounds each stage of the stop of kv's own children: the
	// buckets ending, the registry publishing their Exited and waiting for
	// its operations under way. 0 means 10 seconds.
	StopTimeout time.Duration
	// FrontEndStopTimeout bounds the first stage of a stop: waiting for the
	// services added with Root.Add (the front ends) to finish their work in
	// flight. 0 means StopTimeout. A whole stop takes up to
	// FrontEndStopTimeout + 2 × StopTimeout + 1 s ([Root.StopTimeout]); a
	// host tree that adds the root should allow that in its
	// suture.Spec.Timeout, or it gives up on the root and returns while
	// kv still stops.
	FrontEndStopTimeout time.Duration
	// DataDir, when not nil, keeps every bucket on disk (see
	// OpenDataDir); the tree does not close it. Nil keeps buckets in memory
	// only, unless Store is set.
	DataDir *DataDir
	// Store is DataDir's store as the registry uses it, for the daemon,
	// which opens its data directory itself (it needs the store's
	// checkpoints and statistics). Set DataDir or Store, not both.
	Store registry.Store
	// UnloadIdle, with DataDir or Store, takes out of memory each bucket
	// unused (no lookup returned it) for at least UnloadIdle (at most
	// about twice that): its data stays on disk, and its next use loads it again (see
	// registry.Config.UnloadIdle). 0 keeps every bucket in memory until it
	// is deleted. New panics if it is set without DataDir or Store.
	UnloadIdle time.Duration
}

// Root is a kv tree. It is a *suture.Supervisor (embedded), so it can be
// served on its own or added to a host's tree, and more services (network
// front ends) can be added to it with [Root.Add]; they start after the
// registry and stop before it. Like any suture supervisor it is single-use:
// build a new Root for every start.
type Root struct {
	*suture.Supervisor

	events   *events.Manager
	buckets  *bucket.Supervisor
	registry *registry.Registry
	children []suture.Service
	log      *slog.Logger

	frontEndTimeout time.Duration
	stopTimeout     time.Duration // the whole stop's bound (see StopTimeout)
	data            *DataDir      // nil: none, or the daemon's Config.Store
	// The root's hold on data (see hold): taken once, at Serve or at the
	// registry's first use of the store, whichever comes first.
	holdMu      sync.Mutex
	held        bool        // hold has run
	holdRelease func()      // gives data back; nil if refused
	holdErr     error       // why data was refused
	released    atomic.Bool // the root has stopped and given data back
	// stopCause is the host context's error once the root stops on it
	// (see stopInStages and bucketsWithRootCause).
	stopCause atomic.Pointer[error]

	mu     sync.Mutex
	added  []added // by Add: stopped before kv's own children
	ended  bool    // stopAdded or abandonAdded ran: a later Add is never served
	served atomic.Bool
}

// errServedTwice is what a second Serve of a Root returns: like any suture
// supervisor, a root is single-use (its children are gone once it has
// stopped); ErrDoNotRestart tells a host tree not to try again.
var errServedTwice = fmt.Errorf("services: a Root serves once; build a new one with New: %w", suture.ErrDoNotRestart)

// New builds a fresh tree.
func New(cfg Config) *Root {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}

	ev := events.New(events.Options{Logger: log.With("service", "events"), HoldTimeout: 2 * timeout})
	buckets := bucket.NewSupervisor(bucket.SupervisorOptions{
		Logger:  log.With("service", "buckets"),
		Timeout: timeout,
	})
	st := cfg.Store
	if cfg.DataDir != nil {
		if st != nil {
			panic("services: Config.DataDir and Config.Store are both set")
		}
		st = cfg.DataDir.st
	}
	root := &Root{events: ev, buckets: buckets, log: log, data: cfg.DataDir}
	var admit func() error
	if cfg.DataDir != nil {
		admit = root.admit
	}
	reg := registry.New(registry.Config{
		Buckets:     buckets,
		Events:      ev,
		Logger:      log.With("service", "registry"),
		StopTimeout: timeout,
		Store:       st,
		Admit:       admit,
		UnloadIdle:  cfg.UnloadIdle,
	})

	sup := suture.New("kv", suture.Spec{
		// Stopping waits for the registry, which waits for the buckets:
		// leave room for both stages.
		Timeout: 2*timeout + time.Second,
		EventHook: func(e suture.Event) {
			log.Warn("supervisor: "+e.String(), "service", "kv")
		},
	})
	frontEnd := cfg.FrontEndStopTimeout
	if frontEnd <= 0 {
		frontEnd = timeout
	}
	root.Supervisor, root.registry, root.frontEndTimeout = sup, reg, frontEnd
	root.stopTimeout = frontEnd + 2*timeout + time.Second
	// The seed's order: the event manager, the bucket supervisor, then the
	// registry that uses both.
	root.children = []suture.Service{ev, buckets, reg}
	for _, c := range root.children {
		if c == suture.Service(buckets) {
			c = bucketsWithRootCause{buckets, root}
		}
		sup.Add(c)
	}
	// When the tree stops, even while suture holds a registry that keeps
	// crashing back, the registry reports every bucket's end.
	sup.Add(reg.Drainer())
	return root
}

// StopTimeout returns how long a stop of the root may take:
// Config.FrontEndStopTimeout + 2 × Config.StopTimeout + 1 s, with their
// defaults 31 seconds. A host that adds the root to its own tree gives
// that tree at least this suture.Spec.Timeout (suture's default is 10
// seconds), so that its stop waits for kv's.
func (r *Root) StopTimeout() time.Duration { return r.stopTimeout }

// Add adds svc to the root, after kv's own children, and returns its token
// (for Remove or RemoveAndWait; the zero token once the root has begun to
// stop, or was refused its DataDir). When the root stops, the services added
// with Add are stopped first, all at once, and waited for (each up to
// Config.FrontEndStopTimeout), and only then the registry, the buckets and
// the event manager: a front end's commands in flight finish against live
// buckets. (A suture supervisor alone stops all its children at once.)
// Services added through the embedded Supervisor's own Add stop with kv's
// children instead.
//
// A service the root stops before suture ever ran it is closed, if it is
// an io.Closer (kv's front ends are: they close the listener their Config
// gave them), and so is one added once the root has stopped, or was
// refused its DataDir.
//
// suture runs svc inside a wrapper that tells the root when svc has
// stopped (suture's RemoveAndWait leaves a goroutine behind when a
// service stops after its timeout). Services lists svc itself, and a
// supervisor added so gets the root's event hook as usual, but in
// suture's events about svc, Event.Service is the wrapper; the events'
// names are svc's own.
func (r *Root) Add(svc suture.Service) suture.ServiceToken {
	a := &addedService{Service: svc}
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		a.abandon()
		return suture.ServiceToken{}
	}
	// Under mu: a stop's takeAdded, which waits for it, finds svc among
	// the added, so suture never runs it past the front ends' stage.
	// (suture's Add does not wait long: its supervisor is running, as
	// the stop has not begun, or it has ended and refuses at once.)
	tok := r.Supervisor.Add(a)
	r.added = append(r.added, added{tok, a})
	r.mu.Unlock()
	return tok
}

// added is a service added with Root.Add, as the root stops it.
type added struct {
	tok suture.ServiceToken
	svc *addedService
}

// addedService runs a service added with Root.Add, and tells the root when
// it has stopped: suture's RemoveAndWait, given a timeout, leaves a
// goroutine blocked for ever if the service stops after it (it sends the
// news on a channel no one reads any more).
type addedService struct {
	suture.Service
	mu      sync.Mutex
	running int           // Serve calls under way
	ran     bool          // a Serve call has run it, or it was closed unserved
	removed bool          // the root stops it: no new Serve call runs it
	idle    chan struct{} // closed once removed and no call is under way
}

// Serve runs the service, unless the root has removed it.
func (a *addedService) Serve(ctx context.Context) error {
	a.mu.Lock()
	if a.removed {
		a.mu.Unlock()
		return suture.ErrDoNotRestart
	}
	a.running++
	a.ran = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.running--; a.running == 0 && a.idle != nil {
			close(a.idle)
			a.idle = nil
		}
		a.mu.Unlock()
	}()
	return a.Service.Serve(ctx)
}

// GetSupervisor returns the service's supervisor, if it is or holds one
// (suture.HasSupervisor), so that suture gives it the root's event hook
// as it would the service itself.
func (a *addedService) GetSupervisor() *suture.Supervisor {
	if hs, ok := a.Service.(suture.HasSupervisor); ok {
		return hs.GetSupervisor()
	}
	return nil
}

// Services returns the root's services, as the embedded Supervisor's
// Services does, with those added by Add as the host gave them.
func (r *Root) Services() []suture.Service {
	svcs := r.Supervisor.Services()
	for i, svc := range svcs {
		if a, ok := svc.(*addedService); ok {
			svcs[i] = a.Service
		}
	}
	return svcs
}

// String names the service by its own String, or else by its type.
func (a *addedService) String() string {
	if s, ok := a.Service.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", a.Service)
}

// remove marks the service removed and returns a channel closed once no
// Serve call runs it any more.
func (a *addedService) remove() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removed = true
	idle := make(chan struct{})
	if a.running == 0 {
		close(idle)
	} else {
		a.idle = idle
	}
	return idle
}

// abandon removes a service the root will never run, and closes it (see
// closeUnserved).
func (a *addedService) abandon() {
	a.remove()
	a.closeUnserved()
}

// closeUnserved closes a removed service that never ran, if it is an
// io.Closer: a front end then closes the listener its host opened for it,
// which its Serve would have closed.
func (a *addedService) closeUnserved() {
	a.mu.Lock()
	unserved := a.removed && !a.ran
	a.ran = true
	a.mu.Unlock()
	if c, ok := a.Service.(io.Closer); ok && unserved {
		_ = c.Close()
	}
}

// Serve runs the tree until ctx ends, then stops it in two stages: the
// services added with Add, then kv's own children (within StopTimeout).
// It returns what the embedded supervisor's Serve returns, but ctx's own
// error when ctx stopped it (context.DeadlineExceeded, say, where the
// supervisor says context.Canceled); an error wrapping ErrDataDirInUse,
// at once, when another tree held its DataDir as this root first asked for
// it (at Serve, or at its registry's first use of the store: the refusal
// is final, build a new root to try again); and an error wrapping
// suture.ErrDoNotRestart when the root has served already (a root serves
// once). A host tree that adds the root calls it.
func (r *Root) Serve(ctx context.Context) error {
	if !r.served.CompareAndSwap(false, true) {
		return errServedTwice
	}
	release, err := r.hold()
	if err != nil {
		r.refuse()
		return err
	}
	defer release()
	inner, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return r.stopInStages(ctx, cancel, r.Supervisor.ServeBackground(inner))
}

// ServeBackground serves the root in a goroutine, as Serve does, and
// returns the channel that gets Serve's result. As suture's, it returns
// once the supervisor runs: Add, Remove and RemoveAndWait work at once.
func (r *Root) ServeBackground(ctx context.Context) <-chan error {
	errc := make(chan error, 1)
	if !r.served.CompareAndSwap(false, true) {
		errc <- errServedTwice
		return errc
	}
	release, err := r.hold()
	if err != nil {
		r.refuse()
		errc <- err
		return errc
	}
	inner, cancel := context.WithCancel(context.WithoutCancel(ctx))
	running := r.Supervisor.ServeBackground(inner)
	go func() {
		err := r.stopInStages(ctx, cancel, running)
		release() // before the result: a tree that waits for it may start on the DataDir
		errc <- err
	}()
	return errc
}

// hold takes the root's DataDir, if it has one, for as long as the root
// serves, once: at its Serve, or at its registry's first use of the store
// if that comes first (a host that adds the root to its own tree may use
// the registry as soon as its tree runs, before suture has called the
// root's Serve). It returns the same result every time. The registry lists
// the stored buckets then, not at New (see registry.Config.Admit): until
// the root holds the DataDir, another tree may create, delete or rename
// buckets in it.
func (r *Root) hold() (release func(), err error) {
	if r.data == nil {
		return func() {}, nil
	}
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	if r.held {
		return r.holdRelease, r.holdErr
	}
	r.held = true
	giveBack, err := r.data.claim()
	if err != nil {
		r.holdErr = err
		return nil, err
	}
	r.registry.Reindex()
	r.holdRelease = func() {
		r.released.Store(true)
		giveBack()
	}
	return r.holdRelease, nil
}

// refuse ends a root that will never serve (it was refused its DataDir):
// it closes the front ends it never ran, and ends the subscriptions made
// before Serve, which nothing else would ever close: its registry, which
// held the event manager from New, drains (it never ran, so it has no
// bucket) and releases its hold, and the event manager, never served,
// stops at once.
func (r *Root) refuse() {
	r.abandonAdded()
	r.registry.Drain()
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	_ = r.events.Serve(stopped)
}

// admit is the registry's Config.Admit for a root with a DataDir: the
// registry uses the store only while the root holds it, which its first
// use makes it take if Serve has not yet. A root refused it (another
// tree serves on it) refuses every store operation.
func (r *Root) admit() error {
	if r.released.Load() {
		// Stopped: its registry has drained and refuses with ErrStopped,
		// unless suture never ran it (a panic it did not get over).
		return fmt.Errorf("services: the tree has stopped serving on %s: %w", r.data.Dir(), registry.ErrStopped)
	}
	_, err := r.hold()
	return err
}

// stopInStages waits for ctx to end, or for the embedded supervisor (run
// on inner, which cancel ends) to end on its own; on ctx's end it stops the
// services added with Add, then the rest, with ctx's error recorded as the
// stop's cause first: a bucket then ends with context.DeadlineExceeded when
// the host's deadline stopped the tree, not with the context.Canceled of
// inner (see bucketsWithRootCause).
func (r *Root) stopInStages(ctx context.Context, cancel context.CancelFunc, running <-chan error) error {
	defer cancel()
	select {
	case err := <-running: // ended on its own
		// The added services that ran stopped with it; those that never
		// ran, and any added from now on, are closed.
		r.abandonAdded()
		return err
	case <-ctx.Done():
	}
	r.stopAdded()
	cause := ctx.Err()
	r.stopCause.Store(&cause) // before inner ends: see bucketsWithRootCause
	cancel()
	err := <-running
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = ctx.Err() // as if the host's context had stopped it
	}
	return err
}

// stopAdded removes every service added with Add, all at once, and waits
// for them.
func (r *Root) stopAdded() {
	var wg sync.WaitGroup
	for _, a := range r.takeAdded() {
		wg.Go(func() {
			stopped := a.svc.remove()
			a.svc.closeUnserved()
			// A service the host removed already is no error.
			_ = r.Supervisor.Remove(a.tok)
			t := time.NewTimer(r.frontEndTimeout)
			defer t.Stop()
			select {
			case <-stopped:
			case <-t.C:
				r.log.Error("a service added to the root did not stop in time", "service", a.svc.String(), "waited", r.frontEndTimeout)
			}
		})
	}
	wg.Wait()
}

// abandonAdded closes the services added with Add that never ran, when the
// root will never run them: it refused to serve (its DataDir is in use),
// or its supervisor ended on its own. A front end then closes the listener
// its host opened for it.
func (r *Root) abandonAdded() {
	for _, a := range r.takeAdded() {
		a.svc.abandon()
	}
}

// takeAdded returns the services added with Add, and ends the list: a
// service added from now on is abandoned at once (see Add).
func (r *Root) takeAdded() []added {
	r.mu.Lock()
	defer r.mu.Unlock()
	added := r.added
	r.added = nil
	r.ended = true
	return added
}

// Children returns kv's own children of the root, in the order they were
// added and start: the event manager, the bucket supervisor, the registry.
// (The root also runs the registry's Drainer after them, which does
// nothing until the tree stops: see registry.Registry.Drain.)
func (r *Root) Children() []suture.Service {
	return append([]suture.Service(nil), r.children...)
}

// Registry returns the tree's registry: create, look up and delete buckets.
func (r *Root) Registry() *registry.Registry { return r.registry }

// Events returns the tree's event manager: subscribe to Created and Exited.
func (r *Root) Events() *events.Manager { return r.events }

// Buckets returns the tree's bucket supervisor.
func (r *Root) Buckets() *bucket.Supervisor { return r.buckets }

// bucketsWithRootCause serves the bucket supervisor on a context of its
// own that ends with the root's stop cause (the host context's error, say
// context.DeadlineExceeded), which the supervisor gives every bucket as
// its end. The context suture gives the supervisor does not carry that
// cause reliably: suture cancels it on its own (cause context.Canceled) as
// soon as its parent's Done is closed, which races with the parent's
// cancel handing its cause down to it.
type bucketsWithRootCause struct {
	*bucket.Supervisor
	root *Root
}

func (b bucketsWithRootCause) Serve(ctx context.Context) error {
	own, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() {
		if c := b.root.stopCause.Load(); c != nil {
			cancel(*c)
			return
		}
		cancel(context.Cause(ctx))
	})
	defer stop()
	return b.Supervisor.Serve(own)
}
