package registry

import "github.com/kvproject/kv/bucket"

// monitor is the termination hook given to the bucket supervisor: the
// :DOWN message. It runs on the ending bucket's goroutine and never blocks
// for long: it leaves the notice in the mailbox, for the loop; and while
// no loop runs because its Serve crashed (suture restarts a crashed Serve
// at once, but holds back for FailureBackoff, 15 seconds by default, one
// that crashes too often), it does the loop's work itself (standIn), so
// that a Delete, or a write following a crashed bucket's name, does not
// wait for suture.
func (r *Registry) monitor(b *bucket.Bucket, reason error) {
	r.box.send(notice{b: b, reason: reason})
	if r.down.Load() {
		r.standIn()
	}
}

// standIn takes and handles the mailbox's notices in the crashed loop's
// stead, while the serving token is free and no Serve has run since the
// crash. It does not wait for the token: whoever holds it (a Serve, a
// drain, another standIn) takes the notices sent before it gives the
// token back, and a standIn looks at the mailbox again once it has given
// it back. A notice whose handling panics is logged and skipped (see
// handleStopping), as in a drain. After a drain it does nothing: no bucket
// is forgotten any more then.
func (r *Registry) standIn() {
	for r.down.Load() {
		select {
		case r.serving <- struct{}{}:
		default:
			return
		}
		if !r.down.Load() || r.isDrained() {
			r.leaveLoop()
			return
		}
		if r.lost.Load() {
			r.remonitor() // the notices a crashed loop took with it
		}
		for batch := r.box.take(); len(batch) > 0; {
			batch = r.handleStopping(batch)
		}
		r.leaveLoop()
		if r.box.empty() {
			return
		}
	}
}
