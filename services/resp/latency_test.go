package resp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A call counts in the first power-of-two bucket from 1,024 ns that holds
// its latency, reported as Redis reports its buckets (1, 2, 4, 8, 16, 33,
// 66 µs... as redis-server 7.0.15 answers).
func TestLatencyHistogramBuckets(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		bucket int
	}{
		{0, 0}, {1, 0}, {1024, 0}, {1999, 0}, {2000, 1}, {2048, 1}, {3000, 2}, {8 * time.Microsecond, 3},
		{time.Millisecond, 10}, {time.Second, 20}, {30 * 24 * time.Hour, latencyBuckets - 1},
	} {
		var h latencyHistogram
		h.record(tc.d)
		counts := new([hdrCounts]int64)
		require.Equal(t, int64(1), h.snapshot(counts))
		assert.Equal(t, int64(1), powers(counts)[tc.bucket], "%v", tc.d)
	}
	var bounds []int64
	for i := range 7 {
		bounds = append(bounds, bucketMicros(i))
	}
	assert.Equal(t, []int64{1, 2, 4, 8, 16, 33, 66}, bounds)
	assert.Equal(t, int64(1056), bucketMicros(10))
}

// A call lands in the bucket Redis 7.0.15 reports it in: its HDR
// histogram counts at each power-of-two level the sub-bucket that holds
// the level (up to 1,032·2^i-1 ns: 132 µs is in its 132 bucket), and
// records at most 1 s, reported as 1073741 (DEBUG SLEEP 0.0009, 0.3 and
// 1.5 answer 1056, 541065 and 1073741 there).
func TestLatencyHistogramBucketsAsRedis(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		time.Microsecond:        1,
		1500:                    1, // Redis times in whole microseconds
		2 * time.Microsecond:    2,
		3 * time.Microsecond:    4,
		33 * time.Microsecond:   33,
		66 * time.Microsecond:   66,
		132 * time.Microsecond:  132,
		132500:                  132,
		264 * time.Microsecond:  264,
		900 * time.Microsecond:  1056,
		1050 * time.Microsecond: 1056,
		300 * time.Millisecond:  541065,
		541 * time.Millisecond:  541065,
		600 * time.Millisecond:  1073741,
		1500 * time.Millisecond: 1073741,
		time.Hour:               1073741,
	} {
		var h latencyHistogram
		h.record(d)
		counts := new([hdrCounts]int64)
		h.snapshot(counts)
		got := int64(-1)
		for i, n := range powers(counts) {
			if n == 1 {
				got = bucketMicros(i)
			}
		}
		assert.Equal(t, want, got, "%v", d)
	}
}

