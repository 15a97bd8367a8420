package registry

import (
	"cmp"
	"slices"

	"github.com/google/btree"
)

// Scan order. Scan walks the names in an order fixed by the names
// themselves: their [ScanHash], then the name. A cursor is a position in
// that order; no state is kept between calls, and names that come and go do
// not move the others, so a name present for the whole iteration is
// returned exactly once (Redis's SCAN promises at least once).

// ScanHash is a name's position in the scan order: its 64-bit FNV-1a hash.
func ScanHash(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(name) {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return h
}

// scanItem is a name with its ScanHash, as the ordered index keeps it.
type scanItem struct {
	h    uint64
	name string
}

func scanLess(a, b scanItem) bool {
	if a.h != b.h {
		return a.h < b.h
	}
	return a.name < b.name
}

// newOrder returns an empty ordered index of names.
func newOrder() *btree.BTreeG[scanItem] { return btree.NewG(32, scanLess) }

// Scan returns the names of the buckets from cursor on in the scan order,
// at least count of them unless fewer remain (more only when names share a
// hash: they are never split between pages), and the cursor of the next
// page, 0 once the iteration is over; start with cursor 0. It sees the same
// buckets as Names. A step costs O(log n + count), except with a store
// whose names could not be listed at New, where it reads them all.
func (r *Registry) Scan(cursor uint64, count int) (names []string, next uint64, err error) {
	count = max(count, 1)
	r.mu.RLock()
	if r.order == nil {
		r.mu.RUnlock()
		all, err := r.NamesErr()
		if err != nil {
			return nil, 0, err
		}
		names, next = ScanPage(all, cursor, count)
		return names, next, nil
	}
	defer r.mu.RUnlock()
	more := false
	r.order.AscendGreaterOrEqual(scanItem{h: cursor}, func(it scanItem) bool {
		if len(names) >= count && it.h != next-1 {
			more = true
			return false
		}
		names = append(names, it.name)
		next = it.h + 1
		return true
	})
	if !more {
		next = 0
	}
	return names, next, nil
}

// ScanPage is one Scan step over an explicit set of keys, in the same
// order: the keys from cursor on (at least count, unless fewer remain;
// keys that share a hash are returned together) and the next cursor, 0 once
// the iteration is over. It sorts the keys it could return: O(n log n).
func ScanPage(keys []string, cursor uint64, count int) (page []string, next uint64) {
	count = max(count, 1)
	var rest []scanItem
	for _, k := range keys {
		if h := ScanHash(k); h >= cursor {
			rest = append(rest, scanItem{h, k})
		}
	}
	slices.SortFunc(rest, func(a, b scanItem) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	n := min(count, len(rest))
	for n < len(rest) && rest[n].h == rest[n-1].h {
		n++ // never split keys that share a hash
	}
	page = make([]string, n)
	for i := range n {
		page[i] = rest[i].name
	}
	if n == len(rest) {
		return page, 0
	}
	return page, rest[n-1].h + 1 // cannot wrap: a larger hash follows
}
