package store

import (
	"errors"
	"strings"
)

var (
	// ErrClosed is returned by every operation on a closed Store.
	ErrClosed = errors.New("store: closed")

	// ErrLocked is returned (wrapped, naming the directory) by Open when
	// another Store, in this process or another, holds the data directory.
	ErrLocked = errors.New("store: data directory is in use")

	// ErrWriteFailed is returned (wrapped, with the cause) by writes while the
	// store cannot write: a write or sync of its files failed (a full disk,
	// an I/O error) and the store has not recovered yet. Reads go on. The
	// store retries on a later write, at most once per
	// Options.RetryInterval.
	ErrWriteFailed = errors.New("store: write failed")

	// ErrCorrupt is returned (wrapped, naming the file or key) when stored
	// data is damaged beyond what recovery may repair.
	ErrCorrupt = errors.New("store: data is damaged")
)

// detail is the text of a pebble error for an operator: its message
// alone. Pebble joins each corruption error it returns with a carrier of
// the damage's details, whose text is "<corruption detail carrier>", and
// its errors print stack traces when formatted with %+v, as log/slog
// formats an error.
func detail(err error) string {
	return strings.ReplaceAll(err.Error(), "\n<corruption detail carrier>", "")
}
