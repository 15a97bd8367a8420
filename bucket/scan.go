package bucket

import (
	"math"
	"slices"
	"sort"

	"github.com/kvproject/kv/internal/scanorder"
)

// scanIndexMin is the number of keys from which a bucket keeps its keys in
// scan order between Scans (below it, each Scan sorts them anew: well
// under a microsecond). HKEYS, HVALS and HGETALL list a hash in this order
// too, so most hashes that are read whole keep one.
const scanIndexMin = 8

// mergeAt returns how many keys an index of built keys holds apart, sorted,
// before a Scan merges them into the built ones. Each Scan that finds keys
// added since copies those apart into a new index (readers may hold the
// old one), and a merge copies every key: four times the square root of
// the built keys (at least 1,024, at most the built keys themselves, so
// that a small index merges before it is dropped) keeps both small,
// whether Scans come after every addition or after hundreds.
func mergeAt(built int) int {
	return min(built, max(1024, 4*int(math.Sqrt(float64(built)))))
}

// scanIndex is a bucket's keys in scan order, kept between Scans: the keys
// as they were when it was built (or last merged), sorted, and the keys
// added since, sorted up to the last Scan. Deleted keys stay until a
// rebuild (a Scan skips them). A Scan sorts the keys added since into the
// ones apart, and merges those into the built ones once they reach
// mergeAt; the bucket drops the index once more keys were added than
// were built (a rebuild, at the next Scan, then costs less than taking
// them in), and a Scan rebuilds it once it holds more than twice as many
// keys as the bucket.
type scanIndex struct {
	built  []scanorder.Item
	added  []scanorder.Item
	sorted int // added[:sorted] is sorted
}

// keyAdded records key, which a write is adding to the bucket, in the scan
// index: a later Scan must see it. The caller holds the write lock.
func (b *Bucket) keyAdded(key string) {
	if idx := b.scan.Load(); idx != nil { // inlined: a bucket without an index pays one load
		b.indexKey(idx, key)
	}
}

// indexKey adds key to idx, the bucket's index. The write lock keeps every
// reader away: the one time an index changes in place.
func (b *Bucket) indexKey(idx *scanIndex, key string) {
	if len(idx.added) >= max(scanIndexMin, len(idx.built)) {
		b.scan.Store(nil) // cheaper to rebuild than to take them in
		return
	}
	idx.added = append(idx.added, scanorder.Of(key))
}

// addingKey is keyAdded before a write of key, which may be new.
func (b *Bucket) addingKey(key string) {
	if b.scan.Load() != nil {
		if _, ok := b.data[key]; !ok {
			b.keyAdded(key)
		}
	}
}

// Scan is one step of a cursor iteration over the keys, HSCAN's: the keys
// from cursor on in the scan order (their FNV-1a hash, then the key; the
// order of registry.Scan), count of them unless fewer remain (more only
// when keys share a hash: they are never split between steps), and the
// cursor of the next step, 0 once the iteration is over; start with cursor
// 0. A key present for the whole iteration is returned exactly once; one
// added or deleted meanwhile may or may not be. count below 1 means 1.
//
// A step costs O(log n + count) once the bucket has sorted its keys: the
// first step does, O(n), and a bucket of 8 keys or more keeps them sorted
// (24 bytes a key), taking in the keys added since (see scanIndex).
// Readers share a sorted index without a lock; one that finds keys added
// since sorts them into a new one.
func (tx *Tx) Scan(cursor uint64, count int) (keys []string, next uint64, err error) {
	if tx.closed {
		return nil, 0, ErrTxClosed
	}
	count = max(count, 1)
	built, added := tx.b.scanEntries(tx.writable)
	b := tx.b
	i := sort.Search(len(built), func(i int) bool { return built[i].Hash >= cursor })
	j := sort.Search(len(added), func(j int) bool { return added[j].Hash >= cursor })
	var prev scanorder.Item
	for first := true; i < len(built) || j < len(added); first = false {
		var e scanorder.Item
		if j == len(added) || (i < len(built) && scanorder.Compare(built[i], added[j]) <= 0) {
			e = built[i]
			i++
		} else {
			e = added[j]
			j++
		}
		if !first && scanorder.Compare(e, prev) == 0 {
			continue // deleted, then added again
		}
		prev = e
		if len(keys) >= count && e.Hash != next-1 {
			return keys, next, nil
		}
		next = e.Hash + 1
		if _, ok := b.data[e.Name]; ok { // else deleted since it was indexed
			keys = append(keys, e.Name)
		}
	}
	return keys, 0, nil
}

