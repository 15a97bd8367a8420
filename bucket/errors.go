package bucket

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned by Get, AppendValue, Delete and their Tx
	// forms when the key is absent.
	ErrNotFound = errors.New("bucket: key not found")

	// ErrEnded is returned by every operation on a bucket that has ended
	// (stopped, crashed or cancelled). [Bucket.Err] says why it ended.
	ErrEnded = errors.New("bucket: bucket has ended")

	// ErrReadOnly is returned by Tx.Put and Tx.Delete inside View.
	ErrReadOnly = errors.New("bucket: write in a read-only transaction")

	// ErrSupervisorStopped is returned by Supervisor.Start when the
	// supervisor is not running (stopped, or between a crash and its
	// restart).
	ErrSupervisorStopped = errors.New("bucket: supervisor is not running")
)

// PanicError is the end reason of a bucket that crashed: a panic inside a
// caller's Update function, or inside the bucket's own goroutine.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the goroutine that panicked
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("bucket: panic: %v", e.Value)
}
