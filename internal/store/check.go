package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Report is what [Check] found in a data directory.
type Report struct {
	Dir      string
	Buckets  int       // bucket markers
	Keys     int       // pairs
	Bytes    int64     // bytes of keys and values
	LastSave time.Time // the last checkpoint; zero if none
	// LogRecords counts the committed groups of writes that a crash left
	// in the log, not yet folded into the bucket keys (and not in the
	// counts above): the next start folds them.
	LogRecords int
	// Problems lists what is wrong with the key layout (at most 100
	// entries; ProblemCount has the total).
	Problems     []string
	ProblemCount int
}

// Check verifies the data directory dir offline (for `kv check DIR`): it
// opens it read-only (which fails, with ErrLocked, while a daemon holds it),
// checks the engine's own invariants and checksums by reading every table,
// reads every record and validates the key layout, and counts what it
// finds. It returns an error (wrapping ErrCorrupt when the data is damaged)
// if anything is wrong, with the Report so far.
func Check(dir string) (Report, error) {
	rep := Report{Dir: dir}
	fi, err := os.Stat(dir)
	if err != nil {
		return rep, fmt.Errorf("store: check %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return rep, fmt.Errorf("store: check %s: not a directory", dir)
	}
	// Nothing is written to a directory that holds no store (not even the
	// lock file): pebble keeps a MANIFEST in every store.
	if !hasManifest(dir) {
		return rep, fmt.Errorf("store: check %s: not a kv data directory (no MANIFEST file)", dir)
	}
	lock, err := lockDir(dir, "stop the daemon using it, or check a checkpoint")
	if err != nil {
		return rep, fmt.Errorf("store: check: %w", err)
	}
	defer lock.Close()
	walEnd, err := inspectNewestWAL(dir) // damage pebble would cut silently
	if err != nil {
		return rep, err
	}
	var damaged string
	db, err := pebble.Open(dir, &pebble.Options{
		FS: vfs.Default, Lock: lock, ReadOnly: true, ErrorIfNotExists: true,
		Logger: quietLogger{},
		EventListener: &pebble.EventListener{
			DataCorruption: func(info pebble.DataCorruptionInfo) { damaged = info.Path },
		},
	})
	if err != nil {
		return rep, openError(dir, err)
	}
	defer db.Close()

	if err := db.CheckLevels(nil); err != nil {
		return rep, readError("check "+dir, err, damaged)
	}
	problem := func(format string, args ...any) {
		rep.ProblemCount++
		if len(rep.Problems) < 100 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	if walEnd != nil && walEnd.later > 0 {
		problem("write-ahead log %s is unreadable at byte %d, and %d bytes of later writes follow (dropped at the next start; possible damage)",
			walEnd.path, walEnd.cut, walEnd.later)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		return rep, fmt.Errorf("store: check %s: %w", dir, err)
	}
	var lastMarker []byte // encoded name of the last bucket marker seen
	marked := make(map[string]bool)
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		switch {
		case len(k) == 0:
			problem("empty key")
		case k[0] == tagMeta:
			if !bytes.Equal(k, keyLastSave) {
				problem("unknown meta key %q", k)
				continue
			}
			v := it.Value()
			if len(v) != 8 {
				problem("last save time has %d bytes, not 8", len(v))
				continue
			}
			rep.LastSave = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		case k[0] == tagBucket:
			if _, err := decodeMarker(k); err != nil {
				problem("bad bucket marker %q: %v", k, err)
				continue
			}
			rep.Buckets++
			lastMarker = append(lastMarker[:0], k[1:]...)
			marked[string(lastMarker)] = true
		case k[0] == tagPair:
			_, key, err := decodePair(k)
			if err != nil {
				problem("bad pair key %q: %v", k, err)
				continue
			}
			rep.Keys++
			rep.Bytes += int64(len(key) + len(it.Value()))
			if enc := k[1 : len(k)-len(key)]; !marked[string(enc)] {
				name, _, _ := decodeName(enc)
				problem("pair %q of bucket %q, which has no marker", key, name)
				marked[string(enc)] = true // report each bucket once
			}
		case k[0] == tagLog:
			if _, err := decodeLogKey(k); err != nil {
				problem("bad log record key %q: %v", k, err)
				continue
			}
			var f folding
			if err := f.add(nil, slices.Clone(it.Value())); err != nil {
				problem("bad log record %x: %v", k, err)
				continue
			}
			rep.LogRecords++
		default:
			problem("key %q has unknown tag 0x%02x", k, k[0])
		}
	}
	if err := it.Close(); err != nil {
		return rep, readError("check "+dir, err, damaged)
	}
	if rep.ProblemCount > 0 {
		return rep, fmt.Errorf("%w: check %s: %d problems, first: %s", ErrCorrupt, dir, rep.ProblemCount, rep.Problems[0])
	}
	return rep, nil
}

// quietLogger drops pebble's messages during Check; a fatal error panics,
// which Check's caller sees as a crash rather than an exit.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// hasManifest reports whether dir holds a pebble MANIFEST file (or cannot
// be listed: then pebble's own open says why).
func hasManifest(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "MANIFEST-") {
			return true
		}
	}
	return false
}
