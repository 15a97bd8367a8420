package scanorder

import (
	"hash/fnv"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Hash is FNV-1a, 64 bits: cursors handed out by one version of kv must
// mean the same position in the next, so the function is fixed.
func TestHashIsFNV1a(t *testing.T) {
	for _, name := range []string{"", "a", "shopping", "f:000000012345", "\x00\xff binary"} {
		h := fnv.New64a()
		_, _ = h.Write([]byte(name))
		assert.Equal(t, h.Sum64(), Hash(name), "%q", name)
	}
	assert.Equal(t, uint64(0xaf63dc4c8601ec8c), Hash("a"))
}
