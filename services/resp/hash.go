package resp

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/registry"
)

// Errors a hash command's update function returns to abort (and undo)
// its transaction; they become error replies.
var (
	errHashNotInteger = errors.New("ERR hash value is not an integer")
	errHashNotFloat   = errors.New("ERR hash value is not a float")
	errOverflow       = errors.New("ERR increment or decrement would overflow")
	errNaN            = errors.New("ERR increment would produce NaN or Infinity")
)

// live returns the live bucket named name, or nil, through the registry's
// LookupCurrent: a bucket found ended but not yet forgotten is followed to
// what the name means now. A bucket can still end between live and its
// use: callers that meet bucket.ErrEnded call live again (see bucket.EndedBefore).
// ok is false when live has written an error reply (the bucket may exist
// but could not be loaded from the store, or the server is stopping).
func (s *Server) live(ctx context.Context, c *conn, name []byte) (b *bucket.Bucket, ok bool) {
	b, found, err := s.reg.LookupCurrent(ctx, str(name))
	if err != nil {
		c.writeErr(err)
		return nil, false
	}
	if !found {
		return nil, true
	}
	if s.cfg.testHookLive != nil {
		s.cfg.testHookLive(b)
	}
	return b, true
}

// maxAttempts bounds how often a command follows a name to a new bucket
// after the one it found had ended.
const maxAttempts = 8

// follow calls op with the live bucket named name, and again with the
// bucket the name leads to then when op finds that its bucket had ended
// before it began (see bucket.EndedBefore), and reports whether op ran on a
// bucket: false when there is none. ok is false when an error reply was
// written instead (as when the bucket ended maxAttempts times in a row:
// try again). op does not escape: a closure costs no allocation.
func (s *Server) follow(ctx context.Context, c *conn, name []byte, op func(*bucket.Bucket) error) (found, ok bool) {
	for range maxAttempts {
		b, ok := s.live(ctx, c, name)
		if !ok || b == nil {
			return false, ok
		}
		if err := op(b); !bucket.EndedBefore(err) {
			return true, true
		}
	}
	c.writeErr(bucket.ErrEnded) // ended over and over: not absent, busy
	return false, false
}

// view is follow for a read transaction of the bucket.
func (s *Server) view(ctx context.Context, c *conn, name []byte, fn func(*bucket.Tx) error) (found, ok bool) {
	return s.follow(ctx, c, name, func(b *bucket.Bucket) error { return b.View(fn) })
}

// forgotten waits until the registry has forgotten prev, a bucket found
// ended, if not nil: the name then leads to what it means now.
func (s *Server) forgotten(ctx context.Context, prev *bucket.Bucket) error {
	if prev == nil {
		return nil
	}
	return s.reg.WaitForgotten(ctx, prev)
}

// update runs fn in the bucket named name, creating the bucket if needed
// (with fn as its first write: see registry.CreateWith), and follows the
// name to a new bucket when the one it found ends first. The write may
// not be durable yet: the caller hands the Pending to c.reply with the
// command's reply.
func (s *Server) update(ctx context.Context, c *conn, name []byte, fn func(*bucket.Tx) error) (bucket.Pending, error) {
	var prev *bucket.Bucket
	for range maxAttempts {
		if err := s.forgotten(ctx, prev); err != nil {
			return bucket.Pending{}, err
		}
		var b *bucket.Bucket
		var p bucket.Pending
		var err error
		if live, ok := s.reg.Lookup(str(name)); ok {
			b = live
			p, err = b.UpdateNoWait(fn)
		} else {
			c.mayWait()
			b, p, err = s.reg.CreateWith(ctx, str(name), fn)
		}
		if !bucket.EndedBefore(err) {
			return p, err
		}
		prev = b
	}
	return bucket.Pending{}, bucket.ErrEnded
}