// LATENCY HISTOGRAM answers each command's calls by latency, cumulative,
// in Redis 7's shape; CONFIG RESETSTAT empties it; the latency monitor's
// subcommands answer as Redis's with the monitor off.
func TestLatencyCommand(t *testing.T) {
	ctx := context.Background()
	rc := start(t, Config{Observer: discardObserver{}}).client(t)
	require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())
	for range 3 {
		require.NoError(t, rc.HGet(ctx, "h", "f").Err())
	}
	got, err := rc.Do(ctx, "LATENCY", "HISTOGRAM", "hget", "nosuch", "HSET", "hget").Slice()
	require.NoError(t, err)
	require.Len(t, got, 4, "hget and hset, each once, in the order asked; nosuch left out")
	assert.Equal(t, "hget", got[0])
	assert.Equal(t, "hset", got[2])
	for i, calls := range map[int]int64{1: 3, 3: 1} {
		h := got[i].([]any)
		require.Len(t, h, 4)
		assert.Equal(t, []any{"calls", calls}, h[:2])
		assert.Equal(t, "histogram_usec", h[2])
		buckets := h[3].([]any)
		require.NotEmpty(t, buckets)
		require.Zero(t, len(buckets)%2)
		var bound, cumulative int64
		for j := 0; j < len(buckets); j += 2 {
			b, n := buckets[j].(int64), buckets[j+1].(int64)
			assert.Greater(t, b, bound, "the bounds grow")
			assert.Greater(t, n, cumulative, "only buckets that hold calls, counted cumulatively")
			bound, cumulative = b, n
		}
		assert.Equal(t, calls, cumulative)
	}
	all, err := rc.Do(ctx, "LATENCY", "HISTOGRAM").Slice()
	require.NoError(t, err)
	names := []any{}
	for i := 0; i < len(all); i += 2 {
		names = append(names, all[i])
	}
	assert.Subset(t, names, []any{"hget", "hset", "latency|histogram"}, "subcommands by their own names, as Redis 7")

	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	got, err = rc.Do(ctx, "LATENCY", "HISTOGRAM", "hget").Slice()
	require.NoError(t, err)
	assert.Empty(t, got, "CONFIG RESETSTAT empties the histograms")
	assert.Equal(t, map[string]string{"latency-monitor-threshold": "0", "latency-tracking": "yes",
		"latency-tracking-info-percentiles": "50 99 99.9"}, rc.ConfigGet(ctx, "latency-*").Val())

	for _, tc := range []struct {
		args []any
		want any
	}{
		{[]any{"LATENCY", "LATEST"}, []any{}},
		{[]any{"LATENCY", "HISTORY", "command"}, []any{}},
		{[]any{"LATENCY", "RESET"}, int64(0)},
		{[]any{"LATENCY", "RESET", "command", "fork"}, int64(0)},
	} {
		v, err := rc.Do(ctx, tc.args...).Result()
		require.NoError(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, v, "%v", tc.args)
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"LATENCY", "GRAPH", "command"}, "ERR No samples available for event 'command'"},
		{[]any{"LATENCY"}, "ERR wrong number of arguments for 'latency' command"},
		{[]any{"LATENCY", "bogus"}, "ERR unknown subcommand 'bogus'. Try LATENCY HELP."},
		{[]any{"LATENCY", "LATEST", "x"}, "ERR wrong number of arguments for 'latency|latest' command"},
	} {
		assert.EqualError(t, rc.Do(ctx, tc.args...).Err(), tc.want, "%v", tc.args)
	}
	doctor, err := rc.Do(ctx, "LATENCY", "DOCTOR").Text()
	require.NoError(t, err)
	assert.Contains(t, doctor, "LATENCY HISTOGRAM")
	help, err := rc.Do(ctx, "LATENCY", "HELP").StringSlice()
	require.NoError(t, err)
	assert.Contains(t, help, "HISTOGRAM [COMMAND ...]")

	// In RESP3, maps.
	ts := start(t, Config{Observer: discardObserver{}})
	r := ts.raw(t)
	r.hello3()
	r.send("PING\r\nLATENCY HISTOGRAM ping\r\n")
	r.expect("+PONG", "%1", "$4", "ping", "%2", "$5", "calls", ":1", "$14", "histogram_usec", "%1")

	// Without an Observer no command is timed: no histograms.
	plain := start(t, Config{}).client(t)
	require.NoError(t, plain.Ping(ctx).Err())
	got, err = plain.Do(ctx, "LATENCY", "HISTOGRAM").Slice()
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Equal(t, map[string]string{"latency-tracking": "no"}, plain.ConfigGet(ctx, "latency-tracking").Val())
}

