package resp

import (
	"context"
	"strconv"

	"github.com/kvproject/kv/bucket"
)

// watchedKeySize is what a watched key keeps besides its name: the map
// entry's key header and value.
const watchedKeySize = 16 + 16

// watchedKey is what a key was when the client watched it: the bucket
// that held it (nil: none) and that bucket's version then, or, for a
// missing key, the registry's Births of its name, read before the lookup
// (a bucket made and gone again before EXEC changes it).
type watchedKey struct {
	b       *bucket.Bucket
	version uint64 // b's Version, or the name's Births when b is nil
}

// watchSet is a client's WATCH: the keys EXEC checks before it runs a
// transaction.
type watchSet struct {
	keys  map[string]watchedKey
	bytes int // the names' bytes and watchedKeySize per key
}

// watch remembers what each key is now, for EXEC (WATCH). A key is a
// bucket: any write that changes its pairs, its deletion, its creation, a
// RENAME onto it or away from it, a FLUSHALL that found it, or the end of
// its bucket by a crash (even when a durable bucket comes back whole) make
// the next EXEC fail. Redis watches more coarsely still (any write command
// on the key); a false alarm costs the client a retry, never a lost
// update. What a client watches is bounded by MaxRequestBytes.
func (s *Server) watch(ctx context.Context, c *conn, args [][]byte) {
	if c.multi != nil {
		c.err("ERR WATCH inside MULTI is not allowed")
		return
	}
	if c.watches == nil {
		c.watches = &watchSet{keys: make(map[string]watchedKey)}
	}
	w := c.watches
	for _, name := range args[1:] {
		if _, ok := w.keys[string(name)]; ok {
			continue // the first WATCH of a key stands, as in Redis
		}
		if w.bytes+len(name)+watchedKeySize > s.cfg.MaxRequestBytes {
			c.err("ERR too many watched keys: their names pass " + strconv.Itoa(s.cfg.MaxRequestBytes) + " bytes")
			return
		}
		births := s.reg.Births(str(name)) // before the lookup: see watchedKey
		b, ok := s.live(ctx, c, name)
		if !ok {
			return // the keys before this one stay watched
		}
		k := watchedKey{b: b, version: births}
		if b != nil {
			// An error means b ended just now: EXEC sees it ended,
			// which fails it, as a key changed after WATCH does.
			k.version, _ = b.Version()
		}
		w.keys[string(name)] = k
		w.bytes += len(name) + watchedKeySize
	}
	c.simple("OK")
}

// unwatch forgets the watched keys (UNWATCH).
func (s *Server) unwatch(_ context.Context, c *conn, _ [][]byte) {
	c.watches = nil
	c.simple("OK")
}

// watchedChanged reports whether a key the client watches is no longer
// what it was when watched: another bucket, or none, or the same one
// ended or changed since. A key that cannot be looked up (the store
// cannot be read) counts as changed. EXEC calls it with every other Redis
// client's commands held off (Server.tx, which the other front ends share).
func (s *Server) watchedChanged(c *conn) bool {
	if c.watches == nil {
		return false
	}
	for name, k := range c.watches.keys {
		births := s.reg.Births(name)
		b, found, err := s.reg.LookupErr(name)
		switch {
		case err != nil, found != (k.b != nil), b != k.b:
			return true
		case b == nil:
			if births != k.version {
				return true // absent then and now, but made meanwhile
			}
			continue // absent then and now, and not in between
		}
		if v, err := b.Version(); err != nil || v != k.version {
			return true
		}
	}
	return false
}
