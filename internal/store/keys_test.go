package store

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeysRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, key string }{
		{"b", "k"}, {"", ""}, {"\x00\xff", "\x02"}, {string(bytes.Repeat([]byte{'n'}, 300)), "k"},
	} {
		name, err := decodeMarker(markerKey(tc.name))
		require.NoError(t, err)
		assert.Equal(t, tc.name, string(name))
		name, key, err := decodePair(appendPairKey(nil, tc.name, tc.key))
		require.NoError(t, err)
		assert.Equal(t, tc.name, string(name))
		assert.Equal(t, tc.key, string(key))
	}
	n, err := decodeLogKey(logKey(1 << 40))
	require.NoError(t, err)
	assert.Equal(t, uint64(1<<40), n)
}

// A name length in a longer encoding than kv writes is damage: the same
// name under a second prefix.
func TestDecodeRejectsLongerLengths(t *testing.T) {
	for _, k := range [][]byte{
		{tagBucket, 0x81, 0x00, 'a'},          // 1 in two bytes
		{tagPair, 0x80, 0x00, 'k'},            // 0 in two bytes
		{tagPair, 0x82, 0x80, 0x00, 'a', 'b'}, // 2 in three bytes
	} {
		var err error
		if k[0] == tagBucket {
			_, err = decodeMarker(k)
		} else {
			_, _, err = decodePair(k)
		}
		assert.ErrorContains(t, err, "not the 1 kv writes", "%q", k)
		assert.Error(t, checkKey(k), "%q", k)
	}
}

// FuzzKeys: the key decoders take any bytes without panicking, and accept
// only keys that kv's encoders write, byte for byte; every name and key
// make a key that decodes back to them.
func FuzzKeys(f *testing.F) {
	f.Add([]byte(markerKey("bucket")), "bucket", "key")
	f.Add(appendPairKey(nil, "b", "k"), "", "\x00")
	f.Add(logKey(7), "n", "")
	f.Add([]byte{tagPair, 0x80, 0x00}, "x", "y")
	f.Fuzz(func(t *testing.T, k []byte, name, key string) {
		if got, err := decodeMarker(k); err == nil && !bytes.Equal(markerKey(string(got)), k) {
			t.Fatalf("decodeMarker accepted %q as %q, which encodes as %q", k, got, markerKey(string(got)))
		}
		if n, kk, err := decodePair(k); err == nil && !bytes.Equal(appendPairKey(nil, string(n), string(kk)), k) {
			t.Fatalf("decodePair accepted %q as (%q, %q)", k, n, kk)
		}
		if n, err := decodeLogKey(k); err == nil && !bytes.Equal(logKey(n), k) {
			t.Fatalf("decodeLogKey accepted %q as %d", k, n)
		}
		_ = checkKey(k)

		got, err := decodeMarker(markerKey(name))
		if err != nil || string(got) != name {
			t.Fatalf("marker of %q decodes as %q, %v", name, got, err)
		}
		gn, gk, err := decodePair(appendPairKey(nil, name, key))
		if err != nil || string(gn) != name || string(gk) != key {
			t.Fatalf("pair (%q, %q) decodes as (%q, %q), %v", name, key, gn, gk, err)
		}
	})
}
