package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

func TestCheckpointName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secs, n uint64
		ok      bool
	}{
		{"1700000000", 1700000000, 1, true},
		{"1700000000-2", 1700000000, 2, true},
		{"1700000000-17", 1700000000, 17, true},
		{"0", 0, 1, true},
		{"1700000000-1", 0, 0, false}, // Save's second of a second is -2
		{"1700000000-0", 0, 0, false},
		{"1700000000-", 0, 0, false},
		{"1700000000-2-3", 0, 0, false},
		{"-2", 0, 0, false},
		{"+17", 0, 0, false},
		{"17x", 0, 0, false},
		{".1700000000", 0, 0, false},
		{".1700000000" + store.PartialSuffix, 0, 0, false},
		{"backup", 0, 0, false},
		{"01", 0, 0, false}, // Save writes no leading zero
		{"1700000000-02", 0, 0, false},
		{"", 0, 0, false},
	} {
		secs, n, ok := checkpointName(tc.name)
		assert.Equal(t, tc.ok, ok, "%q", tc.name)
		if tc.ok {
			assert.Equal(t, tc.secs, secs, "%q", tc.name)
			assert.Equal(t, tc.n, n, "%q", tc.name)
		}
	}
}

// With --keep-checkpoints N, each save deletes the oldest checkpoints
// beyond the N newest (in the order of their names' seconds, then their
// -N), and nothing else: not a directory or file of another name, not a
// partial checkpoint, not one a store holds.
func TestKeepCheckpointsDeletesTheOldest(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	base := filepath.Join(dir, "checkpoints")
	for _, n := range []string{"90", "99", "100", "100-2", "100-10", "101"} {
		require.NoError(t, st.Checkpoint(filepath.Join(base, n)))
	}
	for _, n := range []string{"backup", ".95" + store.PartialSuffix, "80"} { // 80: no checkpoint's time in it
		require.NoError(t, os.MkdirAll(filepath.Join(base, n), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(base, "50"), []byte("an operator's file"), 0o644))
	held, err := store.Open(filepath.Join(base, "90"), store.Options{}) // a daemon started from it
	require.NoError(t, err)
	defer func() { require.NoError(t, held.Close()) }()

	var logs bytes.Buffer
	cps := &checkpoints{st: st, log: slog.New(slog.NewTextHandler(&logs, nil)), keep: 3}
	newest, err := cps.Save()
	require.NoError(t, err)
	ents, err := os.ReadDir(base)
	require.NoError(t, err)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	assert.ElementsMatch(t, []string{filepath.Base(newest), "101", "100-10", "90", "backup", "50", "80", ".95" + store.PartialSuffix}, left,
		"the three newest kept, 90 kept in use, the rest deleted; other names, and what is no checkpoint, untouched")
	assert.Contains(t, logs.String(), "an old checkpoint is in use by a store; kept")
	assert.Contains(t, logs.String(), "deleted an old checkpoint")
	_, err = store.Check(newest)
	require.NoError(t, err, "the new checkpoint is whole")

	// Keep 0: every checkpoint stays.
	cps.keep = 0
	_, err = cps.Save()
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(base, "101"))
	require.NoError(t, err)
}

// Through the daemon: SAVE, BGSAVE and POST /v1/save keep only the newest
// --keep-checkpoints; a negative count is a usage error.
func TestDaemonKeepsTheNewestCheckpoints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	l, stop := serveAll(t, "--in-memory=false", "--data-dir", dir, "--keep-checkpoints", "2", "--http-addr", "127.0.0.1:0")
	rc := redis.NewClient(&redis.Options{Addr: l.resp.String()})
	defer rc.Close()
	require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())
	for range 3 {
		require.NoError(t, rc.Save(ctx).Err())
	}
	res, err := http.Post("http://"+l.http.String()+"/v1/save", "", nil)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusOK, res.StatusCode)
	ents, err := os.ReadDir(filepath.Join(dir, "checkpoints"))
	require.NoError(t, err)
	assert.Len(t, ents, 2, "four saves, two kept")
	for _, e := range ents {
		_, err := store.Check(filepath.Join(dir, "checkpoints", e.Name()))
		assert.NoError(t, err)
	}
	assert.Equal(t, exitOK, stop())

	var out, errOut bytes.Buffer
	_, code, done := parse([]string{"--keep-checkpoints", "-1"}, nil, &out, &errOut)
	assert.True(t, done)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut.String(), "--keep-checkpoints (KV_KEEP_CHECKPOINTS) is -1 (0 keeps all)")
	o, _, done := parse(nil, []string{"KV_KEEP_CHECKPOINTS=5"}, &out, &errOut)
	require.False(t, done)
	assert.Equal(t, 5, o.keepCheckpoints)
}

// INFO's Persistence section counts every save, POST /v1/save's too, and
// says whether the last one failed, whichever front end made it.
func TestInfoCountsEverySave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	l, stop := serveAll(t, "--in-memory=false", "--data-dir", dir, "--http-addr", "127.0.0.1:0")
	defer func() { assert.Equal(t, exitOK, stop()) }()
	rc := redis.NewClient(&redis.Options{Addr: l.resp.String()})
	defer rc.Close()
	persistence := func() map[string]string {
		info, err := rc.InfoMap(ctx, "persistence").Result()
		require.NoError(t, err)
		return info["Persistence"]
	}
	post := func() int {
		res, err := http.Post("http://"+l.http.String()+"/v1/save", "", nil)
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		return res.StatusCode
	}

	require.Equal(t, http.StatusOK, post())
	p := persistence()
	assert.Equal(t, "1", p["rdb_saves"], "POST /v1/save counts")
	assert.Equal(t, "ok", p["rdb_last_bgsave_status"])
	assert.Equal(t, "0", p["rdb_bgsave_in_progress"])

	// A save that fails (checkpoints/ is a file) is the last status.
	base := filepath.Join(dir, "checkpoints")
	require.NoError(t, os.RemoveAll(base))
	require.NoError(t, os.WriteFile(base, []byte("in the way"), 0o644))
	require.Equal(t, http.StatusInternalServerError, post())
	p = persistence()
	assert.Equal(t, "err", p["rdb_last_bgsave_status"], "the HTTP save that failed")
	assert.Equal(t, "1", p["rdb_saves"])

	require.NoError(t, os.Remove(base))
	require.NoError(t, rc.Save(ctx).Err())
	p = persistence()
	assert.Equal(t, "ok", p["rdb_last_bgsave_status"])
	assert.Equal(t, "2", p["rdb_saves"])
}

// checkpointName accepts exactly the names Save gives: whatever it
// accepts prints back as the same name.
func FuzzCheckpointName(f *testing.F) {
	for _, s := range []string{"1700000000", "1700000000-2", "0", "1700000000-1", "-2", "+17", "17x", "", "01", "1-02"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		secs, n, ok := checkpointName(name)
		if !ok {
			return
		}
		if want := checkpointDirName(secs, n); n < 1 || want != name {
			t.Fatalf("checkpointName(%q) = %d, %d: which is the name %q", name, secs, n, want)
		}
	})
}

func TestLoggedGroups(t *testing.T) {
	assert.Equal(t, " (1 logged group of writes included, folded in at the next start)", loggedGroups(1))
	assert.Equal(t, " (2 logged groups of writes included, folded in at the next start)", loggedGroups(2))
}
