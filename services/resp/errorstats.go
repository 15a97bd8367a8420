package resp

import (
	"slices"
	"strconv"
	"strings"
	"sync"
)

// maxErrorCodes bounds the error codes INFO errorstats lists, as Redis 7.2's
// (ERRORSTATS_LIMIT): past it, a new code is counted in
// total_error_replies alone.
const maxErrorCodes = 128

// errorStats counts the error replies sent, by code (the error's first
// word: ERR, WRONGTYPE, NOAUTH...), for INFO errorstats and
// total_error_replies, as Redis counts them: every error reply, those of
// commands refused before they ran included.
type errorStats struct {
	mu    sync.Mutex
	total int64
	codes map[string]int64
}

// count records one error reply, msg.
func (e *errorStats) count(msg string) {
	code, _, _ := strings.Cut(msg, " ")
	e.mu.Lock()
	defer e.mu.Unlock()
	e.total++
	if _, ok := e.codes[code]; !ok && len(e.codes) >= maxErrorCodes {
		return
	}
	if e.codes == nil {
		e.codes = make(map[string]int64)
	}
	e.codes[code]++
}

// totals returns total_error_replies, and the errorstats lines, by code.
func (e *errorStats) totals() (total int64, lines []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for code, n := range e.codes {
		lines = append(lines, "errorstat_"+code+":count="+strconv.FormatInt(n, 10))
	}
	slices.Sort(lines)
	return e.total, lines
}

// reset starts the counts again (CONFIG RESETSTAT).
func (e *errorStats) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.total, e.codes = 0, nil
}
