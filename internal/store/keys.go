package store

import (
	"encoding/binary"
	"fmt"
)

// The key layout. Every pebble key starts with one tag byte:
//
//	0x00 "format"                    meta: the store format version (8 bytes, big-endian; see format.go)
//	0x00 "lastsave"                  meta: the time of the last checkpoint (8 bytes, Unix ns, big-endian)
//	0x01 uvarint(len(name)) name     bucket marker (empty value): the bucket exists
//	0x02 uvarint(len(name)) name key a pair of bucket name (value: the value)
//	0x04 number (8 bytes, big-endian)  a log record: a committed group of
//	                                   writes, not yet folded into the keys above
//	                                   (value: the group's pebble batch)
//
// The length prefix makes the encoded name prefix-free: no bucket's prefix is
// a prefix of another's, whatever bytes the names hold, so a bucket's pairs
// are exactly the keys that start with its prefix. Markers and pairs are
// ordered the same way (by encoded name), which lets one pass over the pairs
// be merged with the list of markers.
const (
	tagMeta   byte = 0x00
	tagBucket byte = 0x01
	tagPair   byte = 0x02
	tagEnd    byte = 0x03 // first byte after every bucket key (markers and pairs)
	tagLog    byte = 0x04
)

var keyLastSave = []byte("\x00lastsave")

// logKey returns the key of log record n.
func logKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagLog}, n)
}

// decodeLogKey returns the number of a log record's key.
func decodeLogKey(k []byte) (uint64, error) {
	if len(k) != 9 || k[0] != tagLog {
		return 0, fmt.Errorf("not a log record key")
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// appendName appends uvarint(len(name)) and name to dst.
func appendName(dst []byte, name string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	return append(dst, name...)
}

// markerKey returns the marker key of bucket name.
func markerKey(name string) []byte {
	return appendName(append(make([]byte, 0, 1+binary.MaxVarintLen64+len(name)), tagBucket), name)
}

// pairPrefix returns the prefix shared by every pair of bucket name.
func pairPrefix(name string) []byte {
	return appendName(append(make([]byte, 0, 1+binary.MaxVarintLen64+len(name)), tagPair), name)
}

// appendPairKey appends the key of (name, key) to dst.
func appendPairKey(dst []byte, name, key string) []byte {
	dst = appendName(append(dst, tagPair), name)
	return append(dst, key...)
}

// prefixEnd returns the smallest key greater than every key that starts with
// p. p must not be all 0xff bytes (kv's keys start with a tag below 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	panic("store: prefixEnd of an all-0xff prefix")
}

// decodeName reads uvarint(len) name from b (after the tag) and returns the
// name and the rest of b. The length must be in its shortest encoding, as
// appendName writes it: a longer one would give one name a second prefix,
// whose pairs no read of the bucket would find.
func decodeName(b []byte) (name, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, nil, fmt.Errorf("bad name length")
	}
	if w != uvarintLen(n) {
		return nil, nil, fmt.Errorf("name length %d in %d bytes, not the %d kv writes", n, w, uvarintLen(n))
	}
	b = b[w:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("name length %d longer than the %d bytes left", n, len(b))
	}
	return b[:n], b[n:], nil
}

// uvarintLen is the length of the shortest uvarint encoding of x.
func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// decodeMarker returns the bucket name of a marker key.
func decodeMarker(k []byte) ([]byte, error) {
	if len(k) == 0 || k[0] != tagBucket {
		return nil, fmt.Errorf("not a bucket marker")
	}
	name, rest, err := decodeName(k[1:])
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d trailing bytes after the bucket name", len(rest))
	}
	return name, nil
}

// decodePair returns the bucket name and the key of a pair key.
func decodePair(k []byte) (name, key []byte, err error) {
	if len(k) == 0 || k[0] != tagPair {
		return nil, nil, fmt.Errorf("not a pair key")
	}
	return decodeName(k[1:])
}
