package resp

// maxStars is how many groups of '*' a pattern may pass: Redis's
// stringmatchlen gives up (no match) past 1,000 levels of recursion, one
// per group.
const maxStars = 1000

// globMatch reports whether s matches the Redis glob pattern p: * (any
// run), ? (any byte), [abc], [^abc], [a-z] and \ to escape. It is Redis's
// stringmatchlen, iterative where Redis recurses on '*', with the same
// results, quirks included (FuzzGlobMatch holds it to them): an empty s
// matches only an empty p (callers treat a lone "*" as no pattern, as
// Redis's do); in a class, a '-' makes a range of the bytes around it even
// when the second one is ']', and the class then goes on; and a pattern
// matches nothing once it passes more than maxStars groups of '*' that
// are not at its end (Redis's limit on its recursion).
func globMatch(p, s string) bool {
	if s == "" {
		return p == ""
	}
	// starP and starS remember the last '*' to backtrack to; stars
	// counts the groups of '*' passed, and starN was stars there.
	starP, starS, starN, stars := -1, -1, 0, 0
	pi, si := 0, 0
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				if pi == len(p) {
					return true
				}
				if stars++; stars > maxStars {
					return false
				}
				starP, starS, starN = pi, si, stars
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if n, ok := matchClass(p[pi:], s[si]); n > 0 {
					if ok {
						pi += n
						si++
						continue
					}
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
			return false
		}
		starS++
		pi, si, stars = starP, starS, starN
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
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
