package store

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// DropBucketNoWait deletes what DropBucket does: the marker and every
// pair. A bucket created again under the name after the drop starts
// empty, before and after a restart: no pair of the dropped one comes
// back.
func TestDropBucketNoWaitDropsThePairs(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: policy})
			require.NoError(t, s.Apply("x", Put("old", []byte("1")), Put("kept?", []byte("2"))))

			w, err := s.DropBucketNoWait("x")
			require.NoError(t, err)
			_, found, err := s.Load("x") // commits the drop first
			require.NoError(t, err)
			assert.False(t, found, "dropped")
			require.NoError(t, w.Wait())

			require.NoError(t, s.Apply("x", Put("new", []byte("3"))))
			pairs, found, err := s.Load("x")
			require.NoError(t, err)
			require.True(t, found)
			assert.Equal(t, map[string][]byte{"new": []byte("3")}, pairs, "the dropped bucket's pairs are gone")
			require.NoError(t, s.Close())

			s = openT(t, dir, Options{Fsync: policy})
			defer func() { require.NoError(t, s.Close()) }()
			pairs, found, err = s.Load("x")
			require.NoError(t, err)
			require.True(t, found)
			assert.Equal(t, map[string][]byte{"new": []byte("3")}, pairs, "and stay gone across a restart")
		})
	}
}
