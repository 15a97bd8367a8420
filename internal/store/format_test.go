package store

import (
	"encoding/binary"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// setFormat writes v (raw bytes) as the format version of the closed store
// in dir, as a newer kv, or damage, would leave it.
func setFormat(t *testing.T, dir string, v []byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	require.NoError(t, err)
	if v == nil {
		require.NoError(t, db.Delete(keyFormat, pebble.Sync))
	} else {
		require.NoError(t, db.Set(keyFormat, v, pebble.Sync))
	}
	require.NoError(t, db.Close())
}

func formatOf(t *testing.T, s *Store) []byte {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, c, err := s.db.Get(keyFormat)
	require.NoError(t, err)
	defer c.Close()
	return append([]byte(nil), v...)
}

// A store records its format version in a new directory, and in one from
// before the version was recorded (the same layout), keeping its data; a
// checkpoint carries it; Check reads it without a problem.
func TestFormatVersionIsRecorded(t *testing.T) {
	version := binary.BigEndian.AppendUint64(nil, formatVersion)
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	assert.Equal(t, version, formatOf(t, s), "a new store")
	require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
	cp := t.TempDir() + "/cp"
	require.NoError(t, s.Checkpoint(cp))
	require.NoError(t, s.Close())

	setFormat(t, dir, nil) // as the kv before the version key left it
	s = openT(t, dir, Options{})
	assert.Equal(t, version, formatOf(t, s), "recorded at the first open")
	assert.Equal(t, map[string]map[string][]byte{"b": {"k": []byte("v")}}, loadAll(t, s))
	require.NoError(t, s.Close())

	for _, d := range []string{dir, cp} {
		rep, err := Check(d)
		require.NoError(t, err)
		assert.Empty(t, rep.Problems, d)
	}
	s = openT(t, cp, Options{})
	assert.Equal(t, version, formatOf(t, s), "a checkpoint's")
	require.NoError(t, s.Close())
}

// A directory that a newer kv wrote (a later format version) is refused
// by Open and by Check, before anything of it is read or written; a
// damaged version is damage.
func TestFormatVersionRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version []byte
		want    error
		says    string
	}{
		{"newer", binary.BigEndian.AppendUint64(nil, formatVersion+1), ErrNewerFormat, "is in store format 2, and this kv reads format 1 at most"},
		{"zero", binary.BigEndian.AppendUint64(nil, 0), ErrCorrupt, "format version"},
		{"short", []byte{1}, ErrCorrupt, "format version"},
		{"long", append(binary.BigEndian.AppendUint64(nil, formatVersion), 0), ErrCorrupt, "format version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
			require.NoError(t, s.Close())
			setFormat(t, dir, tc.version)

			_, err := Open(dir, Options{})
			require.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), tc.says)
			assert.Contains(t, err.Error(), dir)
			rep, err := Check(dir)
			if tc.want == ErrNewerFormat {
				require.ErrorIs(t, err, ErrNewerFormat)
			} else {
				require.ErrorIs(t, err, ErrCorrupt)
				require.Len(t, rep.Problems, 1)
				assert.Contains(t, rep.Problems[0], "bad store format version")
			}

			// Refused, not changed: with the version set back, it opens
			// with its data.
			setFormat(t, dir, binary.BigEndian.AppendUint64(nil, formatVersion))
			s = openT(t, dir, Options{})
			assert.Equal(t, map[string]map[string][]byte{"b": {"k": []byte("v")}}, loadAll(t, s))
			require.NoError(t, s.Close())
		})
	}
}
