package resp

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The memory a transaction keeps is bounded by MaxRequestBytes, the
// arguments' slices included: a command of many empty arguments keeps 24
// bytes of slice header for each, which counting the arguments' bytes
// alone took for nothing (a client could make the server keep any amount
// of memory for a few bytes of count).
func TestMultiQueueBoundCountsEveryArgument(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			const limit = 64 << 10
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, MaxRequestBytes: limit})
			r := ts.raw(t)
			// HDEL k and 2,000 empty fields: 12 KB to send, 48 KB of
			// argument slices to keep.
			var b strings.Builder
			b.WriteString("*2002\r\n$4\r\nHDEL\r\n$1\r\nk\r\n")
			for range 2000 {
				b.WriteString("$0\r\n\r\n")
			}
			cmd := b.String()
			const n = 40 // 1.9 MB kept: thirty times the bound
			r.send("MULTI\r\n")
			require.Equal(t, "+OK", r.line())
			refused := 0
			for range n {
				r.send(cmd)
				if l := r.line(); l != "+QUEUED" {
					assert.Contains(t, l, "transaction too large")
					refused++
				}
			}
			assert.Greater(t, refused, 0, "the queued commands keep more than MaxRequestBytes")
			r.send("EXEC\r\n")
			if refused > 0 {
				require.Equal(t, "-EXECABORT Transaction discarded because of previous errors.", r.line())
			}
		})
	}
}
