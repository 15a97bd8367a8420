package resp

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ldReference is Redis 7's reading and printing of a HINCRBYFLOAT
// (string2ld, the long double sum, ld2string's LD_STR_HUMAN), in C, so
// that the C library's strtold and printf judge kv's math/big emulation.
const ldReference = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>
#include <ctype.h>
/* Redis 7's string2ld + HINCRBYFLOAT arithmetic + ld2string(LD_STR_HUMAN) */
static int string2ld(const char *s, long double *dp) {
    char buf[5120]; size_t slen = strlen(s);
    if (slen == 0 || slen >= sizeof(buf)) return 0;
    memcpy(buf, s, slen); buf[slen] = '\0';
    errno = 0; char *eptr;
    long double value = strtold(buf, &eptr);
    if (isspace(buf[0]) || eptr[0] != '\0' || (size_t)(eptr - buf) != slen ||
        (errno == ERANGE && (value == HUGE_VALL || value == -HUGE_VALL || fpclassify(value) == FP_ZERO)) ||
        errno == EINVAL || isnan(value)) return 0;
    *dp = value; return 1;
}
int main(void) {
    char a[6000], b[6000];
    while (fgets(a, sizeof a, stdin) && fgets(b, sizeof b, stdin)) {
        a[strcspn(a, "\n")] = 0; b[strcspn(b, "\n")] = 0;
        long double x, y;
        if (!string2ld(b, &y)) { puts("ERR value is not a valid float"); continue; }
        if (isnan(y) || isinf(y)) { puts("ERR value is NaN or Infinity"); continue; }
        if (!string2ld(a, &x)) { puts("ERR hash value is not a float"); continue; }
        x += y;
        if (isnan(x) || isinf(x)) { puts("ERR increment would produce NaN or Infinity"); continue; }
        char buf[6000]; int l = snprintf(buf, sizeof buf, "%.17Lf", x);
        if (strchr(buf, '.') != NULL) { char *p = buf + l - 1; while (*p == '0') { p--; l--; } if (*p == '.') l--; }
        if (l == 2 && buf[0] == '-' && buf[1] == '0') { buf[0] = '0'; l = 1; }
        buf[l] = 0; puts(buf);
    }
}
`

// HINCRBYFLOAT against the C library, on random numbers of every form
// (integers, fractions, huge and tiny exponents, hexadecimal, denormals,
// the special and the malformed): kv's answer, error or digits, is the
// C program's. Skipped without a C compiler; KV_LD_CASES sets the number
// of cases (20,000).
func TestLongDoubleAgainstC(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "ld.c"), filepath.Join(dir, "ld")
	if err := os.WriteFile(src, []byte(ldReference), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O2", "-o", bin, src, "-lm").CombinedOutput(); err != nil {
		t.Skipf("cannot build the C reference: %v\n%s", err, out)
	}
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("KV_LD_CASES")); err == nil {
		n = v
	}
	r := rand.New(rand.NewPCG(uint64(n), 7))
	var in bytes.Buffer
	cases := make([][2]string, n)
	for i := range cases {
		cases[i] = [2]string{randomFloat(r), randomFloat(r)}
		fmt.Fprintf(&in, "%s\n%s\n", cases[i][0], cases[i][1])
	}
	cmd := exec.Command(bin)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	i := 0
	for ; sc.Scan(); i++ {
		field, incr := cases[i][0], cases[i][1]
		if got, want := hincrbyfloatReply(field, incr), sc.Text(); got != want {
			t.Errorf("%q + %q: kv %.80s, C %.80s", field, incr, got, want)
		}
	}
	if i != n {
		t.Fatalf("the C reference answered %d cases of %d", i, n)
	}
}

// hincrbyfloatReply is what HINCRBYFLOAT answers for a field holding
// field, incremented by incr.
func hincrbyfloatReply(field, incr string) string {
	by, ok := parseFloat([]byte(incr))
	switch {
	case !ok:
		return "ERR value is not a valid float"
	case by.IsInf():
		return "ERR value is NaN or Infinity"
	}
	cur, ok := parseFloat([]byte(field))
	if !ok {
		return errHashNotFloat.Error()
	}
	sum, ok := addLongDouble(cur, by)
	if !ok {
		return errNaN.Error()
	}
	return string(appendLongDouble(nil, sum))
}

func randomFloat(r *rand.Rand) string {
	switch r.IntN(8) {
	case 0:
		return strconv.FormatInt(r.Int64N(1e18)-5e17, 10)
	case 1:
		return strconv.FormatFloat((r.Float64()-0.5)*1e6, 'f', r.IntN(20), 64)
	case 2: // decimal exponents across a long double's range and past it
		return fmt.Sprintf("%de%d", r.IntN(100000), r.IntN(9900)-4950)
	case 3: // binary exponents into the denormals and past both ends
		return fmt.Sprintf("0x%xp%d", r.Uint64(), r.IntN(33000)-16500)
	case 4: // long digit strings
		var b strings.Builder
		for range 1 + r.IntN(40) {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		if r.IntN(2) == 0 {
			fmt.Fprintf(&b, ".%d", r.Int64())
		}
		return b.String()
	case 5:
		return strconv.FormatFloat(r.NormFloat64()*1e10, 'g', -1, 64)
	case 6:
		return []string{"inf", "-inf", "nan", "0", "-0", "1_0", ".", "1e", "0x", "0x1.8", "5.", ".5", "+1", "infinity", " 1",
			"0x1p-16446", "0x1.0000000000000000001p-16446", "0e99999999999999999999", "-0.0e-99999999999999999999",
			"0x0p99999999999999999999", "1.82259976594123730126420296680970990819952540784678167186050e-4951",
			"1.82259976594123730126420296680970990819952540784678167186048e-4951", "1e-4900"}[r.IntN(23)]
	default:
		return strconv.FormatFloat(r.Float64()*1e300, 'e', 25, 64)
	}
}
