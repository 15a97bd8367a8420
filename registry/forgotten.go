package registry

import (
	"context"

	"github.com/kvproject/kv/bucket"
)

// Forgotten returns a channel that is closed once the registry has forgotten
// b (its name no longer leads to b, and its Exited is published). It is
// already closed when b was never registered or is forgotten already. A
// writer that finds an ended bucket under a name waits on it before calling
// Create again, so that Create does not hand back the same ended bucket.
func (r *Registry) Forgotten(b *bucket.Bucket) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forgottenLocked(b)
}

// forgottenLocked is Forgotten for a caller that holds r.mu.
func (r *Registry) forgottenLocked(b *bucket.Bucket) <-chan struct{} {
	id := b.ID()
	_, publishing := r.waiters[id]
	if _, ok := r.refs[id]; !ok && !publishing {
		c := make(chan struct{})
		close(c)
		return c
	}
	// Registered, or out of the tables with its Exited being published
	// (see forget).
	return r.waiterLocked(id)
}

// waiterLocked returns the channel that forget closes once the bucket
// with ID id, registered or with its Exited being published, is
// forgotten, and makes it if no one waits yet. The caller holds r.mu.
func (r *Registry) waiterLocked(id uint64) chan struct{} {
	gone := r.waiters[id]
	if gone == nil {
		gone = make(chan struct{})
		r.waiters[id] = gone
	}
	return gone
}

// WaitForgotten waits until the registry has forgotten b, as Forgotten
// does, and returns nil; or ctx's error if it ends first; or an error
// wrapping ErrStopped if the registry has stopped without forgetting b
// (its stop gave up waiting for b's end): nothing will forget it any more.
func (r *Registry) WaitForgotten(ctx context.Context, b *bucket.Bucket) error {
	return r.awaitForgotten(ctx, r.Forgotten(b))
}