// writeErr turns an error from the data path into a reply.
func (c *conn) writeErr(err error) {
	msg := err.Error()
	switch {
	case errors.Is(err, registry.ErrInvalidName):
		c.err("ERR invalid key: " + msg)
	case errors.Is(err, registry.ErrStopped), errors.Is(err, context.Canceled):
		c.err("ERR server is shutting down")
	case errors.Is(err, bucket.ErrEnded):
		c.err("ERR the bucket ended while the command ran; try again")
	case errors.Is(err, errHashNotInteger), errors.Is(err, errHashNotFloat),
		errors.Is(err, errOverflow), errors.Is(err, errNaN):
		c.err(msg) // already worded as Redis words it
	default:
		c.err("ERR " + msg)
	}
}

func (s *Server) hset(ctx context.Context, c *conn, args [][]byte) {
	if len(args)%2 != 0 {
		c.wrongArgs(s.lookup(args[0]).name)
		return
	}
	added, p, err := s.setPairs(ctx, c, args[1], args[2:])
	if err != nil {
		c.writeErr(err)
		return
	}
	start := len(c.out)
	if equalFold(args[0], "hmset") {
		c.ok()
	} else {
		c.integer(int64(added))
	}
	c.awaiting(p, start)
}

// setPairs stores field/value pairs in the bucket named name, atomically,
// and returns how many fields are new. One pair, the hot path, takes the
// bucket's lock once and allocates only the stored copies.
func (s *Server) setPairs(ctx context.Context, c *conn, name []byte, pairs [][]byte) (int, bucket.Pending, error) {
	if len(pairs) == 2 {
		var prev *bucket.Bucket
		for attempt := 0; ; attempt++ {
			if attempt == maxAttempts {
				return 0, bucket.Pending{}, bucket.ErrEnded
			}
			if err := s.forgotten(ctx, prev); err != nil {
				return 0, bucket.Pending{}, err
			}
			b, ok := s.reg.Lookup(str(name))
			if !ok {
				break // a new bucket: made below, with its pair as its first write
			}
			added, p, err := b.SetNoWait(string(pairs[0]), pairs[1])
			if !bucket.EndedBefore(err) {
				if added {
					return 1, p, err
				}
				return 0, p, err
			}
			prev = b
		}
	}
	var added int
	p, err := s.update(ctx, c, name, func(tx *bucket.Tx) error {
		added = 0
		for i := 0; i+1 < len(pairs); i += 2 {
			if !tx.Has(str(pairs[i])) {
				added++
			}
			if err := tx.Put(string(pairs[i]), pairs[i+1]); err != nil {
				return err
			}
		}
		return nil
	})
	return added, p, err
}

func (s *Server) hsetnx(ctx context.Context, c *conn, args [][]byte) {
	var set bool
	p, err := s.update(ctx, c, args[1], func(tx *bucket.Tx) error {
		set = false
		if tx.Has(str(args[2])) {
			return nil
		}
		set = true
		return tx.Put(string(args[2]), args[3])
	})
	if err != nil {
		c.writeErr(err)
		return
	}
	start := len(c.out)
	if set {
		c.integer(1)
	} else {
		c.integer(0)
	}
	c.awaiting(p, start)
}

// hget is the hot read: follow inlined (a closure's indirect call costs a
// third of the command here).
func (s *Server) hget(ctx context.Context, c *conn, args [][]byte) {
	for range maxAttempts {
		b, ok := s.live(ctx, c, args[1])
		if !ok {
			return
		}
		if b == nil {
			c.null()
			return
		}
		v, err := b.AppendValue(c.scratch[:0], str(args[2]))
		if err == nil {
			c.scratch = v
			c.bulk(v)
			return
		}
		if !bucket.EndedBefore(err) { // no such field
			c.null()
			return
		}
	}
	c.writeErr(bucket.ErrEnded) // ended over and over: not absent, busy
}

