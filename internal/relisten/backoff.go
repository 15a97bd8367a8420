package relisten

import (
	"context"
	"errors"
	"net"
	"time"
)

// Backoff paces an accept loop through the failures that pass: out of
// file descriptors (EMFILE, ENFILE), an interrupted call, a timeout. Its
// zero value is ready to use; one loop uses it.
//
// Such a failure must not end the front end: suture would restart it, and
// the restart closes every client it serves, the very clients that hold
// the descriptors. As net/http's Server does, the loop waits (5 ms,
// doubling up to 1 s) and accepts again.
type Backoff struct{ delay time.Duration }

// Wait reports whether err, returned by Accept, is one that passes. If it
// is, Wait waits before the next Accept and returns true with the time it
// waited, or returns false as soon as ctx ends. If it is not (the listener
// is closed or broken), it returns false at once.
func (b *Backoff) Wait(ctx context.Context, err error) (retry bool, waited time.Duration) {
	if !Passes(err) {
		return false, 0
	}
	b.delay = min(max(2*b.delay, 5*time.Millisecond), time.Second)
	t := time.NewTimer(b.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true, b.delay
	case <-ctx.Done():
		return false, 0
	}
}

// Reset starts the pacing afresh, after an Accept succeeds.
func (b *Backoff) Reset() { b.delay = 0 }

// Passes reports whether err, returned by Accept, is a failure that
// passes (see Backoff), not a closed or broken listener.
func Passes(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// What net/http's Server waits out: a Temporary error (syscall.Errno
	// says so of EINTR, EMFILE, ENFILE and its timeouts; Go's accept
	// retries an aborted connection itself).
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
