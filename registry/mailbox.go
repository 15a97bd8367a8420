package registry

import (
	"sync"

	"github.com/kvproject/kv/bucket"
)

// notice is one message to the registry's loop.
type notice struct {
	b      *bucket.Bucket
	reason error
	crash  bool // tests only: the loop panics when it takes this notice
}

// mailbox is the registry's unbounded mailbox. It belongs to the Registry,
// not to one run of its loop, so notices sent while the loop is down (a
// crash being restarted) wait for the next run. Sending never blocks: the
// buckets' termination hooks must not wait for the registry.
type mailbox struct {
	mu    sync.Mutex
	queue []notice
	ready chan struct{} // holds a token while the queue may be non-empty
}

func newMailbox() *mailbox {
	return &mailbox{ready: make(chan struct{}, 1)}
}

func (m *mailbox) send(n notice) {
	m.mu.Lock()
	m.queue = append(m.queue, n)
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

// take removes and returns every waiting notice.
func (m *mailbox) take() []notice {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queue
	m.queue = nil
	return q
}

// empty reports whether no notice waits.
func (m *mailbox) empty() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue) == 0
}