// hmget answers HMGET. A field named many times is answered as often, so
// that one large value, asked for over and over, could make a reply of any
// size from a short command (a 1 MiB value asked for a million times in an
// 8 MB request: 1 TiB). As with HRANDFIELD's repeats, past MaxReplyBytes
// the values may be no more than the hash holds (what HVALS returns):
// checked as the reply is built, and refused with the reply taken back.
func (s *Server) hmget(ctx context.Context, c *conn, args [][]byte) {
	fields := args[2:]
	limit := s.cfg.MaxReplyBytes
	tooLarge := false
	found, ok := s.view(ctx, c, args[1], func(tx *bucket.Tx) error {
		start, picked, whole := len(c.out), 0, -1
		tooLarge = false
		c.array(len(fields))
		for _, f := range fields {
			v, err := tx.Get(str(f))
			if err != nil {
				c.null()
				continue
			}
			if picked += len(v); picked > limit {
				if whole < 0 {
					whole = 0
					_ = tx.ForEach(func(_ string, value []byte) error { whole += len(value); return nil })
				}
				if picked > whole {
					c.out = c.out[:start]
					tooLarge = true
					return nil
				}
			}
			c.bulk(v)
		}
		return nil
	})
	if tooLarge {
		c.err("ERR value is out of range, the values HMGET asks for pass " + strconv.Itoa(limit) + " bytes, more than the hash holds")
		return
	}
	if !ok || found {
		return
	}
	c.array(len(fields))
	for range fields {
		c.null()
	}
}

func (s *Server) hdel(ctx context.Context, c *conn, args [][]byte) {
	var n int
	del := func(tx *bucket.Tx) error {
		n = 0
		for _, f := range args[2:] {
			if _, err := tx.Delete(str(f)); err == nil {
				n++
			}
		}
		return nil
	}
	var (
		p   bucket.Pending
		err error
	)
	found, ok := s.follow(ctx, c, args[1], func(b *bucket.Bucket) error {
		p, err = b.UpdateNoWait(del)
		return err
	})
	switch {
	case !ok:
	case !found:
		c.integer(0)
	case err != nil:
		c.writeErr(err)
	default:
		start := len(c.out)
		c.integer(int64(n))
		c.awaiting(p, start)
	}
}

func (s *Server) hexists(ctx context.Context, c *conn, args [][]byte) {
	var has bool
	_, ok := s.view(ctx, c, args[1], func(tx *bucket.Tx) error {
		has = tx.Has(str(args[2]))
		return nil
	})
	if !ok {
		return
	}
	if has {
		c.integer(1)
	} else {
		c.integer(0)
	}
}

func (s *Server) hlen(ctx context.Context, c *conn, args [][]byte) {
	var n int
	found, ok := s.follow(ctx, c, args[1], func(b *bucket.Bucket) (err error) {
		n, err = b.Len()
		return err
	})
	if ok {
		if !found {
			n = 0
		}
		c.integer(int64(n))
	}
}

func (s *Server) hstrlen(ctx context.Context, c *conn, args [][]byte) {
	var n int
	found, ok := s.follow(ctx, c, args[1], func(b *bucket.Bucket) (err error) {
		n, err = b.ValueLen(str(args[2]))
		return err
	})
	if ok {
		if !found {
			n = 0
		}
		c.integer(int64(n)) // 0 for a missing field: ValueLen's 0
	}
}

// pairs returns a snapshot of the bucket named name (nil when absent), in
// the cursor order of HSCAN: HKEYS, HVALS and HGETALL list a hash's fields
// in one order, which only the fields added or deleted change (Go's maps
// have none: each pass over one starts at random). ok is false when it has
// written an error reply instead. With withValues false, values is nil.
func (s *Server) pairs(ctx context.Context, c *conn, name []byte, withValues bool) (keys []string, values [][]byte, ok bool) {
	_, ok = s.view(ctx, c, name, func(tx *bucket.Tx) error {
		keys, _, _ = tx.Scan(0, math.MaxInt)
		if withValues {
			values = make([][]byte, len(keys))
			for i, k := range keys {
				values[i], _ = tx.Get(k)
			}
		}
		return nil
	})
	return keys, values, ok
}

