package resp

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHRandFieldNegativeCountIsBoundedInBytes: a negative count repeats
// fields, so a short command could make a reply of any size from one large
// field or value (HRANDFIELD h -1048576 WITHVALUES on a 1 MiB value asks
// for 1 TiB: kv's RSS passed 3.5 GB within seconds, as Redis's does). Such a
// reply may not pass MaxReplyBytes unless the hash itself is as large (what
// HGETALL would return).
func TestHRandFieldNegativeCountIsBoundedInBytes(t *testing.T) {
	const limit = 64 << 10
	ts := start(t, Config{MaxReplyBytes: limit})
	ctx := context.Background()
	rc := ts.client(t)
	kib := strings.Repeat("v", 1024)
	require.NoError(t, rc.HSet(ctx, "value", "f", kib).Err())
	require.NoError(t, rc.HSet(ctx, "field", kib, "v").Err())

	const tooLarge = "ERR value is out of range, the fields a negative count asks for pass 65536 bytes"
	assert.EqualError(t, rc.Do(ctx, "HRANDFIELD", "value", "-100", "WITHVALUES").Err(), tooLarge)
	assert.EqualError(t, rc.Do(ctx, "HRANDFIELD", "field", "-100").Err(), tooLarge)

	// Under the limit, or no larger than the hash: answered as before.
	pairs, err := rc.HRandFieldWithValues(ctx, "value", -10).Result()
	require.NoError(t, err)
	assert.Len(t, pairs, 10)
	fields, err := rc.HRandField(ctx, "field", -60).Result()
	require.NoError(t, err)
	assert.Len(t, fields, 60)
	for i := range 100 {
		require.NoError(t, rc.HSet(ctx, "large", strings.Repeat("k", 1021)+string(rune('A'+i%26))+string(rune('A'+i/26)), "v").Err())
	}
	fields, err = rc.HRandField(ctx, "large", -100).Result()
	require.NoError(t, err)
	assert.Len(t, fields, 100)
	// A positive count returns each field once at most: never more than
	// the hash.
	fields, err = rc.HRandField(ctx, "field", 100).Result()
	require.NoError(t, err)
	assert.Len(t, fields, 1)
}
