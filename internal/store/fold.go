package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
)

// The log. A group of writes (see group) is committed as one log record:
// one key, logKey(n) with n counting up in commit order, whose value is the
// group's batch. The engine then inserts one key into its memtable for the
// whole group, where inserting the group's own keys (one per field, each at
// its own place in the memtable's skiplist) cost a quarter of the daemon's
// CPU under a pipelined write load.
//
// The records are folded into the bucket keys later, in their order: by
// the folder goroutine once foldEvery bytes of them have been committed,
// by every read of the bucket keys first (so that a read sees every
// committed write), and at Open (what a crash, or a stop, left). A fold
// is one atomic batch: the records' changes, keeping of each key only its
// last change between two range deletions (a dropped bucket), and the
// deletion of the records. It is acknowledged to no one: should it fail or be lost
// (a recovery cuts the WAL's unsynced tail), the records stay, and the next
// fold applies them. So that such records always fold before the ones
// committed after them, the numbers go on from the last one Open found:
// they never start again below a record that may come back.

// foldEvery is how many bytes of log records make the folder fold. The
// more records a fold takes, the more writes of one key it folds into one
// (redis-benchmark HSET -P 16 over 100,000 fields, in-process: 8 MiB
// 485k-554k req/s under everysec, 16 MiB 580k-609k, 32 MiB 675k-685k),
// but the longer a read that must fold first waits, and the more memory a
// fold takes (about twice the records' bytes, and a field each in a map):
// with 16 MiB, a restart after bench/recovery.sh's million writes was
// ready in 1.3 s with 200 MiB of RSS, against 0.25 to 0.41 s and 33 to 87
// MiB with 8 MiB. Measured again later on the daemon (redis-benchmark
// -c 50 -P 16 -r 100000 HSET, 2,000,000 requests after 1,000,000 to warm
// it, perf stat on the daemon, two runs each taking turns), the CPU per
// request hardly moved: 3.53-3.67 µs with 8 MiB, 3.55-3.81 with 16 MiB,
// 3.41-3.55 with 32 MiB.
const foldEvery = 8 << 20

// foldLoop folds the log whenever commits have added foldEvery bytes to
// it, until the store stops.
func (s *Store) foldLoop() {
	defer close(s.foldStopped)
	for {
		select {
		case <-s.stop:
			return
		case <-s.foldKick:
			if s.fault.Load() != nil {
				continue // a write or a read recovers the store; the next kick folds
			}
			if err := s.fold(); err != nil && s.fault.Load() == nil && !errors.Is(err, ErrClosed) {
				s.log.Warn("store: folding the log", "dir", s.dir, "err", detail(err))
			}
		}
	}
}

// logged records that a record of n bytes was committed, and wakes the
// folder when the log has grown by foldEvery.
func (s *Store) logged(n int) {
	if s.logPending.Add(int64(n)) >= foldEvery {
		select {
		case s.foldKick <- struct{}{}:
		default:
		}
	}
}

// folded returns the engine for a read of the bucket keys, as reader does,
// once the log's committed records are folded into them.
func (s *Store) folded() (*pebble.DB, func(), error) {
	db, done, err := s.reader()
	if err != nil {
		return nil, nil, err
	}
	if s.logPending.Load() != 0 {
		if _, err := s.foldDB(db); err != nil {
			done()
			return nil, nil, err
		}
	}
	return db, done, nil
}

// fold folds the log's committed records into the bucket keys.
func (s *Store) fold() error {
	_, done, err := s.folded()
	if err != nil {
		return err
	}
	done()
	return nil
}

// maxPointDeletes is how many keys a fold deletes one by one, where it
// would otherwise delete them with one range deletion: the log records it
// folded, and a dropped bucket's pairs (see folding.dropPairs).
const maxPointDeletes = 64

