// Package scanorder is the order in which kv's cursors walk a set of names:
// SCAN over the buckets (package registry) and HSCAN over a bucket's keys
// (package bucket). A name's place is its [Hash], then the name itself; a
// cursor is a hash, so no state is kept between the steps of an iteration,
// and names that come and go do not move the others.
package scanorder

import "cmp"

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
