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

	running atomic.Int64 // live bucket children
}

// NewSupervisor returns a bucket supervisor. Buckets started before it is
// served wait and start with it.
func NewSupervisor(opts SupervisorOptions) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{opts: opts}
	s.cur = s.newTree()
	return s
}

func (s *Supervisor) newTree() *suture.Supervisor {
	log := s.opts.Logger
	return suture.New("kv buckets", suture.Spec{
		Timeout: s.opts.Timeout,
		// Logging only: temporary children produce no suture events, and
		// the hook runs on the supervisor's goroutine, so it must not block.
		EventHook: func(e suture.Event) {
			log.Warn("bucket supervisor: " + e.String())
		},
	})
}

// String names the service in suture's logs.
func (s *Supervisor) String() string { return "kv bucket supervisor" }

// Serve runs the supervisor until ctx ends. Stopping ends every bucket (with
// the context's error as reason) and returns once each end has been reported,
// or after Timeout.
func (s *Supervisor) Serve(ctx context.Context) error {
	s.mu.Lock()
	tree := s.cur
	if tree == nil {
		tree = s.newTree()
		s.cur = tree
	}
	s.mu.Unlock()

	err := tree.Serve(ctx)

	s.mu.Lock()
	s.cur = nil
	s.mu.Unlock()
	return err
}

// Running returns how many buckets are running under the supervisor.
func (s *Supervisor) Running() int { return int(s.running.Load()) }

// Start adds b as a temporary child and arranges for onEnd to be called
// exactly once, on the bucket's goroutine, when b ends, whatever the cause: a
// Stop, a crash, or the supervisor stopping. This is the supervisor's
// termination hook, the Go form of Process.monitor and its :DOWN message.
// onEnd must not block for long. Start returns ErrSupervisorStopped, without
// starting b or calling onEnd, once the supervisor has stopped; before its
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
		return ErrSupervisorStopped
	}
	if !b.take() {
		return fmt.Errorf("bucket %q (instance %d): %w", b.name, b.id, errStartedTwice)
	}
	c := &child{b: b, onEnd: onEnd, running: &s.running}
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
	b       *Bucket
	onEnd   func(*Bucket, error)
	running *atomic.Int64
	served  atomic.Bool
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
	c.running.Add(1)
	reason := c.serve(ctx)
	c.running.Add(-1)
	c.onEnd(c.b, reason)
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
