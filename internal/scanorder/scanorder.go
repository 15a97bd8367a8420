// Package scanorder is the order in which kv's cursors walk a set of names:
// SCAN over the buckets (package registry) and HSCAN over a bucket's keys
// (package bucket). A name's place is its [Hash], then the name itself; a
// cursor is a hash, so no state is kept between the steps of an iteration,
// and names that come and go do not move the others.
package scanorder

import (
	"cmp"
	"fmt"
)

// Hash is a name's position in the scan order: its 64-bit FNV-1a hash.
func Hash(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(name) {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return h
}

// Item is a name at its place in the scan order.
type Item struct {
	Hash uint64
	Name string
}

// Of returns name's Item.
func Of(name string) Item { return Item{Hash(name), name} }

// Compare orders Items: by Hash, then by Name.
func Compare(a, b Item) int {
	if a.Hash != b.Hash {
		return cmp.Compare(a.Hash, b.Hash)
	}
	return cmp.Compare(a.Name, b.Name)
}

// CheckStep reports what is wrong, if anything, with one step of an
// iteration that began its step at cursor and handed out next: each name
// of page must be at or past cursor, before next (unless next is 0, the
// end), and after the name before it; and next must move forward. It is
// for tests of the iterations: a step that breaks it breaks SCAN's
// promise that a full iteration returns each name present throughout.
func CheckStep(page []string, cursor, next uint64) error {
	var prev Item
	for i, name := range page {
		it := Of(name)
		switch {
		case it.Hash < cursor:
			return fmt.Errorf("%q is before the cursor %d", name, cursor)
		case next != 0 && it.Hash >= next:
			return fmt.Errorf("%q is at or past the next cursor %d", name, next)
		case i > 0 && Compare(prev, it) >= 0:
			return fmt.Errorf("%q comes after %q in the page, not before", prev.Name, name)
		}
		prev = it
	}
	if next != 0 && next <= cursor {
		return fmt.Errorf("the cursor went from %d back to %d", cursor, next)
	}
	return nil
}
