package scanorder

import (
	"hash/fnv"
	"slices"
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

func TestCheckStep(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	slices.SortFunc(names, func(x, y string) int { return Compare(Of(x), Of(y)) })
	first, last := Of(names[0]).Hash, Of(names[len(names)-1]).Hash
	assert.NoError(t, CheckStep(names, first, 0), "the whole set in one step")
	assert.NoError(t, CheckStep(names[:2], first, Of(names[2]).Hash))
	assert.NoError(t, CheckStep(nil, 5, 9))
	assert.ErrorContains(t, CheckStep(names, first+1, 0), "before the cursor")
	assert.ErrorContains(t, CheckStep(names, first, last), "at or past the next cursor")
	assert.ErrorContains(t, CheckStep([]string{names[1], names[0]}, 0, 0), "comes after")
	assert.ErrorContains(t, CheckStep([]string{names[0], names[0]}, 0, 0), "comes after")
	assert.ErrorContains(t, CheckStep(nil, 9, 5), "back to")
}