// A percentile reads as Redis 7.0.15's INFO latencystats gives it for the
// same calls, to the nanosecond: the greatest value of the sub-bucket of
// its HdrHistogram (1 ns to 1 s, two significant digits) where the calls
// reach the percentile (the least for p0). The expected figures are
// redis-server's, for single calls and for pairs of calls of INFO (190
// and 448 µs: p50=190.463,p90=448.511).
func TestLatencyPercentilesAsRedis(t *testing.T) {
	for _, tc := range []struct {
		calls []time.Duration
		p     float64
		want  int64 // ns
	}{
		{[]time.Duration{9 * time.Microsecond}, 50, 9023},
		{[]time.Duration{9 * time.Microsecond}, 0, 8960},
		{[]time.Duration{9*time.Microsecond + 999}, 99.9, 9023}, // whole microseconds
		{[]time.Duration{42 * time.Microsecond}, 50, 42239},
		{[]time.Duration{42 * time.Microsecond}, 0, 41984},
		{[]time.Duration{114 * time.Microsecond}, 99.99, 114175},
		{[]time.Duration{114 * time.Microsecond}, 0, 113664},
		{[]time.Duration{190 * time.Microsecond, 448 * time.Microsecond}, 50, 190463},
		{[]time.Duration{190 * time.Microsecond, 448 * time.Microsecond}, 90, 448511},
		{[]time.Duration{190 * time.Microsecond, 448 * time.Microsecond}, 33.333333, 190463},
		{[]time.Duration{190 * time.Microsecond, 448 * time.Microsecond}, 0, 189440},
		{[]time.Duration{24 * time.Microsecond, 40 * time.Microsecond}, 90, 40191},
		// Under a microsecond, Redis records its least value, 1 ns; past
		// 1 s, 1 s.
		{[]time.Duration{500}, 50, 1},
		{[]time.Duration{time.Hour}, 50, 1002438655},
		{[]time.Duration{time.Hour}, 0, 998244352},
		// Rounded to a whole call: of 4 calls, p60 is the 2nd (2.4+0.5).
		{[]time.Duration{1 * time.Microsecond, 2 * time.Microsecond, 3 * time.Microsecond, 4 * time.Microsecond}, 60, 2007}, // Redis: ping p50=2.007
		{[]time.Duration{1 * time.Microsecond, 2 * time.Microsecond, 3 * time.Microsecond, 4 * time.Microsecond}, 65, 3007},
		{[]time.Duration{1 * time.Microsecond, 2 * time.Microsecond, 3 * time.Microsecond, 4 * time.Microsecond}, 100, 4015},
	} {
		var h latencyHistogram
		for _, d := range tc.calls {
			h.record(d)
		}
		counts := new([hdrCounts]int64)
		calls := h.snapshot(counts)
		require.Equal(t, int64(len(tc.calls)), calls)
		assert.Equal(t, tc.want, percentile(counts, calls, tc.p), "p%v of %v", tc.p, tc.calls)
	}
}

// Every value from 1 ns to 1 s lands in a sub-bucket whose bounds hold it,
// and the sub-buckets follow one another without a gap.
func TestLatencySubBuckets(t *testing.T) {
	for v := int64(1); v <= hdrHighestNs; v += 1 + v/97 {
		i := hdrIndex(v)
		require.True(t, i >= 0 && i < hdrCounts, "%d: index %d", v, i)
		require.True(t, hdrLowest(i) <= v && v <= hdrHighest(i), "%d in [%d, %d]", v, hdrLowest(i), hdrHighest(i))
	}
	for i := 1; i <= hdrIndex(hdrHighestNs); i++ {
		require.Equal(t, hdrHighest(i-1)+1, hdrLowest(i), "index %d", i)
	}
}

// INFO latencystats gives each command's percentiles in Redis's format,
// only when asked for (or with all, everything), after Errorstats;
// latency-tracking-info-percentiles chooses them, read and refused as
// Redis 7 reads and refuses them; CONFIG RESETSTAT empties the section.
func TestInfoLatencyStats(t *testing.T) {
	ctx := context.Background()
	rc := start(t, Config{Observer: discardObserver{}}).client(t)
	require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())
	require.NoError(t, rc.HGet(ctx, "h", "f").Err())
	require.NoError(t, rc.ConfigGet(ctx, "maxclients").Err())

	value := `\d+\.\d{3}`
	info := rc.Info(ctx, "latencystats").Val()
	assert.Regexp(t, `(?m)^# Latencystats\r$`, info)
	for _, name := range []string{"hset", "hget", `config\|get`} {
		assert.Regexp(t, `(?m)^latency_percentiles_usec_`+name+`:p50=`+value+`,p99=`+value+`,p99\.9=`+value+`\r$`, info)
	}
	assert.NotContains(t, rc.Info(ctx).Val(), "Latencystats", "not a default section")
	all := rc.Info(ctx, "all").Val()
	assert.Regexp(t, `(?s)# Errorstats\r\n.*# Latencystats\r\n.*# Cluster`, all)
	assert.Contains(t, rc.Info(ctx, "everything").Val(), "latency_percentiles_usec_hget:")

	require.NoError(t, rc.ConfigSet(ctx, "latency-tracking-info-percentiles", "50 90 99.99 33.33333333 0").Err())
	assert.Equal(t, map[string]string{"latency-tracking-info-percentiles": "50 90 99.99 33.333333 0"},
		rc.ConfigGet(ctx, "latency-tracking-info-percentiles").Val())
	assert.Regexp(t, `(?m)^latency_percentiles_usec_hget:p50=`+value+`,p90=`+value+`,p99\.99=`+value+
		`,p33\.333333=`+value+`,p0=`+value+`\r$`, rc.Info(ctx, "latencystats").Val())
	require.NoError(t, rc.ConfigSet(ctx, "latency-tracking-info-percentiles", "1e1 100").Err())
	assert.Equal(t, "10 100", rc.ConfigGet(ctx, "latency-tracking-info-percentiles").Val()["latency-tracking-info-percentiles"])

	for value, why := range map[string]string{
		"101":    "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]",
		"-1":     "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]",
		"abc":    "Invalid latency-tracking-info-percentiles parameters",
		"50  99": "Invalid latency-tracking-info-percentiles parameters",
		"50 ":    "Invalid latency-tracking-info-percentiles parameters",
		" 50":    "Invalid latency-tracking-info-percentiles parameters",
		"inf":    "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]",
	} {
		assert.EqualError(t, rc.ConfigSet(ctx, "latency-tracking-info-percentiles", value).Err(),
			"ERR CONFIG SET failed (possibly related to argument 'latency-tracking-info-percentiles') - "+why, "%q", value)
	}
	assert.Equal(t, "10 100", rc.ConfigGet(ctx, "latency-tracking-info-percentiles").Val()["latency-tracking-info-percentiles"],
		"a refused value changes nothing")

	require.NoError(t, rc.ConfigSet(ctx, "latency-tracking-info-percentiles", "").Err())
	assert.Regexp(t, `(?m)^latency_percentiles_usec_hget:\r$`, rc.Info(ctx, "latencystats").Val(), "no percentiles")

	require.NoError(t, rc.ConfigResetStat(ctx).Err())
	assert.NotContains(t, rc.Info(ctx, "latencystats").Val(), "latency_percentiles_usec_hget")
}