// foldDB folds the committed records of db's log into its bucket keys,
// and returns the number after the last record it folded (0 if none). The
// caller holds s.mu (for reading, at least), so that db stays open.
func (s *Store) foldDB(db *pebble.DB) (next uint64, err error) {
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	pending := s.logPending.Load()
	lower := []byte{tagLog}
	if s.foldedDB == db {
		lower = logKey(s.foldedNext)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{tagLog + 1}})
	if err != nil {
		return 0, fmt.Errorf("store: fold the log: %w", err)
	}
	b := db.NewBatch()
	defer b.Close()
	f := folding{db: db}
	if s.foldBytes > 0 && pending > 0 {
		f.hint = int(min(pending*s.foldKeys/s.foldBytes, s.foldKeys))
	}
	var last []byte
	var folded [][]byte   // the records' keys, while few (see below)
	var recordBytes int64 // the records'
	for ok := it.First(); ok; ok = it.Next() {
		recordBytes += int64(len(it.Value()))
		if err := f.add(b, slices.Clone(it.Value())); err != nil {
			_ = it.Close()
			return 0, fmt.Errorf("%w: log record %x: %v", ErrCorrupt, it.Key(), err)
		}
		last = append(last[:0], it.Key()...)
		if len(folded) <= maxPointDeletes {
			folded = append(folded, slices.Clone(it.Key()))
		}
	}
	if err := s.readError("fold the log", it.Close()); err != nil {
		return 0, err
	}
	if last == nil {
		s.logPending.Add(-pending)
		return 0, nil
	}
	f.flush(b)
	s.foldKeys, s.foldBytes = int64(f.most), recordBytes
	n, err := decodeLogKey(last)
	if err != nil {
		return 0, fmt.Errorf("%w: log record key %x: %v", ErrCorrupt, last, err)
	}
	ranges := f.ranges
	if len(folded) <= maxPointDeletes {
		// A few records, deleted one by one: a range deletion would make
		// every read until the next flush build anew the memtable's index
		// of range deletions, one more each fold (a fold runs before each
		// load: 3,000 writes each followed by the load of another bucket
		// took 136 s, 45 ms a load).
		for _, k := range folded {
			_ = b.Delete(k, nil)
		}
	} else {
		_ = b.DeleteRange([]byte{tagLog}, logKey(n+1), nil)
		ranges++
	}
	fatals := s.fatals.Load()
	if err := db.Apply(b, pebble.NoSync); err != nil {
		return 0, fmt.Errorf("%w: fold the log: %w", ErrWriteFailed, err)
	}
	if s.fatals.Load() != fatals {
		return 0, fmt.Errorf("%w: fold the log: the storage engine failed", ErrWriteFailed)
	}
	s.logPending.Add(-pending)
	if s.foldedDB != db {
		s.foldedRanges = 0
	}
	s.foldedDB, s.foldedNext = db, n+1
	s.flushRanges(db, ranges)
	return n + 1, nil
}

// maxMemtableRanges is how many range deletions the folds write into the
// memtable before they have it flushed.
const maxMemtableRanges = 512

// flushRanges counts the range deletions that a fold of db has just
// written, and once maxMemtableRanges have been since the last time, has
// the engine flush its memtable (in the background), which takes them out
// of the reads' way. Each range deletion added to the memtable makes the
// next read build the memtable's index of all of them anew; the folds
// write few (a drop of a bucket of more than maxPointDeletes pairs, a
// drop of every bucket, the deletion of many folded records), but until
// the memtable filled (some 20,000 drops) nothing bounded them: drops of
// 100-pair buckets, each followed by the load of another, cost 0.25 ms an
// op over 3,000 and 0.50 ms over 5,000, growing, against 25 µs for the
// drop and the load alone; with a flush every 512, 0.18 ms over 5,000
// (a flush every 64 cost more than it saved: 0.55 ms over 3,000). The
// caller holds foldMu, and s.mu for reading.
func (s *Store) flushRanges(db *pebble.DB, ranges int) {
	if s.foldedRanges += ranges; s.foldedRanges < maxMemtableRanges {
		return
	}
	s.foldedRanges = 0
	if _, err := db.AsyncFlush(); err != nil {
		s.log.Warn("store: flushing the memtable", "dir", s.dir, "err", detail(err))
	}
}

