package resp

import (
	"math"
	"math/big"
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
		want string // the value, printed with %g; "" when refused
	}{
		{"1.5", "1.5"},
		{"-0.25", "-0.25"},
		{"+3", "3"},
		{"1e3", "1000"},
		{".5", "0.5"},
		{"5.", "5"},
		{"007", "7"},
		{"0x10", "16"},
		{"-0X1A", "-26"},
		{"0x1p-2", "0.25"},
		{"0x1.8", "1.5"},
		{"inf", "+Inf"},
		{"-Infinity", "-Inf"},
		{"+INF", "+Inf"},
		{"nan", ""},
		{"1_0", ""},
		{"1_000.5", ""},
		{"0x_10", ""},
		{"0x", ""},
		{"1e400", "1e+400"}, // a long double's range, not a double's
		{"1e4933", ""},      // past it: strtold's ERANGE
		{"-1e4933", ""},
		{"1e-5000", ""},    // underflows: strtold's ERANGE
		{"0x1p-16446", ""}, // half the smallest denormal: rounds to 0
		{"0x1p-16445", "3.645199531882474603e-4951"}, // the smallest denormal
		{"0x1p-5000", "7.079811261048172892e-1506"},
		{"0x0ep-5000", "9.911735765467442049e-1505"}, // e is a hexadecimal digit here
		{"0e5", "0"},
		{"0e99999999999999999999", "0"}, // an exponent past int64, on a zero
		{"-0x0p-99999999999999999999", "-0"},
		{"1e-99999999999999999999", ""},
		{"1.82259976594123730126420296680970990819952540784678167186050e-4951", "1.822599765941237301e-4951"}, // just above half the smallest denormal: accepted (a long double rounds it to 3.6e-4951; both print 0)
		{"1.82259976594123730126420296680970990819952540784678167186048e-4951", ""},                           // just below
		{"-0.000", "-0"},
		{"0x0p9", "0"},
		{"1e-320", "1e-320"},
		{"0.1", "0.1"},
		{"", ""},
		{" 1", ""},
		{"1 ", ""},
		{"1.5x", ""},
		{"--1", ""},
		{"+-0x1", ""},
		{strings.Repeat("1", maxFloatLen), ""},
	} {
		got, ok := parseFloat([]byte(tc.in))
		assert.Equal(t, tc.want != "", ok, "%q", tc.in)
		if ok && tc.want != "" {
			assert.Equal(t, tc.want, got.Text('g', 19), "%q", tc.in)
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
	for _, s := range []string{"1.5", "-0x1p3", "0x10", "inf", "nan", "1_0", "1e400", "1e-400", ".", "-", "0x.8", "1e4933", "0x1p-16445"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseFloat([]byte(s))
		if !ok {
			return
		}
		if strings.Contains(s, "_") || len(s) >= maxFloatLen || strings.TrimSpace(s) != s {
			t.Fatalf("parseFloat(%q) accepted %v", s, got)
		}
		if got.IsInf() {
			return
		}
		if got.Prec() != ldPrec && got.Sign() != 0 {
			t.Fatalf("parseFloat(%q) has %d bits, not a long double's %d", s, got.Prec(), ldPrec)
		}
		// 25 significant digits (more than 64 bits need) read back as
		// the same long double.
		text := got.Text('e', 24)
		back, ok := parseFloat([]byte(text))
		if !ok || back.Cmp(got) != 0 {
			t.Fatalf("parseFloat(%q) = %s, which reads back as %v, %v", s, text, back, ok)
		}
		// Adding 0 changes nothing, and prints something that reads back.
		sum, ok := addLongDouble(got, new(big.Float))
		if !ok || sum.Cmp(got) != 0 {
			t.Fatalf("%q + 0 = %v, %v", s, sum, ok)
		}
		if _, ok := parseFloat(appendLongDouble(nil, sum)); !ok {
			t.Fatalf("%q prints as %q, which does not read back", s, appendLongDouble(nil, sum))
		}
	})
}

// HINCRBYFLOAT answers as Redis 7.0.15 did for each of these (the field
// holding the first string, incremented by the second), computed in an
// 80-bit long double: "0.1 + 0.2" is 0.3, 1e400 is in range, and the
// results print with "%.17Lf", trailing zeros cut.
func TestLongDoubleAsRedis(t *testing.T) {
	for _, tc := range []struct{ field, incr, redis string }{
		{"0", "0.1", "0.1"},
		{"0.1", "0.2", "0.3"},
		{"1", "1e400", "10000000000000000000281880683947586514586453433629052038625910693539685534008629862039363994848324160522094053927317616200295822777259255734023828976593340661017797447434546173917862448116674971723778943824391593338047470675026246684401359237513603830343735485505244955964979021825038280091068414947402456898653040951017512658092615827588920183472511643316591362664138176309734806343732497430221946880"},
		{"1e400", "1", "10000000000000000000281880683947586514586453433629052038625910693539685534008629862039363994848324160522094053927317616200295822777259255734023828976593340661017797447434546173917862448116674971723778943824391593338047470675026246684401359237513603830343735485505244955964979021825038280091068414947402456898653040951017512658092615827588920183472511643316591362664138176309734806343732497430221946880"},
		{"10.5", "0.1", "10.6"},
		{"5.0e3", "2.0e2", "5200"},
		{"0", "1e-400", "0"},
		{"3", "-3", "0"},
		{"-0", "0", "0"},
		{"0", "-0.0", "0"},
		{"1.7976931348623157e308", "1.7976931348623157e308", "359538626972463139991842093548208868096772893888658356970628841530353257046248792709403737216774171128857586838851041378617416726902272110715794556052955234146997955372576789671236326588091188869859074894581254961338834769297758245552436667197907705664206565009503223382416235440319971852753604933726679072768"},
		{"0x10", "0x1p-2", "16.25"},
		{"0", ".5", "0.5"},
		{"0", "5.", "5"},
		{"100", "-100.000001", "-0.000001"},
		{"1e4932", "1e4932", "ERR increment would produce NaN or Infinity"},
		{"0", "3.0e-4951", "0"},
		{"0", "1e-5000", "ERR value is not a valid float"},
		{"0", "0x1A", "26"},
		{"inf", "1", "ERR increment would produce NaN or Infinity"},
		{"0", "123456789012345678901234567890", "123456789012345678899921813504"},
		{"0.1", "0.7", "0.8"},
		{"2.5", "-0.5", "2"},
		{"99999999999999999999", "1", "100000000000000000000"},
		{"0", "1e17", "100000000000000000"},
		{"0", "12345.678901234567890123", "12345.6789012345678902"},
	} {
		assert.Equal(t, tc.redis, hincrbyfloatReply(tc.field, tc.incr), "%s + %s", tc.field, tc.incr)
	}
	// 1e4932 is in a long double's range (4,933 digits, as Redis prints it).
	got := hincrbyfloatReply("0", "1e4932")
	assert.Len(t, got, 4933)
	assert.True(t, strings.HasPrefix(got, "10000000000000000000060189493879638913238"), got[:50])
}