// scanEntries returns the keys in scan order, in two sorted parts: from the
// bucket's index, used as it is when it is up to date (readers then share
// it without a lock), or built anew: when there is none, when it holds
// more than twice as many keys as the bucket (most were deleted since), or
// to sort the keys added since. A small bucket's keys are sorted for the
// call and not kept. The caller holds the write lock (writable) or the
// read lock.
func (b *Bucket) scanEntries(writable bool) (built, added []scanorder.Item) {
	if idx := b.scan.Load(); idx.ready(len(b.data)) {
		return idx.built, idx.added
	}
	if !writable {
		b.scanMu.Lock() // readers share the read lock: one builds at a time
		defer b.scanMu.Unlock()
		if idx := b.scan.Load(); idx.ready(len(b.data)) {
			return idx.built, idx.added
		}
	}
	idx := b.scan.Load()
	switch {
	case idx == nil || len(idx.built)+len(idx.added) > 2*len(b.data):
		idx = &scanIndex{built: sortedKeys(b.data)}
	default: // sort what was added since, into a new index: readers may hold the old one
		fresh := sortEntries(slices.Clone(idx.added[idx.sorted:]))
		n := idx.sorted + len(fresh)
		if n >= mergeAt(len(idx.built)) {
			added := mergeEntries(idx.added[:idx.sorted], fresh, n)
			// Of the exact size: nothing is appended to the built keys.
			idx = &scanIndex{built: mergeEntries(idx.built, added, len(idx.built)+n)}
		} else { // with room for the keys added next
			idx = &scanIndex{built: idx.built, added: mergeEntries(idx.added[:idx.sorted], fresh, n+n/4+8)}
		}
	}
	idx.sorted = len(idx.added)
	if len(idx.built)+len(idx.added) >= scanIndexMin {
		b.scan.Store(idx)
	} else {
		b.scan.Store(nil)
	}
	return idx.built, idx.added
}

// ready reports whether idx can serve a Scan of a bucket of n keys as it is.
func (idx *scanIndex) ready(n int) bool {
	return idx != nil && idx.sorted == len(idx.added) && len(idx.built)+len(idx.added) <= 2*n
}

// mergeEntries returns the entries of a and b, both in scan order, in scan
// order, in a new slice of capacity size (at least len(a)+len(b)). An
// entry in both (a key deleted, then added again) is kept twice: a Scan
// skips the second.
func mergeEntries(a, b []scanorder.Item, size int) []scanorder.Item {
	out := make([]scanorder.Item, 0, max(size, len(a)+len(b)))
	for len(a) > 0 && len(b) > 0 {
		if scanorder.Compare(b[0], a[0]) < 0 {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	out = append(out, a...)
	return append(out, b...)
}

// sortedKeys returns the keys of data in scan order.
func sortedKeys(data map[string][]byte) []scanorder.Item {
	entries := make([]scanorder.Item, 0, len(data))
	for k := range data {
		entries = append(entries, scanorder.Of(k))
	}
	return sortEntries(entries)
}

// sortEntries returns entries in scan order, sorting them in place or into
// a new slice. A large set is sorted by hash with a radix sort, 8 bits a
// pass, over hashes and positions (no pointers to move), then the rare
// entries that share a hash by key: several times faster than a comparison
// sort at 100,000 keys.
func sortEntries(entries []scanorder.Item) []scanorder.Item {
	if len(entries) < 256 {
		slices.SortFunc(entries, scanorder.Compare)
		return entries
	}
	type pos struct {
		h uint64
		i uint32
	}
	src, dst := make([]pos, len(entries)), make([]pos, len(entries))
	for i, e := range entries {
		src[i] = pos{e.Hash, uint32(i)}
	}
	for shift := 0; shift < 64; shift += 8 {
		var counts [256]int
		for _, p := range src {
			counts[byte(p.h>>shift)]++
		}
		if counts[byte(src[0].h>>shift)] == len(src) {
			continue // every hash has the same byte here: nothing moves
		}
		at := 0
		for d, n := range counts {
			counts[d] = at
			at += n
		}
		for _, p := range src {
			d := byte(p.h >> shift)
			dst[counts[d]] = p
			counts[d]++
		}
		src, dst = dst, src
	}
	sorted := make([]scanorder.Item, len(entries))
	for i, p := range src {
		sorted[i] = entries[p.i]
	}
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].Hash == sorted[i].Hash {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(sorted[i:j], scanorder.Compare)
		}
		i = j
	}
	return sorted
}
