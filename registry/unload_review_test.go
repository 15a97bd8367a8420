package registry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A COPY reads its source: a use of it, like a lookup's. A bucket used
// only as a COPY's source between two passes stays in memory, and the
// copies keep reading it from memory, not from the disk.
func TestUnloadIdleKeepsACopiedSource(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	reg, _, _ := newUnloadingTree(t, st, time.Hour) // passes run by hand
	ctx := context.Background()
	src, err := reg.Create(ctx, "template")
	require.NoError(t, err)
	require.NoError(t, src.Put("k", []byte("v")))
	reg.unloadIdleOnce(nil) // clears the new bucket's mark

	done, err := reg.Copy(ctx, "template", "copy1", true)
	require.NoError(t, err)
	require.True(t, done)
	loads := st.loads.Load()
	reg.unloadIdleOnce(nil)
	select {
	case <-src.Done():
		t.Fatalf("the COPY's source was unloaded though a COPY read it since the last pass: %v", src.Err())
	default:
	}
	done, err = reg.Copy(ctx, "template", "copy2", true)
	require.NoError(t, err)
	require.True(t, done)
	assert.Equal(t, loads, st.loads.Load(), "the second COPY read its source from memory")
}