// anyOrderPairs is pairs in no particular order (one pass over the map):
// for HRANDFIELD, which picks at random anyway.
func (s *Server) anyOrderPairs(ctx context.Context, c *conn, name []byte, withValues bool) (keys []string, values [][]byte, ok bool) {
	_, ok = s.view(ctx, c, name, func(tx *bucket.Tx) error {
		keys = make([]string, 0, tx.Len())
		return tx.ForEach(func(k string, v []byte) error {
			keys = append(keys, k)
			if withValues {
				values = append(values, v)
			}
			return nil
		})
	})
	return keys, values, ok
}

func (s *Server) hkeys(ctx context.Context, c *conn, args [][]byte) {
	keys, _, ok := s.pairs(ctx, c, args[1], false)
	if !ok {
		return
	}
	c.array(len(keys))
	for _, k := range keys {
		c.bulkString(k)
	}
}

func (s *Server) hvals(ctx context.Context, c *conn, args [][]byte) {
	_, values, ok := s.pairs(ctx, c, args[1], true)
	if !ok {
		return
	}
	c.array(len(values))
	for _, v := range values {
		c.bulk(v)
	}
}

func (s *Server) hgetall(ctx context.Context, c *conn, args [][]byte) {
	keys, values, ok := s.pairs(ctx, c, args[1], true)
	if !ok {
		return
	}
	c.mapLen(len(keys))
	for i, k := range keys {
		c.bulkString(k)
		c.bulk(values[i])
	}
}

// parseInt parses a Redis integer, as Redis's string2ll does: a 64-bit
// decimal written the one way it prints, so no '+', no leading zeros, no
// "-0", no spaces.
func parseInt(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(str(b), 10, 64)
	if err != nil {
		return 0, false
	}
	var buf [20]byte
	if string(strconv.AppendInt(buf[:0], n, 10)) != str(b) {
		return 0, false
	}
	return n, true
}

// maxFloatLen is the longest float Redis reads (MAX_LONG_DOUBLE_CHARS).
const maxFloatLen = 5 * 1024

// HINCRBYFLOAT computes as Redis does, in the x87 80-bit long double of its
// usual builds (x86-64 Linux): a 64-bit significand, round to nearest
// even, finite while |x| < 2^16384, and 0 at or below 2^-16446 (math/big's
// exponent is wider: parseFloat checks these bounds; denormals keep all
// 64 bits here, where a long double loses some).
const (
	ldPrec   = 64
	ldMaxExp = 16384  // x = m * 2^e with 0.5 <= |m| < 1: finite while e <= ldMaxExp
	ldMinExp = -16445 // half the smallest denormal 2^-16445 is 0.5 * 2^ldMinExp
)

// parseFloat parses a Redis float as Redis's string2ld does (strtold, in a
// long double): decimal or hexadecimal ("0x1A", "0x1p-2"), "inf" and
// "infinity" in any case, with a sign; no spaces, no underscores (which Go
// alone accepts), no NaN, nothing out of range.
func parseFloat(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) >= maxFloatLen || bytes.IndexByte(b, '_') >= 0 {
		return nil, false
	}
	s := str(b)
	hex := hexFloat(s)
	if hex && !strings.ContainsAny(s, "pP") {
		s += "p0" // strtold reads a hexadecimal float without an exponent; Go does not
	}
	// strconv checks the syntax; big reads the value exactly.
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange), math.IsNaN(f):
		return nil, false
	case math.IsInf(f, 0) && err == nil: // "inf", "infinity"
		return new(big.Float).SetInf(f < 0), true
	case f == 0 && !underflows(s): // zero, whatever its exponent ("0e99999999999999999999")
		zero := new(big.Float)
		if s[0] == '-' {
			zero.Neg(zero)
		}
		return zero, true
	}
	// A first, rounded reading tells the numbers far out of range from
	// the rest, which are worth reading exactly (10^-99999 is not).
	x, _, err := new(big.Float).SetPrec(ldPrec).Parse(s, 0)
	if err != nil || x.Sign() == 0 {
		return nil, false // an exponent past int64, or an underflow
	}
	if e := x.MantExp(nil); e > ldMaxExp+1 || e < ldMinExp-1 {
		return nil, false
	}
	// Exactly, then rounded once, as strtold does: a decimal is a
	// fraction of integers (big.Float.Parse rounds its digits, then the
	// power of ten: its last bit can be wrong); a hexadecimal float is
	// exact in 4 bits a digit.
	var exact *big.Float
	if hex {
		if exact, _, err = new(big.Float).SetPrec(uint(4*len(s)+64)).Parse(s, 0); err != nil {
			return nil, false
		}
	} else {
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return nil, false
		}
		if new(big.Rat).Abs(r).Cmp(ldZeroBound) <= 0 {
			return nil, false // rounds to 0: strtold's ERANGE
		}
		exact = new(big.Float).SetPrec(ldPrec).SetRat(r)
	}
	if hex && new(big.Float).Abs(exact).Cmp(ldZeroBoundFloat) <= 0 {
		return nil, false
	}
	x.Set(exact) // x's precision: rounds to 64 bits
	if x.MantExp(nil) > ldMaxExp {
		return nil, false // strtold's ERANGE: HUGE_VALL
	}
	return x, true
}

