package registry

import "github.com/kvproject/kv/bucket"

// Forgotten returns a channel that is closed once the registry has forgotten
// b (its name no longer leads to b, and its Exited is published). It is
// already closed when b was never registered or is forgotten already. A
// writer that finds an ended bucket under a name waits on it before calling
// Create again, so that Create does not hand back the same ended bucket.
func (r *Registry) Forgotten(b *bucket.Bucket) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := b.ID()
	if _, ok := r.refs[id]; !ok {
		c := make(chan struct{})
		close(c)
		return c
	}
	gone := r.waiters[id]
	if gone == nil {
		gone = make(chan struct{})
		r.waiters[id] = gone
	}
	return gone
}
