package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
	"github.com/kvproject/kv/internal/testlog"
	"github.com/kvproject/kv/services"
)

// A write the disk refuses (full, failing) gets 503 write_failed and
// changes nothing; reads go on, and writes resume once the disk does.
func TestWriteTheStoreRefusesIs503(t *testing.T) {
	faults, a := serveFaultyTree(t)

	key := bucketPath("b") + "/keys/k"
	other := bucketPath("other") + "/keys/k"
	for _, b := range []string{"b", "other"} {
		require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath(b), nil).status)
		require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath(b)+"/keys/k", strings.NewReader("1")).status)
	}

	faults.FailWrites(syscall.ENOSPC)
	expectError(t, a.do("PUT", key, strings.NewReader("2")), http.StatusServiceUnavailable, "write_failed")
	r := a.do("GET", other, nil)
	require.Equal(t, http.StatusOK, r.status, "reads go on")
	require.Equal(t, "1", r.body)

	faults.Clear()
	require.Eventually(t, func() bool {
		return a.do("GET", key, nil).status == http.StatusOK
	}, 10*time.Second, time.Millisecond)
	require.Equal(t, "1", a.do("GET", key, nil).body, "the refused write changed nothing")
	require.Equal(t, http.StatusNoContent, a.do("PUT", key, strings.NewReader("3")).status)
	require.Equal(t, "3", a.do("GET", key, nil).body)
}

// namesFail is a registry whose stored buckets cannot be listed.
type namesFail struct{ Registry }

func (namesFail) NamesErr() ([]string, error) {
	return []string{"live"}, errors.New("store: cannot read")
}

// A list the stored buckets are missing from is not passed off as whole.
func TestListThatCannotBeWholeIs503(t *testing.T) {
	root := tree(t)
	a := serve(t, root, Config{Registry: namesFail{root.Registry()}})
	expectError(t, a.do("GET", "/v1/buckets", nil), http.StatusServiceUnavailable, "unavailable")
}

// Creating and deleting a bucket are writes too: when the disk refuses
// them they get 503 write_failed, as a key's write does, and change
// nothing.
func TestBucketWriteTheStoreRefusesIsWriteFailed(t *testing.T) {
	faults, a := serveFaultyTree(t)
	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("b"), nil).status)

	faults.FailWrites(syscall.ENOSPC)
	expectError(t, a.do("PUT", bucketPath("new"), nil), http.StatusServiceUnavailable, "write_failed")
	expectError(t, a.do("DELETE", bucketPath("b"), nil), http.StatusServiceUnavailable, "write_failed")

	faults.Clear()
	require.Eventually(t, func() bool {
		return a.do("GET", bucketPath("b"), nil).status == http.StatusOK
	}, 10*time.Second, time.Millisecond, "the refused delete changed nothing")
	expectError(t, a.do("GET", bucketPath("new"), nil), http.StatusNotFound, "bucket_not_found")
}

// A bucket the store cannot load now is 503 unavailable, with a message
// of kv's own: the store's error (its files' paths, the system's error)
// goes to the log, not to the client.
func TestLoadFailureDoesNotShowTheStoresError(t *testing.T) {
	faults := &store.Faults{}
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, st.Close()) })
	// A first tree stores the bucket; the second has not loaded it.
	first := services.New(services.Config{Store: st})
	ctx, cancel := context.WithCancel(context.Background())
	errc := first.ServeBackground(ctx)
	b, err := first.Registry().Create(ctx, "stored")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))
	cancel()
	<-errc
	root := services.New(services.Config{Store: st})
	ctx, cancel = context.WithCancel(context.Background())
	errc = root.ServeBackground(ctx)
	t.Cleanup(func() { cancel(); <-errc })
	a := serve(t, root, Config{})
	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("other"), nil).status)

	// A write fails: until the store has recovered from it, it cannot
	// load a bucket.
	faults.FailWrites(syscall.ENOSPC)
	expectError(t, a.do("PUT", keyPath("other", "k"), strings.NewReader("1")), http.StatusServiceUnavailable, "write_failed")
	for _, r := range []reply{
		a.do("GET", keyPath("stored", "k"), nil),
		a.do("PUT", keyPath("stored", "k"), strings.NewReader("2")),
	} {
		expectError(t, r, http.StatusServiceUnavailable, "unavailable")
		assert.NotContains(t, r.body, dir)
		assert.NotContains(t, r.body, "no space left")
	}
	faults.Clear()
	require.Eventually(t, func() bool {
		r := a.do("GET", keyPath("stored", "k"), nil)
		return r.status == http.StatusOK && r.body == "v"
	}, 10*time.Second, time.Millisecond)
}

// serveFaultyTree serves the API on a durable tree whose store's disk
// faults can inject failures into.
func serveFaultyTree(t *testing.T) (*store.Faults, *api) {
	t.Helper()
	faults := &store.Faults{}
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Millisecond})
	require.NoError(t, err)
	root := services.New(services.Config{Store: st})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	t.Cleanup(func() { cancel(); <-errc; assert.NoError(t, st.Close()) })
	return faults, serve(t, root, Config{})
}

// A request that reaches the registry once its stop has begun (one still
// running when the front ends' stop gave up waiting for it) is told that
// the server is stopping, and is no failure to log; before, a DELETE got
// "could not be deleted now (see the server's log)" and an error record.
func TestRequestsAfterTheRegistryStoppedSayStopping(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
	require.NoError(t, err)
	defer func() { require.NoError(t, data.Close()) }()
	root := services.New(services.Config{DataDir: data})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	var logs testlog.Buffer
	a := serve(t, root, Config{Logger: logs.Logger(slog.LevelInfo)}) // outside the tree: it outlives the registry
	for _, b := range []string{"kept", "stored"} {
		require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath(b), nil).status)
		require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath(b)+"/keys/k", strings.NewReader("v")).status)
	}
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)

	for _, tc := range []struct{ method, path string }{
		{"PUT", bucketPath("new")},
		{"PUT", bucketPath("stored") + "/keys/k"},
		{"DELETE", bucketPath("kept")},
		{"GET", bucketPath("stored") + "/keys/k"}, // not in memory since the stop: a load
	} {
		r := a.do(tc.method, tc.path, strings.NewReader("v"))
		expectError(t, r, http.StatusServiceUnavailable, "unavailable")
		assert.Equal(t, "the server is stopping", r.json(t)["error"], "%s %s", tc.method, tc.path)
	}
	assert.NotContains(t, logs.String(), "level=ERROR")
	assert.NotContains(t, logs.String(), "level=WARN")
}
