package resp

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// COMMAND INFO bounds only its repeats: every command named once is
// described, however far past MaxReplyBytes the reply goes (as COMMAND
// and COMMAND INFO with no name are).
func TestCommandInfoOfEachCommandOnceIsNotBounded(t *testing.T) {
	const limit = 1 << 10
	ts := start(t, Config{MaxReplyBytes: limit})
	ctx := context.Background()
	rc := ts.client(t)
	names, err := rc.Do(ctx, "COMMAND", "LIST").StringSlice()
	require.NoError(t, err)
	args := []any{"COMMAND", "INFO"}
	for _, n := range names {
		args = append(args, n)
	}
	info, err := rc.Do(ctx, args...).Slice()
	require.NoError(t, err, "no command is named twice")
	require.Len(t, info, len(names))
	for i, n := range names {
		require.NotNil(t, info[i], n)
	}
	all, err := rc.Do(ctx, "COMMAND", "INFO").Slice()
	require.NoError(t, err)
	assert.Len(t, all, len(names))
}
