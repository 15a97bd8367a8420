package store

import "sync"

// Faults injects I/O errors below the storage engine, for tests. The zero
// value injects nothing; give a *Faults to [Open] through Options.Faults,
// then switch errors on and off while the store runs. All methods are safe
// for concurrent use.
type Faults struct {
	mu       sync.Mutex
	writeErr error
	syncErr  error
	stalled  chan struct{} // not nil: writes and syncs wait until it is closed
}

// Stall makes every later file write and sync wait (a hung disk) until
// resume is called; then they fail or succeed as the injected errors say
// at that moment. Calling resume more than once has no further effect.
func (f *Faults) Stall() (resume func()) {
	c := make(chan struct{})
	f.mu.Lock()
	f.stalled = c
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.stalled == c {
				f.stalled = nil
			}
			f.mu.Unlock()
			close(c)
		})
	}
}

// wait returns once no stall holds writes.
func (f *Faults) wait() {
	if f == nil {
		return
	}
	f.mu.Lock()
	c := f.stalled
	f.mu.Unlock()
	if c != nil {
		<-c
	}
}

// FailWrites makes every later file write, and the creation of new files,
// fail with err (for a full disk, syscall.ENOSPC), until cleared with nil.
func (f *Faults) FailWrites(err error) {
	f.mu.Lock()
	f.writeErr = err
	f.mu.Unlock()
}

// FailSyncs makes every later file sync fail with err, until cleared with
// nil. Writes still reach the file (the OS page cache), as when a disk
// reports an error on fsync.
func (f *Faults) FailSyncs(err error) {
	f.mu.Lock()
	f.syncErr = err
	f.mu.Unlock()
}

// Clear stops injecting errors.
func (f *Faults) Clear() {
	f.mu.Lock()
	f.writeErr, f.syncErr = nil, nil
	f.mu.Unlock()
}

func (f *Faults) errs() (write, sync error) {
	if f == nil {
		return nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writeErr, f.syncErr
}
