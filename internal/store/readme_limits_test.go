package store

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The engine settings the README's Limits and caveats state: Pebble's L0
// write stop raised from 12 sublevels to 1,000 (so that flushes into
// memory while the disk fails never stop Pebble's writers), a batch of a
// MiB or more committed alone, and a fold every 8 MiB of records.
func TestEngineSettingsAreTheREADMEs(t *testing.T) {
	s := &Store{}
	o := s.pebbleOptions(false)
	assert.Equal(t, 1000, o.L0StopWritesThreshold)
	assert.Equal(t, 1<<20, largeBatch)
	assert.Equal(t, 8<<20, foldEvery)
}