// folding is a fold's changes since its last range deletion: the last
// change of each key.
type folding struct {
	db   *pebble.DB // the engine folded into, as it is before the fold
	last map[string]change
	// hint is how many keys last will hold, guessed from the last fold's
	// keys per byte of records: last is made that large, rather than
	// growing to it through rehashes (a third of the folder's CPU under HSET
	// -P 16 over 100,000 fields), and a small fold (before a read) does
	// not make it as large as a large one. most is the most keys last
	// held in this fold, for the next.
	hint, most int
	// byBucket lists the pair keys in last by their bucket's pair prefix,
	// once a dropped bucket has needed them (nil until then, and after a
	// flush): every key of last with that prefix is listed.
	byBucket map[string][]string
	// ranges is how many range deletions the fold's batch holds; after
	// the first, the changes of last before it are in the batch, where
	// dropPairs does not see them.
	ranges int
	// dropped holds, for each bucket that dropPairs dropped in this fold
	// (by its pair prefix), its pairs in the engine: a later drop of the
	// bucket in the same fold deletes them again without iterating the
	// engine, where each drop stepped over every deletion of the bucket's
	// pairs that the folds before this one left in the memtable.
	dropped map[string][][]byte
}

type change struct {
	value []byte
	del   bool
}

// add adds the changes of record, a group's batch, in order, to b. Their
// keys and values stay in record, which the caller does not reuse.
func (f *folding) add(b *pebble.Batch, record []byte) error {
	return eachChange(record, func(kind pebble.InternalKeyKind, key, value []byte) error {
		switch kind {
		case pebble.InternalKeyKindSet:
			f.put(key, change{value: value})
		case pebble.InternalKeyKindDelete:
			f.put(key, change{del: true})
		case pebble.InternalKeyKindRangeDelete:
			if f.dropPairs(key, value) {
				break
			}
			// The changes before it are written before it, so that it
			// deletes them, and the ones after it stay.
			f.flush(b)
			f.ranges++
			_ = b.DeleteRange(key, value, nil)
		}
		return nil
	})
}

// dropPairs makes the range deletion [start, end) point deletions of the
// keys it would delete, when it deletes the pairs of one bucket (a DEL,
// a RENAME's source or target) that has at most maxPointDeletes of them,
// and reports whether it did. A range deletion in the engine's memtable
// costs every later read until the next flush: each read builds the
// memtable's index of range deletions anew, with all of them (3,000 drops
// each followed by the load of another bucket: 0.27 ms a load, and
// growing, against 4.7 µs). The keys it deletes are the bucket's pairs in
// the engine, as the folds before this one left them, and those that
// this fold changed before the drop, which are all in last while no range
// deletion has flushed them into the batch.
func (f *folding) dropPairs(start, end []byte) bool {
	if f.ranges > 0 || !isPairPrefix(start) || !bytes.Equal(end, prefixEnd(start)) {
		return false
	}
	prefix := unsafe.String(unsafe.SliceData(start), len(start))
	stored, seen := f.dropped[prefix]
	if !seen {
		it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
		if err != nil {
			return false
		}
		for ok := it.First(); ok && len(stored) <= maxPointDeletes; ok = it.Next() {
			stored = append(stored, slices.Clone(it.Key()))
		}
		if it.Close() != nil || len(stored) > maxPointDeletes {
			return false
		}
		if f.dropped == nil {
			f.dropped = make(map[string][][]byte)
		}
		f.dropped[prefix] = stored
	}
	if f.byBucket == nil {
		f.byBucket = make(map[string][]string)
		for k := range f.last {
			if p, ok := bucketOfPair(k); ok {
				f.byBucket[p] = append(f.byBucket[p], k)
			}
		}
	}
	// The pairs this fold changed before the drop are forgotten, but for
	// those the engine holds, which are deleted: a pair written and
	// dropped within the fold leaves no deletion behind (a bucket
	// recreated with new fields and dropped again, thousands of times in
	// a fold, left thousands of deletions for each later drop to list).
	for _, k := range f.byBucket[prefix] {
		delete(f.last, k)
	}
	delete(f.byBucket, prefix)
	for _, k := range stored {
		f.put(k, change{del: true})
	}
	return true
}

// isPairPrefix reports whether p is a whole pair prefix: the tag and one
// encoded bucket name, nothing after it.
func isPairPrefix(p []byte) bool {
	_, key, err := decodePair(p)
	return err == nil && len(key) == 0
}

