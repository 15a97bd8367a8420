package registry

import (
	"cmp"
	"container/heap"
	"slices"

	"github.com/google/btree"

	"github.com/kvproject/kv/internal/scanorder"
)

// Scan order. Scan walks the names in an order fixed by the names
// themselves: their [ScanHash], then the name. A cursor is a position in
// that order; no state is kept between calls, and names that come and go do
// not move the others, so a name present for the whole iteration is
// returned exactly once (Redis's SCAN promises at least once).

// ScanHash is a name's position in the scan order: its 64-bit FNV-1a hash.
// HSCAN walks a bucket's keys in the same order (see [bucket.Tx.Scan]).
func ScanHash(name string) uint64 { return scanorder.Hash(name) }

// newOrder returns an empty ordered index of names.
func newOrder() *btree.BTreeG[scanorder.Item] {
	return btree.NewG(32, func(a, b scanorder.Item) bool { return scanorder.Compare(a, b) < 0 })
}

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
	r.order.AscendGreaterOrEqual(scanorder.Item{Hash: cursor}, func(it scanorder.Item) bool {
		if len(names) >= count && it.Hash != next-1 {
			more = true
			return false
		}
		names = append(names, it.Name)
		next = it.Hash + 1
		return true
	})
	if !more {
		next = 0
	}
	return names, next, nil
}

// ScanPage is one Scan step over an explicit set of keys, in the same
// order: the keys from cursor on (count of them, unless fewer remain, and
// every key that shares a hash with one of them) and the next cursor, 0
// once the iteration is over. It costs O(n log count) (see ScanSelector).
func ScanPage(keys []string, cursor uint64, count int) (page []string, next uint64) {
	sel := NewScanSelector(cursor, count)
	for _, k := range keys {
		sel.Offer(k)
	}
	return sel.Page()
}

// ScanSelector cuts one Scan step's page from keys offered one at a time,
// keeping only the page: O(log count) per key and O(count) memory, so that
// a step over a large set (SCAN without the registry's index) neither copies nor sorts
// it. The zero value is not usable; make one with NewScanSelector.
type ScanSelector struct {
	cursor  uint64
	count   int
	groups  scanHeap              // the smallest hashes >= cursor seen, largest on top
	byHash  map[uint64]*scanGroup // the same groups, by hash
	offered int                   // keys >= cursor offered
	kept    int                   // keys in groups
}

// scanGroup is the keys that share one hash.
type scanGroup struct {
	h    uint64
	keys []string
}

// scanHeap is a max-heap of groups by hash.
type scanHeap []*scanGroup

func (h scanHeap) Len() int           { return len(h) }
func (h scanHeap) Less(i, j int) bool { return h[i].h > h[j].h }
func (h scanHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *scanHeap) Push(x any)        { *h = append(*h, x.(*scanGroup)) }
func (h *scanHeap) Pop() any {
	old := *h
	g := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return g
}

// NewScanSelector returns a selector for the step from cursor with COUNT
// count (below 1 means 1).
func NewScanSelector(cursor uint64, count int) *ScanSelector {
	count = max(count, 1)
	return &ScanSelector{cursor: cursor, count: count, byHash: make(map[uint64]*scanGroup, min(count, 1024))}
}

// Offer considers key for the page. The caller keeps key valid until Page
// returns (a string is, unless built on a reused buffer).
func (s *ScanSelector) Offer(key string) {
	h := ScanHash(key)
	if h < s.cursor {
		return
	}
	s.offered++
	if g := s.byHash[h]; g != nil {
		g.keys = append(g.keys, key)
		s.kept++
		return
	}
	if len(s.groups) == s.count {
		if h > s.groups[0].h {
			return // past the page
		}
		top := heap.Pop(&s.groups).(*scanGroup)
		delete(s.byHash, top.h)
		s.kept -= len(top.keys)
	}
	g := &scanGroup{h: h, keys: []string{key}}
	heap.Push(&s.groups, g)
	s.byHash[h] = g
	s.kept++
}

// Page returns the page, in scan order, and the next cursor (0 once no key
// past the page was offered).
func (s *ScanSelector) Page() (page []string, next uint64) {
	groups := slices.Clone([]*scanGroup(s.groups))
	slices.SortFunc(groups, func(a, b *scanGroup) int { return cmp.Compare(a.h, b.h) })
	page = make([]string, 0, s.kept)
	for _, g := range groups {
		slices.Sort(g.keys)
		page = append(page, g.keys...)
	}
	if s.offered == s.kept || len(groups) == 0 {
		return page, 0
	}
	return page, groups[len(groups)-1].h + 1 // cannot wrap: a larger hash was offered
}
