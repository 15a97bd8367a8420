package bucket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thejerf/suture/v4"
)

// errTemporary ends every bucket child for good: suture removes a service
// whose Serve returns an error wrapping ErrDoNotRestart.
var errTemporary = fmt.Errorf("bucket ended (temporary child): %w", suture.ErrDoNotRestart)

// SupervisorOptions configures a [Supervisor]. The zero value is ready to
// use.
type SupervisorOptions struct {
	// Logger receives suture's events for the bucket supervisor (a bucket
	// that would not stop in time). Nil discards them.
	Logger *slog.Logger
	// Timeout is how long stopping waits for the buckets to end; 0 means
	// 10 seconds (suture's default).
	Timeout time.Duration
}

// Supervisor is the bucket supervisor (KV.Bucket.Supervisor with
// :simple_one_for_one and restart: :temporary). It is a suture.Service; each
// Serve runs a fresh suture supervisor, since a suture supervisor cannot be
// served twice. Create one with [NewSupervisor].
type Supervisor struct {
	opts SupervisorOptions

	mu  sync.RWMutex
	cur *suture.Supervisor // where Start adds buckets; nil while not running
	// stopReason is the context's error of the Serve whose stop made cur
	// nil (nil before any stop): Start's refusal wraps it, so that a
	// bucket refused during or after a stop ends, as the others, with
	// the stop's reason. Under mu.
	stopReason error

	running atomic.Int64 // live bucket children

	// While Serve ends its buckets (endAll), each child that ends counts
	// itself in ended and signals progress.
	ending   atomic.Bool
	ended    atomic.Int64
	progress chan struct{} // buffered: one signal stands for any number
}

// NewSupervisor returns a bucket supervisor. Buckets started before it is
// served wait and start with it.
func NewSupervisor(opts SupervisorOptions) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second // suture's default, for endAll too
	}
	s := &Supervisor{opts: opts, progress: make(chan struct{}, 1)}
	s.cur = s.newTree()
	return s
}

func (s *Supervisor) newTree() *suture.Supervisor {
	log := s.opts.Logger
	return suture.New("kv buckets", suture.Spec{
		Timeout: s.opts.Timeout,
		// Logging only: temporary children produce no suture events, and
		// the hook runs on the supervisor's goroutine, so it must not block,
		// nor panic: the tree runs on a goroutine of its own (see Serve),
		// where a panic (a host's log handler) would end the process.
		EventHook: func(e suture.Event) {
			defer func() { _ = recover() }()
			log.Warn("bucket supervisor: " + e.String())
		},
	})
}

// String names the service in suture's logs.
func (s *Supervisor) String() string { return "kv bucket supervisor" }

// Serve runs the supervisor until ctx ends. Stopping ends every bucket (with
// the context's error as reason) and returns once each end has been reported,
// or, with end hooks that do not return, after at most twice Timeout (one
// for ending the buckets, one for suture's stop of what is left).
func (s *Supervisor) Serve(ctx context.Context) error {
	s.mu.Lock()
	tree := s.cur
	if tree == nil {
		tree = s.newTree()
		s.cur = tree
	}
	s.stopReason = nil
	s.mu.Unlock()
	defer func() {
		// Whatever ends this Serve, its tree is not served again: a
		// suture supervisor cannot be (a next Serve makes a new one).
		s.mu.Lock()
		if s.cur == tree {
			s.cur = nil
		}
		s.mu.Unlock()
	}()

	// The tree runs under a context of its own, ended once the buckets
	// have been (endAll).
	treeCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	errc := tree.ServeBackground(treeCtx)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		s.mu.Lock()
		s.cur = nil // Start refuses from now on
		reason := endReason(ctx)
		s.stopReason = reason
		s.mu.Unlock()
		s.endAll(tree, reason)
		cancel()
		err = <-errc
	}
	return err
}

// endBatch is how many buckets endAll ends at a time.
const endBatch = 256