// bucketOfPair returns the pair prefix of key, a pair key, as a string
// sharing key's bytes; ok is false for any other key.
func bucketOfPair(key string) (prefix string, ok bool) {
	_, field, err := decodePair(unsafe.Slice(unsafe.StringData(key), len(key)))
	if err != nil {
		return "", false
	}
	return key[:len(key)-len(field)], true
}

// eachChange calls fn with each change of record, a log record's value (a
// group's batch, in pebble's batch format), in order, until fn returns an
// error. The changes are the kinds kv writes: puts, deletes, range
// deletions and log data. It decodes the record itself, checking each
// length against what is left and the number of changes against the
// header's count, where pebble's batchrepr.Reader trusts the lengths (it
// indexes, or reads, past the end of a truncated batch): a damaged record
// is an error, never a panic or a misread. fn may have been called for the
// changes before the damage; the callers then discard what they gathered.
func eachChange(record []byte, fn func(kind pebble.InternalKeyKind, key, value []byte) error) error {
	h, ok := batchrepr.ReadHeader(record)
	if !ok {
		return errors.New("not a batch: shorter than a batch's header")
	}
	rest := record[batchrepr.HeaderLen:]
	var n uint32 // changes that count: all but log data, as pebble counts them
	for i := 1; len(rest) > 0; i++ {
		kind := pebble.InternalKeyKind(rest[0])
		withValue := false
		switch kind {
		case pebble.InternalKeyKindSet, pebble.InternalKeyKindRangeDelete:
			withValue = true
		case pebble.InternalKeyKindDelete, pebble.InternalKeyKindLogData:
		default:
			return fmt.Errorf("change %d: unexpected kind %v", i, kind)
		}
		key, left, err := lengthPrefixed(rest[1:])
		if err != nil {
			return fmt.Errorf("change %d (%v): key: %w", i, kind, err)
		}
		var value []byte
		if withValue {
			if value, left, err = lengthPrefixed(left); err != nil {
				return fmt.Errorf("change %d (%v): value: %w", i, kind, err)
			}
		}
		rest = left
		if kind != pebble.InternalKeyKindLogData {
			n++
		}
		if err := fn(kind, key, value); err != nil {
			return err
		}
	}
	if n != h.Count {
		return fmt.Errorf("%d changes where the batch's header says %d", n, h.Count)
	}
	return nil
}

// lengthPrefixed splits b into the string its varint length prefix
// announces and what follows it.
func lengthPrefixed(b []byte) (s, rest []byte, err error) {
	l, k := binary.Uvarint(b)
	switch {
	case k == 0:
		return nil, nil, errors.New("the record ends before its length")
	case k < 0 || l > math.MaxUint32:
		return nil, nil, errors.New("a length out of range")
	case l > uint64(len(b)-k):
		return nil, nil, fmt.Errorf("a length of %d bytes where %d are left", l, len(b)-k)
	}
	b = b[k:]
	return b[:l:l], b[l:], nil
}

// put records c as key's last change. key is in a record that the fold
// keeps unchanged until it ends (see add): the map's key shares its bytes
// rather than copying them, which saves an allocation per change.
func (f *folding) put(key []byte, c change) {
	if f.last == nil {
		f.last = make(map[string]change, f.hint)
	}
	k := unsafe.String(unsafe.SliceData(key), len(key))
	if f.byBucket != nil {
		if _, seen := f.last[k]; !seen {
			if p, ok := bucketOfPair(k); ok {
				f.byBucket[p] = append(f.byBucket[p], k)
			}
		}
	}
	f.last[k] = c
}

// flush writes the changes gathered since the last range deletion to b
// (which copies them).
func (f *folding) flush(b *pebble.Batch) {
	f.most = max(f.most, len(f.last))
	for k, c := range f.last {
		key := unsafe.Slice(unsafe.StringData(k), len(k))
		if c.del {
			_ = b.Delete(key, nil)
		} else {
			_ = b.Set(key, c.value, nil)
		}
	}
	clear(f.last)
	f.byBucket, f.dropped = nil, nil
}
