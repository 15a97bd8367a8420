package resp

import (
	"context"
	"math/bits"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// latencyBuckets is how many power-of-two buckets a command's latency
// histogram has, from about 1 µs to about 1 s, as Redis's: Redis records
// at most 1 s (LATENCY_HISTOGRAM_MAX_VALUE), a longer call in its last
// bucket, and so does the last bucket here.
const latencyBuckets = 21

// latencyHistogram counts a command's calls by latency, as Redis's
// latency tracking does for LATENCY HISTOGRAM: bucket i holds the calls
// that ran less than 1,032·2^i ns (and at least half that). Redis's HDR
// histogram (two significant digits) reports at level 1,024·2^i ns the
// calls of its sub-bucket that holds that level too, up to 1,032·2^i-1:
// a call of 132,000 ns is in Redis's "132" bucket, not its "264".
type latencyHistogram [latencyBuckets]atomic.Int64

// record counts one call that ran for d, in whole microseconds as Redis
// times its commands (it records d·1,000 ns).
func (h *latencyHistogram) record(d time.Duration) {
	i := 0
	if d > 0 {
		i = min(bits.Len64(uint64(d.Truncate(time.Microsecond))/1032), latencyBuckets-1)
	}
	h[i].Add(1)
}

// reset empties the histogram (CONFIG RESETSTAT).
func (h *latencyHistogram) reset() {
	for i := range h {
		h[i].Store(0)
	}
}

// bucketMicros is bucket i's bound as Redis reports it: the highest
// value its HDR histogram (two significant digits) takes as equal to
// 1,024·2^i ns, in whole microseconds (1, 2, 4, 8, 16, 33, 66, 132...);
// the last one's is that of the highest value Redis's histogram holds
// (2^30-1 ns), where its calls of 541 ms to 1 s and longer are.
func bucketMicros(i int) int64 {
	if i == latencyBuckets-1 {
		return (1<<30 - 1) / 1000
	}
	ns := int64(1024) << i
	return (ns + ns/128 - 1) / 1000
}

// latency serves LATENCY: HISTOGRAM [command ...], each command's calls
// by latency in power-of-two buckets, cumulative, as Redis 7 answers it
// (a map of command name to calls and histogram_usec; kept when the
// server has an Observer, which times the commands, as the slow log is).
// Redis's latency monitor (events past latency-monitor-threshold) is off,
// as it is by default in Redis: LATEST and HISTORY answer no samples,
// RESET resets none, GRAPH has none to draw, and DOCTOR says so.
func (s *Server) latency(_ context.Context, c *conn, args [][]byte) {
	switch strings.ToLower(string(args[1])) {
	case "histogram":
		s.latencyHistogram(c, args[2:])
	case "latest", "history": // no samples: the monitor is off
		c.array(0)
	case "reset":
		c.integer(0)
	case "graph":
		c.err("ERR No samples available for event '" + clip(args[2]) + "'")
	case "doctor":
		c.verbatim("Latency monitoring is not available in kv, as in Redis with latency-monitor-threshold 0. " +
			"LATENCY HISTOGRAM gives each command's calls by latency, INFO commandstats their mean, " +
			"and SLOWLOG GET the slowest ones.\n")
	case "help":
		c.help([]string{
			"LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"DOCTOR",
			"    Return a human readable latency analysis report.",
			"GRAPH <event>",
			"    Return an ASCII latency graph for the <event> class.",
			"HISTORY <event>",
			"    Return time-latency samples for the <event> class.",
			"LATEST",
			"    Return the latest latency samples for all events.",
			"RESET [<event> ...]",
			"    Reset latency data of one or more <event> classes.",
			"    (default: reset all data for all event classes)",
			"HISTOGRAM [COMMAND ...]",
			"    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
			"    If no commands are specified then all histograms are replied.",
			"HELP",
			"    Prints this help.",
		})
	}
}

// latencyHistogram answers LATENCY HISTOGRAM for the commands named, in
// the order given, each once (a command with subcommands stands for each
// of them, "client|id" for one; unknown names and what was never called
// are left out, as Redis does), or for every command and subcommand
// called, by name.
func (s *Server) latencyHistogram(c *conn, names [][]byte) {
	type entry struct {
		name string
		st   *cmdStats
	}
	var entries []entry
	seen := make(map[*cmdStats]bool)
	add := func(name string, st *cmdStats) {
		if !seen[st] {
			seen[st] = true
			entries = append(entries, entry{name, st})
		}
	}
	if len(names) == 0 {
		for _, cmd := range s.cmds {
			cmd.eachStats(add)
		}
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	}
	for _, n := range names {
		parent, sub, isSub := strings.Cut(strings.ToLower(string(n)), "|")
		cmd := s.lookup([]byte(parent))
		switch {
		case cmd == nil:
		case !isSub:
			cmd.eachStats(add)
		default:
			if i := cmd.subIndex([]byte(sub)); i >= 0 {
				add(cmd.subNames[i], &cmd.subStats[i])
			}
		}
	}
	type row struct {
		name   string
		counts [latencyBuckets]int64
		calls  int64
	}
	var rows []row
	for _, e := range entries {
		r := row{name: e.name}
		for i := range e.st.latency {
			r.counts[i] = e.st.latency[i].Load()
			r.calls += r.counts[i]
		}
		if r.calls > 0 {
			rows = append(rows, r)
		}
	}
	c.mapLen(len(rows))
	for _, r := range rows {
		c.bulkString(r.name)
		c.mapLen(2)
		c.bulkString("calls")
		c.integer(r.calls)
		c.bulkString("histogram_usec")
		used := 0
		for _, n := range r.counts {
			if n > 0 {
				used++
			}
		}
		c.mapLen(used)
		var cumulative int64
		for i, n := range r.counts {
			if n == 0 {
				continue
			}
			cumulative += n
			c.integer(bucketMicros(i))
			c.integer(cumulative)
		}
	}
}
