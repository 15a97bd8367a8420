package registry

import (
	"sync/atomic"

	"github.com/kvproject/kv/bucket"
)

// EndCounts counts the buckets that have ended, by the kind of their end
// (bucket.EndKind of the reason their Exited carries).
type EndCounts struct {
	Normal   uint64 // stopped with a nil reason: deleted, flushed, renamed away
	Error    uint64 // stopped with an error
	Panic    uint64 // crashed
	Shutdown uint64 // stopped with the tree
	Idle     uint64 // taken out of memory, unused (Config.UnloadIdle)
}

// endCounters is EndCounts as the registry counts it.
type endCounters struct {
	normal, err, panic, shutdown, idle atomic.Uint64
}

func (c *endCounters) add(reason error) {
	switch bucket.EndKind(reason) {
	case bucket.EndNormal:
		c.normal.Add(1)
	case bucket.EndPanic:
		c.panic.Add(1)
	case bucket.EndShutdown:
		c.shutdown.Add(1)
	case bucket.EndIdle:
		c.idle.Add(1)
	default:
		c.err.Add(1)
	}
}

// Ends returns how many buckets have ended since New, by kind. Each end is
// counted once, as the registry forgets the bucket, just before its Exited
// is published: unlike a count kept by an event subscriber, it loses none
// when subscribers fall behind, and it survives a restart of the registry
// after a crash.
func (r *Registry) Ends() EndCounts {
	c := &r.ends
	return EndCounts{
		Normal:   c.normal.Load(),
		Error:    c.err.Load(),
		Panic:    c.panic.Load(),
		Shutdown: c.shutdown.Load(),
		Idle:     c.idle.Load(),
	}
}
