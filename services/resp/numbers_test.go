package resp

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Integers are read as Redis's string2ll reads them: only the canonical
// decimal form.
func TestParseInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"7", 7, true},
		{"-7", -7, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"", 0, false},
		{"-", 0, false},
		{"+1", 0, false},
		{"007", 0, false},
		{"-0", 0, false},
		{"00", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1_000", 0, false},
		{"0x10", 0, false},
		{"1e3", 0, false},
	} {
		got, ok := parseInt([]byte(tc.in))
		assert.Equal(t, tc.ok, ok, "%q", tc.in)
		if tc.ok {
			assert.Equal(t, tc.want, got, "%q", tc.in)
		}
	}
}

// Floats are read as Redis's string2ld reads them, in 64 bits.
func TestParseFloat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"1.5", 1.5, true},
		{"-0.25", -0.25, true},
		{"+3", 3, true},
		{"1e3", 1000, true},
		{".5", 0.5, true},
		{"5.", 5, true},
		{"007", 7, true},
		{"0x10", 16, true},
		{"-0X1A", -26, true},
		{"0x1p-2", 0.25, true},
		{"0x1.8", 1.5, true},
		{"inf", math.Inf(1), true},
		{"-Infinity", math.Inf(-1), true},
		{"+INF", math.Inf(1), true},
		{"nan", 0, false},
		{"1_0", 0, false},
		{"1_000.5", 0, false},
		{"0x_10", 0, false},
		{"0x", 0, false},
		{"1e400", 0, false},
		{"1e-5000", 0, false}, // underflows: strtold's ERANGE
		{"0x1p-5000", 0, false},
		{"0x0ep-5000", 0, false}, // e is a hexadecimal digit here
		{"0e5", 0, true},
		{"-0.000", 0, true},
		{"0x0p9", 0, true},
		{"1e-320", 1e-320, true},
		{"", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1.5x", 0, false},
		{"--1", 0, false},
		{"+-0x1", 0, false},
		{strings.Repeat("1", maxFloatLen), 0, false},
	} {
		got, ok := parseFloat([]byte(tc.in))
		assert.Equal(t, tc.ok, ok, "%q", tc.in)
		if tc.ok {
			assert.Equal(t, tc.want, got, "%q", tc.in)
		}
	}
}

// string2ll is a second reading of Redis's rule, written from its
// definition (an optional '-', then "0" or a digit 1-9 and more digits,
// within 64 bits), to check parseInt against.
func string2ll(s string) (int64, bool) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	if digits[0] == '0' && (len(digits) > 1 || len(s) > 1) {
		return 0, false // a leading zero, or "-0"
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || !n.IsInt64() {
		return 0, false
	}
	return n.Int64(), true
}

func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"0", "-1", "007", "-0", "+5", "9223372036854775807", "-9223372036854775808", "1 ", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseInt([]byte(s))
		want, wantOK := string2ll(s)
		if ok != wantOK || got != want {
			t.Fatalf("parseInt(%q) = %d, %v; want %d, %v", s, got, ok, want, wantOK)
		}
	})
}

func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"1.5", "-0x1p3", "0x10", "inf", "nan", "1_0", "1e400", "1e-400", ".", "-", "0x.8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseFloat([]byte(s))
		if !ok {
			return
		}
		if math.IsNaN(got) || strings.Contains(s, "_") || len(s) >= maxFloatLen || strings.TrimSpace(s) != s {
			t.Fatalf("parseFloat(%q) accepted %v", s, got)
		}
		if !math.IsInf(got, 0) {
			// What it prints reads back as the same number.
			back, ok := parseFloat(strconv.AppendFloat(nil, got, 'f', -1, 64))
			if !ok || back != got {
				t.Fatalf("parseFloat(%q) = %v, which reads back as %v, %v", s, got, back, ok)
			}
		}
	})
}
