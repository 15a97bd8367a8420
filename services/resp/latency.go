package resp

import (
	"bytes"
	"context"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// latencyBuckets is how many power-of-two buckets LATENCY HISTOGRAM
// reports, from about 1 µs to about 1 s, as Redis's: Redis records at most
// 1 s (LATENCY_HISTOGRAM_MAX_VALUE), a longer call in its last bucket, and
// so does the last bucket here.
const latencyBuckets = 21

// The layout of a command's latency histogram: Redis's, an HdrHistogram
// (HdrHistogram_c) of 1 ns to 1 s with two significant digits. Values
// from 2^k ns (k >= 8) are counted in 128 sub-buckets of 2^(k-7) ns;
// below 256 ns, to the nanosecond.
const (
	hdrHalfMag   = 7               // log2 of hdrHalf
	hdrHalf      = 1 << hdrHalfMag // sub-buckets in each power of two
	hdrMask      = 2*hdrHalf - 1
	hdrBuckets   = 23 // powers of two until 1e9 ns is covered
	hdrCounts    = (hdrBuckets + 1) * hdrHalf
	hdrHighestNs = int64(time.Second)
)

// latencyHistogram counts a command's calls by latency, as Redis's
// latency tracking does, for LATENCY HISTOGRAM and INFO latencystats: in
// whole microseconds (as Redis times its commands), in the sub-buckets of
// Redis's HdrHistogram, so that a percentile reads as Redis's to the
// nanosecond, and each power-of-two bucket of LATENCY HISTOGRAM is a sum
// of whole sub-buckets (see powers). The counts (24 KiB) are made at a
// command's first call: most commands are never called.
type latencyHistogram struct {
	counts atomic.Pointer[[hdrCounts]atomic.Int64]
}

// record counts one call that ran for d: d in whole microseconds, in
// nanoseconds, between 1 ns and 1 s, as Redis records it.
func (h *latencyHistogram) record(d time.Duration) {
	v := min(max(int64(d/time.Microsecond)*1000, 1), hdrHighestNs)
	counts := h.counts.Load()
	for counts == nil {
		h.counts.CompareAndSwap(nil, new([hdrCounts]atomic.Int64))
		counts = h.counts.Load() // nil again if CONFIG RESETSTAT came between
	}
	counts[hdrIndex(v)].Add(1)
}

// reset empties the histogram (CONFIG RESETSTAT).
func (h *latencyHistogram) reset() { h.counts.Store(nil) }

// snapshot copies the counts into counts (a buffer the caller may use
// for one histogram after another), and returns their sum.
func (h *latencyHistogram) snapshot(counts *[hdrCounts]int64) (calls int64) {
	live := h.counts.Load()
	if live == nil {
		return 0
	}
	for i := range live {
		counts[i] = live[i].Load()
		calls += counts[i]
	}
	return calls
}

// hdrIndex is the index of the sub-bucket that counts v ns (1 <= v <= 1e9).
func hdrIndex(v int64) int {
	bucket := bits.Len64(uint64(v)|hdrMask) - (hdrHalfMag + 1)
	return (bucket+1)<<hdrHalfMag + int(v>>bucket) - hdrHalf
}

// hdrLowest and hdrHighest are the least and the greatest value, in ns,
// that the sub-bucket at index i counts.
func hdrLowest(i int) int64 {
	bucket, sub := i>>hdrHalfMag-1, i&(hdrHalf-1)+hdrHalf
	if bucket < 0 {
		bucket, sub = 0, sub-hdrHalf
	}
	return int64(sub) << bucket
}

func hdrHighest(i int) int64 {
	return hdrLowest(i) + 1<<max(i>>hdrHalfMag-1, 0) - 1
}

// powers returns the calls in each of LATENCY HISTOGRAM's buckets: bucket
// i holds the calls that ran less than 1,032·2^i ns (and at least half
// that), each bound a sub-bucket's bound in Redis's histogram, which
// reports at level 1,024·2^i ns the calls of its sub-bucket that holds
// that level too, up to 1,032·2^i-1: a call of 132,000 ns is in Redis's
// "132" bucket, not its "264".
func powers(counts *[hdrCounts]int64) (out [latencyBuckets]int64) {
	for i, n := range counts {
		if n != 0 {
			out[min(bits.Len64(uint64(hdrLowest(i))/1032), latencyBuckets-1)] += n
		}
	}
	return out
}

// percentile is the latency, in ns, under which p percent of the calls
// counted ran, as Redis's hdr_value_at_percentile answers it for INFO
// latencystats: the greatest value of the sub-bucket where the calls
// counted from the fastest reach p percent of them, rounded to a whole
// call (the least value for p = 0).
func percentile(counts *[hdrCounts]int64, calls int64, p float64) int64 {
	want := max(int64(min(p, 100)/100*float64(calls)+0.5), 1)
	var seen int64
	for i, n := range counts {
		if seen += n; seen >= want {
			if p == 0 {
				return hdrLowest(i)
			}
			return hdrHighest(i)
		}
	}
	return 0
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
	counts := new([hdrCounts]int64)
	for _, e := range entries {
		if calls := e.st.latency.snapshot(counts); calls > 0 {
			rows = append(rows, row{name: e.name, counts: powers(counts), calls: calls})
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

// latencyStats is INFO's Latencystats section, in Redis's format: for each
// command and subcommand called since the start (or CONFIG RESETSTAT),
// the latency in microseconds under which each percentile of
// latency-tracking-info-percentiles of its calls ran, as Redis computes it
// from the same histogram (see percentile).
func (s *Server) latencyStats() []string {
	ps := *s.percentiles.Load()
	var lines []string
	counts := new([hdrCounts]int64)
	add := func(name string, st *cmdStats) {
		calls := st.latency.snapshot(counts)
		if calls == 0 {
			return
		}
		b := append([]byte("latency_percentiles_usec_"), name...)
		b = append(b, ':')
		for i, p := range ps {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, 'p')
			b = appendPercentile(b, p)
			b = append(b, '=')
			b = strconv.AppendFloat(b, float64(percentile(counts, calls, p))/1000, 'f', 3, 64)
		}
		lines = append(lines, string(b))
	}
	for _, cmd := range s.cmds {
		cmd.eachStats(add)
	}
	slices.Sort(lines)
	return lines
}

// appendPercentile appends p as Redis writes a percentile: printf's %f,
// its trailing zeros (and point) trimmed: 50, 99.9, 33.333333.
func appendPercentile(b []byte, p float64) []byte {
	n := len(b)
	b = strconv.AppendFloat(b, p, 'f', 6, 64)
	kept := bytes.TrimSuffix(bytes.TrimRight(b[n:], "0"), []byte("."))
	return b[:n+len(kept)]
}

// formatPercentiles is latency-tracking-info-percentiles as CONFIG GET
// answers it: "50 99 99.9".
func formatPercentiles(ps []float64) string {
	var b []byte
	for i, p := range ps {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendPercentile(b, p)
	}
	return string(b)
}

// parsePercentiles reads a value of latency-tracking-info-percentiles as
// Redis 7 does: percentiles separated by single spaces, each a float as
// Redis reads one there (strtod: 99.9, 1e1, 0x10) from 0 to 100; "" for
// none. A bad value returns Redis's words for it.
func parsePercentiles(value []byte) (ps []float64, why string) {
	ps = []float64{}
	if len(value) == 0 {
		return ps, ""
	}
	for _, field := range bytes.Split(value, []byte(" ")) {
		p, ok := parseDouble(field)
		if !ok {
			return nil, "Invalid latency-tracking-info-percentiles parameters"
		}
		if p < 0 || p > 100 {
			return nil, "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
		}
		ps = append(ps, p)
	}
	return ps, ""
}
