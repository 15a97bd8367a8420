package testlog

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBufferTakesConcurrentWritersAndFiltersByLevel(t *testing.T) {
	var b Buffer
	log := b.Logger(slog.LevelWarn)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			log.Info("dropped")
			log.Warn("kept")
		})
	}
	wg.Wait()
	assert.Equal(t, 8, countLines(b.String(), "msg=kept"))
	assert.NotContains(t, b.String(), "dropped")
}

func countLines(s, sub string) (n int) {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			n++
		}
	}
	return n
}
