package registry

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// Drain does a stopping Serve's work when suture may not run Serve again:
// a Serve that panicked more often than its supervisor's FailureThreshold
// allows is held back for FailureBackoff (15 seconds, plus suture's
// jitter, by default), and a supervisor that stops meanwhile never runs
// it again. Then nothing would forget the buckets as the stopping bucket
// supervisor ends them: their Exited would be lost, waits for them would
// end only with StopTimeout, and the event manager would wait for the
// registry's hold. The service [Registry.Drainer] returns calls Drain when
// its tree stops; a host wires it so rather than call Drain itself.
//
// If a Serve is running, Drain waits until it has drained. If none is,
// Drain drains in its stead (finding first, as a restarted Serve does, the
// buckets whose end notices a crashed Serve took with it): it stops
// creating, publishes the Exited of every bucket as its end notice
// arrives, waits for the operations under way, releases the hold on the
// event manager, within StopTimeout, and returns. Calling it again, or
// after Serve has drained, returns at once. Never call it while the tree
// runs: a drained registry creates nothing more.
func (r *Registry) Drain() {
	if !r.takeLoop() {
		return
	}
	defer r.leaveLoop()
	if r.runs.Load() > 0 {
		live, ended := r.remonitor()
		r.log.Warn("registry: stopping while suture holds back its crashed Serve; draining in its stead",
			"buckets", live, "ended_while_down", ended)
	}
	r.drain()
}

// takeLoop takes the serving token, which Serve and Drain (and the end
// hooks while a crashed Serve is down, see monitor) hold while they take
// the mailbox's notices, waiting for the one that holds it; it reports
// false, holding nothing, once the registry has drained.
func (r *Registry) takeLoop() bool {
	select {
	case r.serving <- struct{}{}:
	case <-r.stopped:
		return false
	}
	if r.isDrained() { // both were ready
		r.leaveLoop()
		return false
	}
	return true
}

// leaveLoop gives the serving token back.
func (r *Registry) leaveLoop() { <-r.serving }

// Drainer returns a service for the supervisor that runs the registry: it
// waits for its context to end, calls [Registry.Drain] and returns. Added
// beside the registry (services.New adds it after it), it has the registry
// drain whenever that supervisor stops, whether its host stopped it or it
// ended on its own, even while suture holds the registry's Serve back.
func (r *Registry) Drainer() *Drainer { return &Drainer{r: r} }

// Drainer is the service [Registry.Drainer] returns.
type Drainer struct{ r *Registry }

// Serve waits for ctx to end, then drains the registry (see
// [Registry.Drain]) and returns ctx's error.
func (d *Drainer) Serve(ctx context.Context) error {
	<-ctx.Done()
	d.r.Drain()
	return ctx.Err()
}

// String names the service in suture's logs.
func (d *Drainer) String() string { return "kv registry drainer" }

// isDrained reports whether a stop's drain is over (see stopped).
func (r *Registry) isDrained() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.drainedLocked()
}

// drainedLocked reports whether a stop's drain is over (see stopped).
// The caller holds r.mu.
func (r *Registry) drainedLocked() bool {
	select {
	case <-r.stopped:
		return true
	default:
		return false
	}
}

// markDrainedLocked closes stopped, once. The caller holds r.mu.
func (r *Registry) markDrainedLocked() {
	if !r.drainedLocked() {
		close(r.stopped)
	}
}

// drain is the stop's work, for Serve or Drain. It does not panic: a
// notice whose handling panics is logged and skipped (no one would
// restart the loop now, and the event manager must still get the Exited
// of the others before the hold is released).
func (r *Registry) drain() {
	defer r.release()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()

	timeout := time.NewTimer(r.stopFor)
	defer timeout.Stop()
	for {
		// Every bucket's end is reported, and every load, create, delete,
		// rename (a claim) or flush that began before the stop has
		// finished: once Serve returns, another tree may serve on the
		// store, and nothing of this one's may still write to it (a
		// create that the stop refused undoes its write, for one). None
		// begins once closed is set (see claim and FlushAll), so those
		// waited for are finite, however often callers keep trying.
		r.mu.Lock()
		left := len(r.refs)
		var claim chan struct{}
		for _, c := range r.claims {
			claim = c
			break
		}
		if claim == nil {
			claim = r.flushing
		}
		if left == 0 && claim == nil {
			r.mu.Unlock()
			// The writes queued before are committed now, not when their
			// callers wait: a DEL's drop (DeleteNoWait) and a field's
			// write whose clients have not been answered yet. A tree that
			// serves on the store next then finds them done.
			// Within StopTimeout, as the rest of the stop: a hung disk
			// does not hold Serve for ever (the Settle goes on, and
			// the next tree's first read settles the store again).
			if r.store != nil {
				settled := make(chan error, 1)
				go func() { settled <- r.store.Settle() }()
				select {
				case err := <-settled:
					if err != nil {
						r.log.Error("registry: writes made before the stop failed", "err", err)
					}
				case <-timeout.C:
					r.log.Error("registry: writes made before the stop did not reach the disk in time",
						"waited", r.stopFor)
				}
			}
			r.mu.Lock()
			r.markDrainedLocked()
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		select {
		case <-r.box.ready:
			for batch := r.box.take(); len(batch) > 0; {
				batch = r.handleStopping(batch)
			}
		case <-claim: // nil while none: never ready
		case <-timeout.C:
			r.log.Error("registry: buckets did not report their end in time, or operations on them did not finish",
				"buckets", left, "operations", claim != nil, "waited", r.stopFor)
			r.mu.Lock()
			r.markDrainedLocked() // those under way go on (none began after closed)
			r.mu.Unlock()
			return
		}
	}
}

// handleStopping handles batch until a notice's handling panics, and then
// returns the notices after it: for a drain, or an end hook standing in
// for a crashed loop, which no supervisor would restart.
func (r *Registry) handleStopping(batch []notice) (rest []notice) {
	i := 0
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("registry: panic while handling an end notice in the loop's stead; the notice is skipped", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			rest = batch[i+1:]
		}
	}()
	for ; i < len(batch); i++ {
		r.handleOne(batch[i])
	}
	return nil
}