// parsePercentiles takes any bytes without a panic; what it accepts lies
// in [0, 100], and reads back the same from CONFIG GET's form.
func FuzzParsePercentiles(f *testing.F) {
	for _, s := range []string{"", "50 99 99.9", "1e1 0x10", "50  99", " 50", "inf", "nan", "100.0000001", "-0", "33.33333333"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		ps, why := parsePercentiles(value)
		if why != "" {
			require.Nil(t, ps)
			return
		}
		for _, p := range ps {
			require.True(t, p >= 0 && p <= 100, "%v", p)
		}
		again, why := parsePercentiles([]byte(formatPercentiles(ps)))
		require.Empty(t, why, "%q", formatPercentiles(ps))
		require.Equal(t, formatPercentiles(ps), formatPercentiles(again))
	})
}

// Redis 7 reads each percentile of latency-tracking-info-percentiles with
// string2d: strtod, a double rounded once from the decimal, and a value
// that overflows a double or underflows it to 0 is "Invalid" (ERANGE),
// however long the string. Not HINCRBYFLOAT's strtold: an 80-bit long
// double rounded again to a double, up to 5 KiB. The figures are
// redis-server 7.0.15's.
func TestParsePercentilesAsRedisStrtod(t *testing.T) {
	const (
		invalid = "Invalid latency-tracking-info-percentiles parameters"
		outside = "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
	)
	for _, tc := range []struct {
		value string
		why   string
		want  string // CONFIG GET's form, when accepted
	}{
		{"1e-400", invalid, ""}, // underflows to zero
		{"-1e-400", invalid, ""},
		{"1e-330", invalid, ""},
		{"2e-324", invalid, ""},
		{"0x1p-1100", invalid, ""},
		{"1e400", invalid, ""}, // past the largest double
		{"0x1p2000", invalid, ""},
		{"1" + strings.Repeat("0", 400), invalid, ""},
		// 100 + 2^-47 + 2^-60: a double rounds it up past 100 (read as a
		// long double, then rounded again to a double, it would be 100).
		{"100.000000000000007106294719338990262258448638021945953369140625", outside, ""},
		// Redis reads a float of any length here.
		{"0.5" + strings.Repeat("0", 6000), "", "0.5"},
		// A subnormal stands; a long fraction rounds.
		{"4e-324", "", "0"},
		{"1e-310", "", "0"},
		{"100.00000000000000001", "", "100"},
	} {
		ps, why := parsePercentiles([]byte(tc.value))
		assert.Equal(t, tc.why, why, "%.40q", tc.value)
		if tc.why == "" {
			assert.Equal(t, tc.want, formatPercentiles(ps), "%.40q", tc.value)
		}
	}
}
