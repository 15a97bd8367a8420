package resp

// maxStars is how many groups of '*' a pattern may pass: Redis's
// stringmatchlen gives up (no match) past 1,000 levels of recursion, one
// per group.
const maxStars = 1000

// globMatchWithin reports whether s matches the Redis glob pattern p: *
// (any run), ? (any byte), [abc], [^abc], [a-z] and \ to escape. It is
// Redis's stringmatchlen, iterative where Redis recurses on '*', with the
// same results, quirks included (FuzzGlobMatch holds it to them): an
// empty s matches only an empty p (callers treat a lone "*" as no
// pattern, as Redis's do); in a class, a '-' makes a range of the bytes
// around it even when the second one is ']', and the class then goes on;
// and a pattern matches nothing once it passes more than maxStars groups
// of '*' that are not at its end (Redis's limit on its recursion). It
// costs up to len(s) times len(p) steps (a byte of s or of p looked at),
// so it takes at most limit of them: ok is false, and match meaningless,
// if it needs more. It reports the steps it took (past limit, those it
// took before it gave up). Every caller matches a pattern its client
// chose, and so goes through a globBudget.
func globMatchWithin(p, s string, limit int) (match bool, steps int, ok bool) {
	if s == "" {
		return p == "", 0, true
	}
	// starP and starS remember the last '*' to backtrack to; stars
	// counts the groups of '*' passed, and starN was stars there.
	starP, starS, starN, stars := -1, -1, 0, 0
	pi, si := 0, 0
	for si < len(s) {
		if steps++; steps > limit {
			return false, steps, false
		}
		if pi < len(p) {
			switch p[pi] {
			case '*':
				run := pi
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				steps += pi - run
				if pi == len(p) {
					return true, steps, steps <= limit
				}
				if stars++; stars > maxStars {
					return false, steps, steps <= limit
				}
				starP, starS, starN = pi, si, stars
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				n, in := matchClass(p[pi:], s[si])
				steps += n // matchClass walks the whole class
				if n > 0 && in {
					pi += n
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if p[pi+1] == s[si] {
						pi += 2
						si++
						continue
					}
				} else if s[si] == '\\' {
					pi++
					si++
					continue
				}
			default:
				if p[pi] == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false, steps, steps <= limit
		}
		starS++
		pi, si, stars = starP, starS, starN
	}
	run := pi
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	steps += pi - run
	return pi == len(p), steps, steps <= limit
}

// A globBudget bounds what matching a client's pattern costs one command
// (KEYS, SCAN and HSCAN with MATCH, COMMAND LIST FILTERBY PATTERN, CONFIG
// GET), which on the event loop every other client waits for, or one
// event (a subscriber's patterns: newEventGlobBudget). Matching is Redis's
// algorithm, which takes up to the name's length times the pattern's
// steps: a pattern of 128 KiB against long names of the byte it repeats
// held every client of the loop for 19 seconds (Redis's loop too). The
// budget is globBaseSteps (tens of milliseconds), plus globStepsPerByte
// for each byte of each name matched and of the pattern (up to
// globPatternCredit bytes of it, at each name): many times what any
// pattern short of pathological needs, and a bound on the others of a
// small multiple of reading the names.
type globBudget struct {
	left int
	// capped: what match adds for the bytes matched may not pass
	// creditLeft in all (an event's budget, however many patterns).
	capped     bool
	creditLeft int
}

const (
	globBaseSteps     = 1 << 24
	globStepsPerByte  = 64
	globPatternCredit = 1 << 10
)

// errGlobTooCostly is the reply to a command whose pattern spent its
// globBudget.
const errGlobTooCostly = "ERR pattern too costly to match: it passed the steps allowed for the names it was matched against"

// A subscriber's budget for one event (see subscriber.deliver): matching
// runs at every event, which others' writes make, so its base is small
// (well under a millisecond), and each pattern gets globStepsPerByte for
// each byte of the channel and of the pattern, but no more than
// globEventMaxCredit in all, however many patterns there are: the steps
// grow with the patterns, and a client chooses how many it sends (2 KB of
// patterns of 62 bytes each cost as many steps as one 2 KB literal after a
// '*'). About 5 ms of matching an event, at the most: a thousand patterns
// that start with '*' against 4 KB bucket names.
const (
	globEventBaseSteps = 1 << 16
	globEventMaxCredit = 1 << 22
)

func newGlobBudget() globBudget { return globBudget{left: globBaseSteps} }

// newEventGlobBudget returns a subscriber's budget for one event.
func newEventGlobBudget() globBudget {
	return globBudget{left: globEventBaseSteps, capped: true, creditLeft: globEventMaxCredit}
}

// match is globMatch(p, s) within the budget: ok is false once the
// command has spent it.
func (b *globBudget) match(p, s string) (match, ok bool) {
	credit := globStepsPerByte * (len(s) + min(len(p), globPatternCredit))
	if b.capped {
		credit = min(credit, b.creditLeft)
		b.creditLeft -= credit
	}
	b.left += credit
	match, steps, ok := globMatchWithin(p, s, b.left)
	b.left -= steps
	return match, ok
}

// filter keeps, in place and in order, the names that match p within the
// budget: ok is false once the command has spent it.
func (b *globBudget) filter(p string, names []string) (kept []string, ok bool) {
	kept = names[:0]
	for _, n := range names {
		match, ok := b.match(p, n)
		if !ok {
			return nil, false
		}
		if match {
			kept = append(kept, n)
		}
	}
	return kept, true
}

// matchClass matches ch against the class that opens p ('['). It returns
// the length of the class in p and whether ch is in it. An unterminated
// class runs to the end of the pattern, as in Redis.
func matchClass(p string, ch byte) (n int, ok bool) {
	i := 1
	not := false
	if i < len(p) && p[i] == '^' {
		not = true
		i++
	}
	match := false
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
			if p[i] == ch {
				match = true
			}
		case i+2 < len(p) && p[i+1] == '-':
			// Compared as C chars, signed where Redis runs (x86-64):
			// bytes from 0x80 sort below 0x00.
			lo, hi, c := int8(p[i]), int8(p[i+2]), int8(ch)
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo <= c && c <= hi {
				match = true
			}
			i += 2
		default:
			if p[i] == ch {
				match = true
			}
		}
		i++
	}
	if i < len(p) {
		i++ // the ']'
	}
	if not {
		match = !match
	}
	return i, match
}
