package registry

import (
	"sync"
	"time"
)

// logLimit lets a repeated failure through to the log at most once per
// interval, so that a store that fails every load (a full disk, for a
// while) does not log one line per lookup. The lines it holds back are
// counted in the next one it lets through.
type logLimit struct {
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	next    time.Time
	dropped int
}

func newLogLimit(every time.Duration) *logLimit {
	return &logLimit{every: every, now: time.Now}
}

// allow reports whether a line may be logged now and, if so, how many were
// held back since the last one.
func (l *logLimit) allow() (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Before(l.next) {
		l.dropped++
		return false, 0
	}
	l.next = now.Add(l.every)
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}
