package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecondOpenInProcessFails(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	defer s.Close()

	start := time.Now()
	_, err := Open(dir, Options{})
	require.ErrorIs(t, err, ErrLocked)
	assert.Less(t, time.Since(start), 30*time.Second, "fails at once, without waiting for the lock (a hang, not a speed)")
	assert.Contains(t, err.Error(), s.Dir())
	t.Logf("second open: %v", err)

	// Another name for the same directory: a relative path and a symlink.
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(dir, link))
	_, err = Open(link, Options{})
	require.ErrorIs(t, err, ErrLocked)
	wd, err := os.Getwd()
	require.NoError(t, err)
	if rel, rerr := filepath.Rel(wd, dir); rerr == nil {
		_, err = Open(rel, Options{})
		require.ErrorIs(t, err, ErrLocked)
	}

	_, err = Check(dir)
	require.ErrorIs(t, err, ErrLocked, "check refuses a directory in use")
}

func TestSecondOpenInAnotherProcessFails(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	out, err := childCmd(t, "lock", dir).Output()
	require.NoError(t, err)
	line := strings.TrimSpace(string(out))
	t.Logf("child: %s", line)
	assert.True(t, strings.HasPrefix(line, "error: "), "child said %q", line)
	assert.Contains(t, line, ErrLocked.Error())
	assert.Contains(t, line, s.Dir(), "the error names the directory")

	// Check's shared lock is refused too.
	out, err = childCmd(t, "check", dir).Output()
	require.NoError(t, err)
	line = strings.TrimSpace(string(out))
	assert.True(t, strings.HasPrefix(line, "error: "), "child said %q", line)
	assert.Contains(t, line, ErrLocked.Error())

	// Once released, another process may open it.
	require.NoError(t, s.Close())
	out, err = childCmd(t, "lock", dir).Output()
	require.NoError(t, err)
	assert.Equal(t, "opened", strings.TrimSpace(string(out)))
	out, err = childCmd(t, "check", dir).Output()
	require.NoError(t, err)
	assert.Equal(t, "checked", strings.TrimSpace(string(out)))
}

// An Open while a Check of this process reads the directory is refused:
// fcntl locks belong to the process, so the store's lock would not exclude
// the Check, and the Check's closing its descriptor would drop the store's
// lock, letting another process open the store too.
func TestOpenDuringACheckIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
	require.NoError(t, s.Close())

	lock, err := lockForCheck(dir) // what Check holds while it reads dir
	require.NoError(t, err)
	_, err = Open(dir, Options{})
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, lock.Close())

	s = openT(t, dir, Options{}) // the Check is done
	defer s.Close()
	out, err := childCmd(t, "lock", dir).Output()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(strings.TrimSpace(string(out)), "error: "), "the store keeps its lock: %s", out)
}

// Two Checks of one directory in this process share one lock: when the
// first ends, the second still excludes other processes (fcntl locks
// belong to the process, so closing the first's own descriptor would have
// dropped the second's lock).
func TestTwoChecksShareTheirLock(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	require.NoError(t, s.Close())
	first, err := lockForCheck(dir)
	require.NoError(t, err)
	second, err := lockForCheck(dir)
	require.NoError(t, err)
	require.NoError(t, first.Close())
	require.NoError(t, first.Close(), "a second Close changes nothing")

	out, err := childCmd(t, "lock", dir).Output()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(strings.TrimSpace(string(out)), "error: "), "the second Check still holds the lock: %s", out)
	require.NoError(t, second.Close())
	out, err = childCmd(t, "lock", dir).Output()
	require.NoError(t, err)
	assert.Equal(t, "opened", strings.TrimSpace(string(out)))
}

// InUse tells whether a store holds a directory, and changes nothing: a
// missing directory is not created, and a store opens it after.
func TestInUse(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not-yet")
	require.NoError(t, InUse(missing))
	_, err := os.Stat(missing)
	require.ErrorIs(t, err, fs.ErrNotExist, "InUse created the directory")

	dir := t.TempDir()
	require.NoError(t, InUse(dir), "an empty directory")
	s := openT(t, dir, Options{})
	require.ErrorIs(t, InUse(dir), ErrLocked, "held by a store of this process")
	require.NoError(t, s.Close())
	require.NoError(t, InUse(dir), "released")
	s = openT(t, dir, Options{}) // InUse left nothing that keeps a store out

	// Held by a store of another process (here, this one, as the child
	// sees it), and then released.
	out, err := childCmd(t, "inuse-once", dir).Output()
	require.NoError(t, err)
	line := strings.TrimSpace(string(out))
	assert.True(t, strings.HasPrefix(line, "error: "), "child said %q", line)
	assert.Contains(t, line, ErrLocked.Error())
	require.NoError(t, s.Close())
	out, err = childCmd(t, "inuse-once", dir).Output()
	require.NoError(t, err)
	assert.Equal(t, "free", strings.TrimSpace(string(out)))
}