// endAll ends every bucket of tree with reason, endBatch at a time, each
// batch once the one before it has ended, before suture stops the tree.
//
// Why not leave it to suture: its stop starts a goroutine per service that
// cancels the service's context, and each cancel takes the mutex of the
// supervisor's context, which the supervisor's own cancel holds while it
// wakes every service: with 300,000 buckets, hundreds of thousands of
// goroutines queued on one mutex, each woken in turn (a trace of bare
// suture: 99.9% of their blocked time there). Ended a batch at a time,
// each bucket's cancel meets a free mutex, and suture's stop finds the
// contexts cancelled already. Out of time (the supervisor's Timeout),
// endAll ends the rest without waiting for the batches: every bucket
// ends with reason, none by suture's cancel. A bucket whose lock is held
// (an Update whose write waits on a stalled disk) is ended by a goroutine
// of its own, as suture would, so that it holds back neither the others
// nor the stop.
func (s *Supervisor) endAll(tree *suture.Supervisor, reason error) {
	timer := time.NewTimer(s.opts.Timeout)
	defer timer.Stop()
	s.ended.Store(0)
	s.ending.Store(true)
	defer s.ending.Store(false)
	children := tree.Services()
	stopped := int64(0) // buckets this call ended
	wait := true        // for the batches, until the Timeout
	for start := 0; start < len(children); start += endBatch {
		for _, svc := range children[start:min(start+endBatch, len(children))] {
			c, ok := svc.(*child)
			if !ok {
				continue
			}
			switch ended, free := c.b.tryStop(reason); {
			case !free:
				go c.b.Stop(reason)
			case ended:
				stopped++
			}
		}
		// The batch before this one has ended (a bucket that ended
		// on its own meanwhile counts too: the wait ends sooner).
		for wait && s.ended.Load() < stopped-endBatch {
			select {
			case <-s.progress:
			case <-timer.C:
				wait = false
			}
		}
	}
}

// Running returns how many buckets are running under the supervisor.
func (s *Supervisor) Running() int { return int(s.running.Load()) }

// Start adds b as a temporary child and arranges for onEnd to be called
// exactly once, on the bucket's goroutine, when b ends, whatever the cause: a
// Stop, a crash, or the supervisor stopping. This is the supervisor's
// termination hook, the Go form of Process.monitor and its :DOWN message.
// onEnd must not block for long. Start returns ErrSupervisorStopped, without
// starting b or calling onEnd, once the supervisor has stopped (from the
// moment its Serve's context ends, wrapped with that context's error: the
// caller that ends b itself ends it as the stop ended the others); before its
// first Serve, b waits and starts with it. A bucket runs once: Start
// refuses, with an error and without calling onEnd, a nil onEnd and a
// bucket it has already taken (even one that has since ended).
func (s *Supervisor) Start(b *Bucket, onEnd func(b *Bucket, reason error)) error {
	if onEnd == nil {
		return errNilOnEnd
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur == nil {
		if s.stopReason != nil {
			return fmt.Errorf("%w: %w", ErrSupervisorStopped, s.stopReason)
		}
		return ErrSupervisorStopped
	}
	if !b.take() {
		return fmt.Errorf("bucket %q (instance %d): %w", b.name, b.id, errStartedTwice)
	}
	c := &child{b: b, onEnd: onEnd, sup: s}
	if tok := s.cur.Add(c); tok == (suture.ServiceToken{}) {
		return ErrSupervisorStopped
	}
	return nil
}

var (
	errNilOnEnd     = errors.New("bucket: Start needs an onEnd function")
	errStartedTwice = errors.New("bucket: started already")
)

// take marks b as started, and reports whether it was not already.
func (b *Bucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return false
	}
	b.started = true
	return true
}

// child is one bucket as suture sees it.
type child struct {
	b      *Bucket
	onEnd  func(*Bucket, error)
	sup    *Supervisor
	served atomic.Bool
}

// String returns the bucket's name (no allocation: suture calls it on
// every Add).
func (c *child) String() string { return c.b.name }

// Serve is the termination hook: whatever ends the bucket (ctx, Stop, a
// panic in its goroutine), onEnd hears of it once, and the error returned
// keeps suture from restarting it.
func (c *child) Serve(ctx context.Context) error {
	if c.served.Swap(true) {
		return errTemporary // never run a bucket twice
	}
	c.sup.running.Add(1)
	reason := c.serve(ctx)
	c.sup.running.Add(-1)
	c.onEnd(c.b, reason)
	if c.sup.ending.Load() {
		c.sup.ended.Add(1)
		select {
		case c.sup.progress <- struct{}{}:
		default:
		}
	}
	return errTemporary
}

func (c *child) serve(ctx context.Context) (reason error) {
	defer func() {
		if r := recover(); r != nil {
			perr := &PanicError{Value: r, Stack: debug.Stack()}
			c.b.Stop(perr)
			reason = c.b.Err()
		}
	}()
	return c.b.run(ctx)
}
