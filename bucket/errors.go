package bucket

import (
	"context"
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

	// ErrIdle is the end reason of a bucket that [Bucket.StopIdle] ended:
	// unused for a while, it was taken out of memory. With a store its
	// data stays there, and the registry loads it again at its next use.
	ErrIdle = errors.New("bucket: unused for a while, taken out of memory")

	// ErrSupervisorStopped is returned by Supervisor.Start when the
	// supervisor is not running (stopped, or between a crash and its
	// restart).
	ErrSupervisorStopped = errors.New("bucket: supervisor is not running")
)

// EndedBefore reports whether err says only that the bucket had ended
// before the operation began, which then did nothing (a crash or a RENAME
// replaced it; with a store, its next lookup brings the pairs back), and
// not that the operation's own function panicked: a caller may look the
// name up again and retry, where retrying a panic would crash the next
// bucket too.
func EndedBefore(err error) bool {
	return errors.Is(err, ErrEnded) && !errors.As(err, new(*PanicError))
}

// PanicError is the end reason of a bucket that crashed: a panic inside a
// caller's View or Update function, or inside the bucket's own goroutine.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the goroutine that panicked
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("bucket: panic: %v", e.Value)
}

// The kinds of a bucket's end, as [EndKind] names them.
const (
	EndNormal   = "normal"   // stopped with a nil reason (a delete)
	EndError    = "error"    // stopped with an error
	EndPanic    = "panic"    // crashed: a *PanicError
	EndShutdown = "shutdown" // cancelled with its supervisor: a context's error
	EndIdle     = "idle"     // taken out of memory, unused: ErrIdle
)

// EndKind names the kind of a bucket's end reason ([Bucket.Err], the
// Reason of an events.Exited): EndNormal, EndError, EndPanic, EndShutdown
// or EndIdle. Logs, metrics and the front ends' event messages use it.
func EndKind(reason error) string {
	var perr *PanicError
	switch {
	case reason == nil:
		return EndNormal
	case errors.As(reason, &perr):
		return EndPanic
	case errors.Is(reason, context.Canceled), errors.Is(reason, context.DeadlineExceeded):
		return EndShutdown
	case errors.Is(reason, ErrIdle):
		return EndIdle
	default:
		return EndError
	}
}
