package store

import (
	"bytes"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The reads below are for recovery and tooling: kv serves from memory and
// reads the store only to rebuild it.

// reader returns the engine for a read, or an error.
// During a fault, a read first tries to recover (as a write does) and fails
// if the store cannot reopen: the engine then still holds writes that
// failed, which must not be read back.
func (s *Store) reader() (*pebble.DB, func(), error) {
	if s.fault.Load() != nil {
		if err := s.recover(); err != nil {
			return nil, nil, fmt.Errorf("store: read: %w", err)
		}
	}
	s.mu.RLock()
	switch {
	case s.closed:
		s.mu.RUnlock()
		return nil, nil, ErrClosed
	case s.fault.Load() != nil:
		err := s.fault.Load().error()
		s.mu.RUnlock()
		return nil, nil, fmt.Errorf("store: read: %w", err)
	case s.db == nil:
		s.mu.RUnlock()
		return nil, nil, ErrClosed
	}
	return s.db, s.mu.RUnlock, nil
}

// Buckets calls fn with the name of each stored bucket, in the store's order
// (that of the length-prefixed names: not sorted by name), until fn returns
// an error, which Buckets returns. It reads only the bucket markers.
func (s *Store) Buckets(fn func(name string) error) error {
	db, done, err := s.folded()
	if err != nil {
		return err
	}
	defer done()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagBucket}, UpperBound: []byte{tagPair}})
	if err != nil {
		return fmt.Errorf("store: list buckets: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		name, err := decodeMarker(it.Key())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("%w: bucket marker %q: %v", ErrCorrupt, it.Key(), err)
		}
		if err := fn(string(name)); err != nil {
			_ = it.Close()
			return err
		}
	}
	return s.readError("list buckets", it.Close())
}

// Has reports whether bucket name is stored.
func (s *Store) Has(name string) (bool, error) {
	db, done, err := s.folded()
	if err != nil {
		return false, err
	}
	defer done()
	_, c, err := db.Get(markerKey(name))
	if err == pebble.ErrNotFound {
		return false, nil
	}
	if err != nil {
		return false, s.readError("look up bucket "+quote(name), err)
	}
	_ = c.Close()
	return true, nil
}

// Load returns the pairs of bucket name, and whether the bucket is stored.
// The map and its values are the caller's. It never returns a write that
// may still fail (see Settle).
func (s *Store) Load(name string) (pairs map[string][]byte, found bool, err error) {
	if err := s.Settle(); err != nil {
		return nil, false, fmt.Errorf("store: load bucket %s: %w", quote(name), err)
	}
	found, err = s.Has(name)
	if err != nil || !found {
		return nil, found, err
	}
	db, done, err := s.folded()
	if err != nil {
		return nil, false, err
	}
	defer done()
	p := pairPrefix(name)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, false, fmt.Errorf("store: load bucket %s: %w", quote(name), err)
	}
	var l loader
	for ok := it.First(); ok; ok = it.Next() {
		l.add(it.Key()[len(p):], it.Value())
	}
	if err := s.readError("load bucket "+quote(name), it.Close()); err != nil {
		return nil, false, err
	}
	return l.take(), true, nil
}

// LoadAll calls fn with each stored bucket and its pairs, empty buckets
// included, in one pass over the store: the fast way to recover everything at
// start-up. The map and its values are the caller's. fn returning an error
// stops LoadAll, which returns that error.
func (s *Store) LoadAll(fn func(name string, pairs map[string][]byte) error) error {
	var names [][]byte // encoded names (length prefix and name), in order
	if err := s.Buckets(func(name string) error {
		names = append(names, appendName(nil, name))
		return nil
	}); err != nil {
		return err
	}
	db, done, err := s.folded()
	if err != nil {
		return err
	}
	defer done()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagPair}, UpperBound: []byte{tagEnd}})
	if err != nil {
		return fmt.Errorf("store: load all: %w", err)
	}
	defer it.Close()

	var (
		cur  []byte // encoded name of the bucket being loaded
		l    loader
		next int // names[next:] are not emitted yet
	)
	emit := func(enc []byte, pairs map[string][]byte) error {
		name, _, _ := decodeName(enc)
		return fn(string(name), pairs)
	}
	// flushBefore emits every marked bucket whose name sorts before enc
	// (nil: all), as empty unless it is cur.
	flushBefore := func(enc []byte) error {
		for next < len(names) && (enc == nil || bytes.Compare(names[next], enc) < 0) {
			if err := emit(names[next], make(map[string][]byte)); err != nil {
				return err
			}
			next++
		}
		return nil
	}
	finish := func() error {
		if cur == nil {
			return nil
		}
		if err := flushBefore(cur); err != nil {
			return err
		}
		if next < len(names) && bytes.Equal(names[next], cur) {
			next++
		} // else pairs without a marker: Apply always writes one, so it is damage
		err := emit(cur, l.take())
		cur = nil
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		name, key, err := decodePair(k)
		if err != nil {
			return fmt.Errorf("%w: pair key %q: %v", ErrCorrupt, k, err)
		}
		enc := k[1 : len(k)-len(key)]
		if cur == nil || !bytes.Equal(enc, cur) {
			if err := finish(); err != nil {
				return err
			}
			_ = name
			cur = append([]byte(nil), enc...)
		}
		l.add(key, it.Value())
	}
	if err := it.Error(); err != nil {
		return s.readError("load all", err)
	}
	if err := finish(); err != nil {
		return err
	}
	return flushBefore(nil)
}

