package main

import (
	"fmt"
	"math"
	"math/bits"
)

// File descriptors kv keeps for itself out of the open-file limit, besides
// its clients': its listeners, epoll, standard streams, a client's second
// descriptor while it is served on a goroutine of its own (SAVE, a
// blocking command), as Redis keeps 32 (CONFIG_MIN_RESERVED_FDS).
const reservedFiles = 32

// Files the durable store may keep open: pebble's default MaxOpenFiles,
// and the fewest it is given when the limit is short.
const (
	storeFiles    = 1000
	minStoreFiles = 64
)

// fitOpenFiles fits o's connection caps, and the store's open files, into
// limit, the process's open-file limit (0: unknown, no fitting). Without
// it, clients up to the caps take every descriptor: then the store cannot
// open a file (a flush, a compaction, a checkpoint: SAVE's client is
// disconnected), and every listener fails to accept. As Redis does with
// maxclients, it lowers the caps, with a warning for each, and reports an
// error when not even one client per front end fits. It returns the files
// the store may keep open (0 in memory: there is no store).
func fitOpenFiles(o *options, limit uint64) (storeMax int, warnings []string, err error) {
	if !o.inMemory {
		storeMax = storeFiles
	}
	type connCap struct {
		flag string
		n    *int
	}
	caps := []connCap{{"max-clients", &o.maxClients}}
	if o.textAddr != "" {
		caps = append(caps, connCap{"text-max-clients", &o.textMaxClients})
	}
	if o.httpAddr != "" {
		caps = append(caps, connCap{"http-max-conns", &o.httpMaxConns})
	}
	// No limit Linux allows is above MaxInt32 (nr_open): one above is
	// as good as none. A cap above the limit counts as the limit, so that
	// neither the sum nor the scaling below wraps around.
	if limit > math.MaxInt32 {
		limit = 0
	}
	// conns, the caps cut to the limit, is what the fitting below shares
	// out; want, the caps as configured, is the limit the messages ask
	// for, which holds them all (saturated: caps near MaxInt64 must not
	// wrap around to a small figure).
	var conns uint64
	want := uint64(storeMax) + reservedFiles
	for _, c := range caps {
		conns += min(uint64(*c.n), limit)
		if sum, carry := bits.Add64(want, uint64(*c.n), 0); carry == 0 {
			want = sum
		} else {
			want = math.MaxUint64
		}
	}
	need := conns + uint64(storeMax) + reservedFiles
	if limit == 0 || limit >= need {
		o.maxClientsCeiling = ceiling(o, limit, storeMax)
		return storeMax, nil, nil
	}
	if !o.inMemory {
		// The store gets a quarter of a short limit, within its bounds.
		storeMax = min(storeFiles, max(minStoreFiles, int(limit/4)))
	}
	// What kv keeps for itself, in the words of its messages.
	itself := "itself and its store"
	if o.inMemory {
		itself = "itself"
	}
	least := uint64(storeMax) + reservedFiles + uint64(len(caps))
	if limit < least {
		return 0, nil, fmt.Errorf("the open-file limit (ulimit -n) of %d is too low for kv, which needs at least %d (%d for %s, and a client per front end); "+
			"raise it (ulimit -n, or LimitNOFILE for systemd) to %d for the configured caps", limit, least, least-uint64(len(caps)), itself, want)
	}
	budget := limit - uint64(storeMax) - reservedFiles
	for _, c := range caps {
		was := *c.n
		*c.n = max(1, int(min(uint64(was), limit)*budget/conns))
		if *c.n < was {
			warnings = append(warnings, fmt.Sprintf("kv: lowered --%s from %d to %d: the open-file limit (ulimit -n) is %d, and kv keeps %d files for %s; "+
				"raise the limit (ulimit -n, or LimitNOFILE for systemd) to %d for the configured caps", c.flag, was, *c.n, limit, uint64(storeMax)+reservedFiles, itself, want))
		}
	}
	o.maxClientsCeiling = ceiling(o, limit, storeMax) // of the caps as lowered
	return storeMax, warnings, nil
}

// ceiling returns the most Redis clients the open-file limit leaves room
// for once kv, its store and the other front ends' caps have theirs: what
// CONFIG SET maxclients may raise --max-clients to (0: no limit known).
func ceiling(o *options, limit uint64, storeMax int) int {
	if limit == 0 {
		return 0
	}
	others := uint64(storeMax) + reservedFiles
	if o.textAddr != "" {
		others += uint64(o.textMaxClients)
	}
	if o.httpAddr != "" {
		others += uint64(o.httpMaxConns)
	}
	if limit <= others {
		return max(1, o.maxClients)
	}
	return max(o.maxClients, int(min(limit-others, math.MaxInt32)))
}