// ldZeroBound is half the smallest long double denormal, 2^-16446: a
// number no larger rounds to 0.
var (
	ldZeroBound      = new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Lsh(big.NewInt(1), -ldMinExp+1))
	ldZeroBoundFloat = new(big.Float).SetMantExp(big.NewFloat(0.5), ldMinExp)
)

// parseDouble parses a float as Redis's string2d does (strtod: a double,
// rounded once), for what Redis reads that way (CONFIG SET
// latency-tracking-info-percentiles): the syntax parseFloat reads, of any
// length, "inf" and "infinity" too; no NaN, nothing past the largest
// double, nothing that underflows to zero (a subnormal stands).
func parseDouble(b []byte) (float64, bool) {
	s := string(b)
	f, overflow, ok := strtod(s)
	if !ok || overflow || f == 0 && underflows(s) {
		return 0, false
	}
	return f, true
}

// strtod reads s whole as C's strtod reads a double: decimal or
// hexadecimal (without an exponent too, where Go wants one), "inf" and
// "infinity" in any case, with a sign; no spaces, no underscores (which Go
// alone accepts). It returns the nearest double, an infinity past the
// largest (overflow), 0 for what underflows; not ok for anything else,
// NaN included.
func strtod(s string) (f float64, overflow, ok bool) {
	if s == "" || strings.Contains(s, "_") {
		return 0, false, false
	}
	if hexFloat(s) && !strings.ContainsAny(s, "pP") {
		s += "p0" // as in parseFloat
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(f) {
		return 0, false, false
	}
	return f, err != nil, true
}

// hexFloat reports whether s, a float parseFloat has checked, is written
// in hexadecimal.
func hexFloat(s string) bool {
	digits := strings.TrimLeft(s, "+-")
	return len(digits) > 1 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')
}

// addLongDouble returns a + b as a long double, or false if that is not
// finite.
func addLongDouble(a, b *big.Float) (*big.Float, bool) {
	if a.IsInf() || b.IsInf() {
		return nil, false
	}
	z := new(big.Float).SetPrec(ldPrec).Add(a, b)
	if z.Sign() != 0 && z.MantExp(nil) > ldMaxExp {
		return nil, false
	}
	return z, true
}

// appendLongDouble appends x as Redis prints a HINCRBYFLOAT result
// (ld2string's LD_STR_HUMAN): "%.17Lf", then without the trailing zeros of
// the fraction, nor its point, and "-0" as "0".
func appendLongDouble(dst []byte, x *big.Float) []byte {
	if x.Sign() != 0 && x.MantExp(nil) <= -58 {
		// Below 2^-58 (about 3.5e-18), "%.17Lf" prints 0: say so without
		// writing the thousands of digits of a tiny number first.
		return append(dst, '0')
	}
	start := len(dst)
	dst = x.Append(dst, 'f', 17)
	if bytes.IndexByte(dst[start:], '.') >= 0 {
		dst = bytes.TrimRight(dst, "0")
		dst = bytes.TrimSuffix(dst, []byte("."))
	}
	if string(dst[start:]) == "-0" {
		dst = append(dst[:start], '0')
	}
	return dst
}

// underflows reports whether s, which reads as 0, writes a number other
// than 0 (1e-5000): strtold says ERANGE, and Redis refuses it.
func underflows(s string) bool {
	digits := strings.TrimLeft(s, "+-")
	hex := hexFloat(s)
	if hex {
		digits = digits[2:]
	}
	for _, r := range digits {
		switch {
		case (r == 'e' || r == 'E') && !hex, r == 'p' || r == 'P':
			return false // the exponent: no significant digit before it
		case r >= '1' && r <= '9', hex && (r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F'):
			return true
		}
	}
	return false
}

func (s *Server) hincrby(ctx context.Context, c *conn, args [][]byte) {
	incr, ok := parseInt(args[3])
	if !ok {
		c.notInteger()
		return
	}
	var result int64
	p, err := s.update(ctx, c, args[1], func(tx *bucket.Tx) error {
		var cur int64
		if v, err := tx.Get(str(args[2])); err == nil {
			n, ok := parseInt(v)
			if !ok {
				return errHashNotInteger
			}
			cur = n
		}
		if (incr < 0 && cur < math.MinInt64-incr) || (incr > 0 && cur > math.MaxInt64-incr) {
			return errOverflow
		}
		result = cur + incr
		return tx.Put(string(args[2]), strconv.AppendInt(nil, result, 10))
	})
	if err != nil {
		c.writeErr(err)
		return
	}
	start := len(c.out)
	c.integer(result)
	c.awaiting(p, start)
}

func (s *Server) hincrbyfloat(ctx context.Context, c *conn, args [][]byte) {
	incr, ok := parseFloat(args[3])
	switch {
	case !ok:
		c.err("ERR value is not a valid float")
		return
	case incr.IsInf():
		c.err("ERR value is NaN or Infinity")
		return
	}
	var out []byte
	p, err := s.update(ctx, c, args[1], func(tx *bucket.Tx) error {
		cur := new(big.Float)
		if v, err := tx.Get(str(args[2])); err == nil {
			f, ok := parseFloat(v)
			if !ok {
				return errHashNotFloat
			}
			cur = f
		}
		r, ok := addLongDouble(cur, incr)
		if !ok {
			return errNaN
		}
		out = appendLongDouble(nil, r)
		return tx.Put(string(args[2]), out)
	})
	if err != nil {
		c.writeErr(err)
		return
	}
	start := len(c.out)
	c.bulk(out)
	c.awaiting(p, start)
}

const (
	// maxRandomRepeats bounds the fields HRANDFIELD returns for a negative
	// count (with repeats).
	maxRandomRepeats = 1 << 20
	// maxRandomWithValues bounds HRANDFIELD's count, either sign, with
	// WITHVALUES: Redis's LONG_MAX/2, so that twice the count (the reply's
	// length) cannot overflow.
	maxRandomWithValues = math.MaxInt64 / 2
)

// hrandfield serves HRANDFIELD key [count [WITHVALUES]], checking its
// arguments in Redis's order, before it looks the key up: the count, then
// the word after it, then the count's range with WITHVALUES.
func (s *Server) hrandfield(ctx context.Context, c *conn, args [][]byte) {
	withCount := len(args) >= 3
	var count int64
	if withCount {
		var ok bool
		if count, ok = parseInt(args[2]); !ok {
			c.notInteger()
			return
		}
		if count == math.MinInt64 { // Redis's range is symmetric
			c.err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
			return
		}
	}
	if len(args) > 4 || (len(args) == 4 && !equalFold(args[3], "withvalues")) {
		c.syntaxErr()
		return
	}
	withValues := len(args) == 4
	if withValues && (count < -maxRandomWithValues || count > maxRandomWithValues) {
		c.err("ERR value is out of range")
		return
	}
	keys, values, ok := s.anyOrderPairs(ctx, c, args[1], withValues)
	if !ok {
		return
	}
	if count < -maxRandomRepeats && len(keys) > 0 {
		// A negative count asks for that many fields, repeats allowed,
		// however small the hash: one short command could make the
		// server build a reply of any size.
		c.err("ERR value is out of range, a negative count must be at least -" + strconv.Itoa(maxRandomRepeats))
		return
	}
	if !withCount {
		if len(keys) == 0 {
			c.null()
			return
		}
		c.bulkString(keys[rand.IntN(len(keys))])
		return
	}
	var picks []int
	switch {
	case len(keys) == 0 || count == 0:
	case count < 0: // repeats allowed
		picks = make([]int, -count)
		picked := 0 // the bytes of the picked fields (and values)
		for i := range picks {
			picks[i] = rand.IntN(len(keys))
			picked += len(keys[picks[i]])
			if withValues {
				picked += len(values[picks[i]])
			}
		}
		// Nor may one large field or value, repeated, make a reply of any
		// size: past MaxReplyBytes, the reply may be no larger than the
		// hash (what HGETALL returns).
		if limit := s.cfg.MaxReplyBytes; picked > limit {
			whole := 0
			for i, k := range keys {
				whole += len(k)
				if withValues {
					whole += len(values[i])
				}
			}
			if picked > whole {
				c.err("ERR value is out of range, the fields a negative count asks for pass " + strconv.Itoa(limit) + " bytes")
				return
			}
		}
	default:
		perm := rand.Perm(len(keys))
		if int(count) < len(perm) {
			perm = perm[:count]
		}
		picks = perm
	}
	switch {
	case withValues && !c.resp3:
		c.array(2 * len(picks))
	default: // RESP3's WITHVALUES: an array of [field, value] pairs
		c.array(len(picks))
	}
	for _, i := range picks {
		if withValues && c.resp3 {
			c.array(2)
		}
		c.bulkString(keys[i])
		if withValues {
			c.bulk(values[i])
		}
	}
}

func (s *Server) hscan(ctx context.Context, c *conn, args [][]byte) {
	cursor, ok := parseCursor(args[2])
	if !ok {
		c.err("ERR invalid cursor")
		return
	}
	// As Redis: a missing key gets an empty scan whatever the options.
	b, ok := s.live(ctx, c, args[1])
	if !ok {
		return
	}
	if b == nil {
		c.out = append(c.out, "*2\r\n$1\r\n0\r\n*0\r\n"...)
		return
	}
	opts, ok := c.scanOptions(args[3:], true)
	if !ok {
		return
	}
	// The page, then its values, from one view. A step costs O(log n +
	// COUNT) while no field is added to the hash (see bucket.Tx.Scan).
	var (
		page      []string
		values    [][]byte
		next      uint64
		tooCostly bool
	)
	_, ok = s.view(ctx, c, args[1], func(tx *bucket.Tx) error {
		page, next, _ = tx.Scan(cursor, opts.count)
		var matched bool
		if page, matched = opts.filter(page); !matched {
			tooCostly = true
			return nil
		}
		tooCostly, values = false, values[:0]
		if !opts.noValues {
			for _, k := range page {
				v, _ := tx.Get(k)
				values = append(values, v)
			}
		}
		return nil
	})
	if !ok {
		return
	}
	if tooCostly {
		c.err(errGlobTooCostly)
		return
	}
	c.array(2)
	c.bulkString(strconv.FormatUint(next, 10))
	if opts.noValues {
		c.array(len(page))
	} else {
		c.array(2 * len(page))
	}
	for i, k := range page {
		c.bulkString(k)
		if !opts.noValues {
			c.bulk(values[i])
		}
	}
}
