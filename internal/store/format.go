package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// formatVersion is the layout of kv's keys and log records (see keys.go
// and fold.go) that this store reads and writes. A store records it under
// keyFormat when it opens a directory that lacks it (a new one, or one
// from before the key existed, which has this layout); a directory that
// records a later one was written by a newer kv, whose keys or records
// this one would misread: Open and Check refuse it, before they read
// anything of it. A change of layout raises it, and migrates what older
// directories hold.
const formatVersion = 1

// keyFormat is the meta key of the directory's format version (8 bytes,
// big-endian).
var keyFormat = []byte("\x00format")

// ErrNewerFormat is returned (wrapped, naming the directory and both
// versions) by Open and Check for a data directory that a newer kv has
// written in a layout this one does not know.
var ErrNewerFormat = errors.New("store: data directory written by a newer kv")

// readFormat returns the format version recorded in db, and whether one
// is; a recorded version this store cannot read is an error.
func readFormat(db *pebble.DB, dir string) (v uint64, found bool, err error) {
	val, c, err := db.Get(keyFormat)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: read the format version of %s: %w", dir, err)
	}
	defer c.Close()
	if v, err = parseFormat(val, dir); err != nil && !errors.Is(err, ErrNewerFormat) {
		return 0, false, err
	}
	return v, true, err
}

// parseFormat reads val, the value of keyFormat in dir: a version, or an
// error wrapping ErrCorrupt for a damaged one, or one wrapping
// ErrNewerFormat, with the version, for a later one than this store's.
func parseFormat(val []byte, dir string) (uint64, error) {
	if len(val) != 8 {
		return 0, fmt.Errorf("%w: the format version of %s has %d bytes, not 8", ErrCorrupt, dir, len(val))
	}
	switch v := binary.BigEndian.Uint64(val); {
	case v == 0:
		return 0, fmt.Errorf("%w: the format version of %s is 0", ErrCorrupt, dir)
	case v > formatVersion:
		return v, fmt.Errorf("%w: %s is in store format %d, and this kv reads format %d at most: "+
			"run the kv that wrote it (or a later one), or start from a checkpoint of this format",
			ErrNewerFormat, dir, v, formatVersion)
	default:
		return v, nil
	}
}

// ensureFormat refuses db if a newer kv wrote it, and records this
// store's format version in it if it records none, before anything else
// is written. The record is a synced write only as the store's file
// system makes it one: under FsyncEverySec and FsyncNo the fsync is
// deferred, and a disk that fails then fences the store (Open returns it
// failed, see faultFS) with the record in memory only. Either way a
// directory left without it has this layout, and the next Open records it.
func ensureFormat(db *pebble.DB, dir string) error {
	_, found, err := readFormat(db, dir)
	if err != nil || found {
		return err
	}
	if err := db.Set(keyFormat, binary.BigEndian.AppendUint64(nil, formatVersion), pebble.Sync); err != nil {
		return fmt.Errorf("store: record the format version of %s: %w", dir, err)
	}
	return nil
}
