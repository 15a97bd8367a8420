package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Check given a relative path, from a working directory reached through
// a symlink ($PWD names the link, as a shell sets it), must see the store
// this process holds there: both must name the directory alike (absolute
// first, then resolved), or the two keys of inUse differ.
func TestRelativeCheckUnderALinkedWorkingDirSeesTheStore(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(real, link))
	t.Chdir(link) // sets $PWD to link

	s := openT(t, "data", Options{})
	require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
	defer s.Close()

	_, err := Check("data")
	assert.ErrorIs(t, err, ErrLocked, "check must refuse a directory a store of this process holds")

	out, err := childCmd(t, "lock", s.Dir()).Output()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(strings.TrimSpace(string(out)), "error: "), "the store keeps its lock: %s", out)
}

// The other order: a Check under way (relative path, symlinked cwd), then
// an Open of the same directory in this process.
func TestOpenDuringARelativeCheckIsRefused(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(real, link))
	t.Chdir(link)
	s := openT(t, "data", Options{})
	require.NoError(t, s.Close())

	lock, err := lockForCheck("data")
	require.NoError(t, err)
	s2, err := Open("data", Options{})
	if err == nil {
		defer s2.Close()
	}
	require.NoError(t, lock.Close())
	require.ErrorIs(t, err, ErrLocked, "open while a check of this process reads the directory")
}
