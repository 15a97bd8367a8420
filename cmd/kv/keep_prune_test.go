package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// An operator's directory in checkpoints/ whose name happens to be a
// number (a date: 20240101) is not a checkpoint: --keep-checkpoints must
// not delete it with the old checkpoints.
func TestKeepCheckpointsSparesANumberNamedDirectoryThatIsNoCheckpoint(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	base := filepath.Join(dir, "checkpoints")
	mine := filepath.Join(base, "20240101")
	require.NoError(t, os.MkdirAll(mine, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(mine, "dump.json"), []byte("an operator's backup"), 0o644))

	var logs bytes.Buffer
	cps := &checkpoints{st: st, log: slog.New(slog.NewTextHandler(&logs, nil)), keep: 1}
	_, err = cps.Save()
	require.NoError(t, err)
	_, err = cps.Save()
	require.NoError(t, err)

	_, err = os.Stat(filepath.Join(mine, "dump.json"))
	assert.NoError(t, err, "the operator's directory was deleted as an old checkpoint")
	ents, err := os.ReadDir(base)
	require.NoError(t, err)
	assert.Len(t, ents, 2, "the newest checkpoint and the operator's directory")
}

// A symbolic link named like a checkpoint is neither followed nor deleted.
func TestKeepCheckpointsLeavesSymlinks(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	base := filepath.Join(dir, "checkpoints")
	require.NoError(t, os.MkdirAll(base, 0o755))
	elsewhere := t.TempDir()
	cp := filepath.Join(elsewhere, "cp")
	require.NoError(t, st.Checkpoint(cp)) // a real checkpoint, elsewhere
	require.NoError(t, os.Symlink(cp, filepath.Join(base, "100")))

	cps := &checkpoints{st: st, log: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), keep: 1}
	_, err = cps.Save()
	require.NoError(t, err)
	_, err = os.Lstat(filepath.Join(base, "100"))
	assert.NoError(t, err, "the link stays")
	_, err = store.Check(cp)
	assert.NoError(t, err, "its target is whole")
}
