package store

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Report is what [Check] found in a data directory.
type Report struct {
	Dir string
	// Opened reports that the engine opened the directory: the counts
	// below say what was read of it. False when Check failed before.
	Opened   bool
	Buckets  int       // bucket markers
	Keys     int       // pairs
	Bytes    int64     // bytes of keys and values
	LastSave time.Time // the last checkpoint; zero if none
	// LogRecords counts the committed groups of writes left in the log,
	// not yet folded into the bucket keys: the counts above include them,
	// as the next start, which folds them, will find them.
	LogRecords int
	// Problems lists what is wrong with the key layout (at most 100
	// entries; ProblemCount has the total).
	Problems     []string
	ProblemCount int
}

// Check verifies the data directory dir offline (for `kv check DIR`): it
// opens it read-only, writing nothing, not even a lock file (it fails,
// with ErrLocked, while a daemon holds it; a directory without a lock file,
// a checkpoint, is not locked, so a daemon must not start on it meanwhile),
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
	lock, err := lockForCheck(dir)
	if err != nil {
		return rep, err
	}
	defer lock.Close()
	walEnd, err := inspectNewestWAL(dir) // damage pebble would cut silently
	if err != nil {
		return rep, err
	}
	if walEnd != nil && walEnd.syncedPast { // damage Open refuses, where pebble does not look
		return rep, walDamage(dir, errSyncedPast, walEnd)
	}
	var damaged string
	db, err := pebble.Open(dir, &pebble.Options{
		FS: noLock{vfs.Default}, ReadOnly: true, ErrorIfNotExists: true,
		Logger: quietLogger{},
		EventListener: &pebble.EventListener{
			DataCorruption: func(info pebble.DataCorruptionInfo) { damaged = info.Path },
		},
	})
	if err != nil {
		if walEnd != nil && walEnd.later > 0 && pebble.IsCorruptionError(err) {
			return rep, walDamage(dir, err, walEnd)
		}
		return rep, openError(dir, err)
	}
	defer db.Close()
	rep.Opened = true

	if err := db.CheckLevels(nil); err != nil {
		return rep, readError("check "+dir, err, damaged)
	}
	if _, _, err := readFormat(db, dir); errors.Is(err, ErrNewerFormat) {
		return rep, err // its keys would be misread as damage
	}
	problem := func(format string, args ...any) {
		rep.ProblemCount++
		if len(rep.Problems) < 100 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	if t, ok, err := checkpointTime(dir); err != nil {
		problem("%v", err)
	} else if ok {
		rep.LastSave = t
	}
	if walEnd != nil && walEnd.later > 0 {
		problem("write-ahead log %s is unreadable at byte %d, and %d bytes of later writes follow (dropped at the next start; possible damage)",
			walEnd.path, walEnd.cut, walEnd.later)
	}
	// The log's records first (they sort last): what they change is
	// counted as the next start will fold it.
	var view logView
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagLog}, UpperBound: []byte{tagLog + 1}})
	if err != nil {
		return rep, fmt.Errorf("store: check %s: %w", dir, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if _, err := decodeLogKey(k); err != nil {
			problem("bad log record key %q: %v", k, err)
			continue
		}
		if err := view.add(slices.Clone(it.Value())); err != nil {
			problem("bad log record %x: %v", k, err)
			continue
		}
		rep.LogRecords++
	}
	if err := it.Close(); err != nil {
		return rep, readError("check "+dir, err, damaged)
	}

	var lastMarker []byte // encoded name of the last bucket marker seen
	marked := make(map[string]bool)
	visit := func(k, v []byte) {
		if err := checkKey(k); err != nil {
			problem("%v", err)
			return
		}
		switch k[0] {
		case tagMeta:
			if bytes.Equal(k, keyFormat) { // a newer one was refused above
				if _, err := parseFormat(v, dir); err != nil {
					problem("bad store format version %x", v)
				}
				return
			}
			if len(v) != 8 {
				problem("last save time has %d bytes, not 8", len(v))
				return
			}
			if t := time.Unix(0, int64(binary.BigEndian.Uint64(v))); t.After(rep.LastSave) {
				rep.LastSave = t
			}
		case tagBucket:
			rep.Buckets++
			lastMarker = append(lastMarker[:0], k[1:]...)
			marked[string(lastMarker)] = true
		case tagPair:
			_, key, _ := decodePair(k) // checked by checkKey
			rep.Keys++
			rep.Bytes += int64(len(key) + len(v))
			if enc := k[1 : len(k)-len(key)]; !marked[string(enc)] {
				name, _, _ := decodeName(enc)
				problem("pair %q of bucket %q, which has no marker", key, name)
				marked[string(enc)] = true // report each bucket once
			}
		}
	}
	// Then every other key, merged in order with the keys the log adds.
	view.done()
	added := view.added()
	it, err = db.NewIter(nil)
	if err != nil {
		return rep, fmt.Errorf("store: check %s: %w", dir, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) > 0 && k[0] == tagLog {
			continue
		}
		for len(added) > 0 && bytes.Compare(added[0], k) < 0 {
			visit(added[0], view.points[string(added[0])].value)
			added = added[1:]
		}
		if len(added) > 0 && bytes.Equal(added[0], k) {
			added = added[1:] // decided below, by the log
		}
		if v, present, decided := view.final(k); decided {
			if present {
				visit(k, v)
			}
			continue
		}
		visit(k, it.Value())
	}
	if err := it.Close(); err != nil {
		return rep, readError("check "+dir, err, damaged)
	}
	for _, k := range added {
		visit(k, view.points[string(k)].value)
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

// checkKey checks that k is a key kv writes outside the log: the meta key,
// a bucket marker or a pair.
func checkKey(k []byte) error {
	switch {
	case len(k) == 0:
		return errors.New("empty key")
	case k[0] == tagMeta:
		if !bytes.Equal(k, keyLastSave) && !bytes.Equal(k, keyFormat) {
			return fmt.Errorf("unknown meta key %q", k)
		}
	case k[0] == tagBucket:
		if _, err := decodeMarker(k); err != nil {
			return fmt.Errorf("bad bucket marker %q: %v", k, err)
		}
	case k[0] == tagPair:
		if _, _, err := decodePair(k); err != nil {
			return fmt.Errorf("bad pair key %q: %v", k, err)
		}
	default:
		return fmt.Errorf("key %q has unknown tag 0x%02x", k, k[0])
	}
	return nil
}

// logView is what the log's records change, as a fold would apply it: the
// last put or delete of each key they touch, and their range deletions,
// each with its place in the log's order.
type logView struct {
	points map[string]logChange
	ranges []logRange
	n      int // changes so far
	cover  coverIndex
}

type logChange struct {
	at    int
	value []byte
	del   bool
}

type logRange struct {
	at         int
	start, end []byte
}

// add adds the changes of record, a log record's value, after checking
// that it is a batch of the changes kv makes: puts and deletes of a pair,
// a marker or a meta key, and range deletions. The view keeps slices of
// record, which the caller does not reuse.
func (v *logView) add(record []byte) error {
	// Checked whole first: a damaged record adds none of its changes, as
	// the fold would apply none of them.
	err := eachChange(record, func(kind pebble.InternalKeyKind, key, _ []byte) error {
		if kind == pebble.InternalKeyKindSet || kind == pebble.InternalKeyKindDelete {
			if err := checkKey(key); err != nil {
				return fmt.Errorf("a change: %v", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if v.points == nil {
		v.points = make(map[string]logChange)
	}
	return eachChange(record, func(kind pebble.InternalKeyKind, key, value []byte) error {
		v.n++
		switch kind {
		case pebble.InternalKeyKindSet, pebble.InternalKeyKindDelete:
			v.points[string(key)] = logChange{at: v.n, value: value, del: kind == pebble.InternalKeyKindDelete}
		case pebble.InternalKeyKindRangeDelete:
			v.ranges = append(v.ranges, logRange{at: v.n, start: key, end: value})
		}
		return nil
	})
}

// final reports how the log leaves key k: decided false if it leaves k as
// stored; else whether k is present, and its value.
// Call done once every record is added.
func (v *logView) final(k []byte) (value []byte, present, decided bool) {
	covered := v.cover.last(k) // the last range deletion that covers k
	if c, ok := v.points[string(k)]; ok && c.at > covered {
		return c.value, !c.del, true
	}
	return nil, false, covered >= 0
}

// done indexes the range deletions, once every record is added, for final.
func (v *logView) done() { v.cover = newCoverIndex(v.ranges) }

// coverIndex tells which range deletion, of many, last covers a key, in
// O(log ranges) where a scan of them all made a check quadratic: a log
// after thousands of dropped buckets, against millions of keys.
type coverIndex struct {
	bounds [][]byte // every range's start and end, sorted, distinct
	at     []int    // at[i]: the last deletion covering [bounds[i], bounds[i+1]), or -1
}

func newCoverIndex(ranges []logRange) coverIndex {
	var live []logRange
	var bounds [][]byte
	for _, r := range ranges {
		if bytes.Compare(r.start, r.end) < 0 { // an empty range covers nothing
			live = append(live, r)
			bounds = append(bounds, r.start, r.end)
		}
	}
	slices.SortFunc(bounds, bytes.Compare)
	bounds = slices.CompactFunc(bounds, bytes.Equal)
	slices.SortFunc(live, func(a, b logRange) int { return bytes.Compare(a.start, b.start) })
	// A sweep over the bounds: the ranges begun so far, latest first; one
	// that has ended leaves when it comes to the top.
	open := &latestFirst{}
	at := make([]int, len(bounds))
	for i, b := range bounds {
		for len(live) > 0 && bytes.Equal(live[0].start, b) {
			heap.Push(open, live[0])
			live = live[1:]
		}
		for open.Len() > 0 && bytes.Compare((*open)[0].end, b) <= 0 {
			heap.Pop(open)
		}
		at[i] = -1
		if open.Len() > 0 {
			at[i] = (*open)[0].at
		}
	}
	return coverIndex{bounds: bounds, at: at}
}

// last returns the last range deletion that covers k, or -1.
func (c coverIndex) last(k []byte) int {
	i := sort.Search(len(c.bounds), func(i int) bool { return bytes.Compare(c.bounds[i], k) > 0 }) - 1
	if i < 0 {
		return -1
	}
	return c.at[i]
}

// latestFirst is a heap of range deletions, the latest on top.
type latestFirst []logRange

func (h latestFirst) Len() int           { return len(h) }
func (h latestFirst) Less(i, j int) bool { return h[i].at > h[j].at }
func (h latestFirst) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *latestFirst) Push(x any)        { *h = append(*h, x.(logRange)) }
func (h *latestFirst) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// added returns, sorted, the keys the log leaves present with a value of
// its own.
func (v *logView) added() [][]byte {
	var keys [][]byte
	for k := range v.points {
		if _, present, _ := v.final([]byte(k)); present {
			keys = append(keys, []byte(k))
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	return keys
}