// loader builds one bucket's map, copying values into shared slabs rather
// than one allocation per value. Slabs start at 512 bytes and double up to
// 64 KiB, so a small bucket wastes little and a large one allocates rarely.
// Each value is cut with its capacity equal to its length, so an append by
// its owner reallocates instead of writing over its neighbour.
type loader struct {
	m        map[string][]byte
	slab     []byte
	slabSize int
}

func (l *loader) add(key, value []byte) {
	if l.m == nil {
		l.m = make(map[string][]byte)
	}
	if len(value) > 4096 {
		l.m[string(key)] = append(make([]byte, 0, len(value)), value...)
		return
	}
	if cap(l.slab)-len(l.slab) < len(value) {
		l.slabSize = min(max(2*l.slabSize, 512), 64<<10)
		l.slab = make([]byte, 0, max(l.slabSize, len(value)))
	}
	n := len(l.slab)
	l.slab = append(l.slab, value...)
	l.m[string(key)] = l.slab[n : n+len(value) : n+len(value)]
}

func (l *loader) take() map[string][]byte {
	m := l.m
	if m == nil {
		m = make(map[string][]byte)
	}
	l.m, l.slab, l.slabSize = nil, nil, 0
	return m
}

// readError wraps a read error; damage wraps ErrCorrupt and names the file.
func readError(what string, err error, file string) error {
	switch {
	case err == nil:
		return nil
	case pebble.IsCorruptionError(err):
		if file != "" {
			return fmt.Errorf("%w: %s: file %s: %s", ErrCorrupt, what, file, detail(err))
		}
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, what, detail(err))
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// readError wraps err as the package-level readError does, naming the file
// pebble last reported damaged.
func (s *Store) readError(what string, err error) error {
	file := ""
	if p := s.corruptFile.Load(); p != nil {
		file = *p
	}
	return readError(what, err, file)
}

// Stats are counts over a store.
type Stats struct {
	Buckets   int       // stored buckets
	Keys      int       // stored pairs
	Bytes     int64     // bytes of keys and values, as the caller wrote them
	DiskBytes uint64    // space the engine uses on disk
	LastSave  time.Time // the last successful checkpoint; zero if none
}

// Stats counts the stored buckets and pairs (a pass over the store) and
// reports the disk usage and the last checkpoint.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.ScanKeys(func(name string, key []byte, valueLen int) {
		if key == nil {
			st.Buckets++
			return
		}
		st.Keys++
		st.Bytes += int64(len(key) + valueLen)
	})
	if err != nil {
		return Stats{}, err
	}
	db, done, err := s.reader()
	if err != nil {
		return Stats{}, err
	}
	st.DiskBytes = db.Metrics().DiskSpaceUsage()
	done()
	st.LastSave = s.LastSave()
	return st, nil
}

// ScanKeys calls fn once per bucket marker (key nil) and once per pair
// (the key and its value's length), in the store's order, without copying
// values: for counts and tools. key is valid only during the call.
func (s *Store) ScanKeys(fn func(bucket string, key []byte, valueLen int)) error {
	db, done, err := s.folded()
	if err != nil {
		return err
	}
	defer done()
	return s.scanAll(db, func(k, v []byte) error {
		switch k[0] {
		case tagBucket:
			name, err := decodeMarker(k)
			if err != nil {
				return fmt.Errorf("%w: bucket marker %q: %v", ErrCorrupt, k, err)
			}
			fn(string(name), nil, 0)
		case tagPair:
			name, key, err := decodePair(k)
			if err != nil {
				return fmt.Errorf("%w: pair key %q: %v", ErrCorrupt, k, err)
			}
			fn(string(name), key, len(v))
		}
		return nil
	})
}

// scanAll calls fn with every bucket marker and pair in db.
func (s *Store) scanAll(db *pebble.DB, fn func(k, v []byte) error) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagBucket}, UpperBound: []byte{tagEnd}})
	if err != nil {
		return fmt.Errorf("store: scan: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	return s.readError("scan", it.Close())
}
