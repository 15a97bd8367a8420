package services_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/store"
	"github.com/kvproject/kv/internal/testlog"
	"github.com/kvproject/kv/registry"
	"github.com/kvproject/kv/services"
)

// serveOn runs a tree on data for the duration of use.
func serveOn(t *testing.T, data *services.DataDir, use func(ctx context.Context, kv *services.Root)) {
	t.Helper()
	kv := services.New(services.Config{DataDir: data})
	ctx, cancel := context.WithCancel(context.Background())
	done := kv.ServeBackground(ctx)
	defer func() {
		cancel()
		require.NoError(t, ignoreCanceled(<-done))
	}()
	use(ctx, kv)
}

// putKV creates bucket b and puts k=v in it.
func putKV(ctx context.Context, t *testing.T, kv *services.Root) *bucket.Bucket {
	t.Helper()
	b, err := kv.Registry().Create(ctx, "b")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))
	return b
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func TestFsyncPolicies(t *testing.T) {
	for _, tc := range []struct {
		f    services.Fsync
		name string
	}{
		{services.FsyncEverySec, "everysec"},
		{services.FsyncAlways, "always"},
		{services.FsyncNo, "no"},
		{services.Fsync(7), "Fsync(7)"},
	} {
		assert.Equal(t, tc.name, tc.f.String())
	}
	for _, name := range []string{"always", "everysec", "no"} {
		f, err := services.ParseFsync(name)
		require.NoError(t, err)
		assert.Equal(t, name, f.String())
	}
	_, err := services.ParseFsync("sometimes")
	require.ErrorContains(t, err, `unknown fsync policy "sometimes"`)

	dir := filepath.Join(t.TempDir(), "data")
	_, err = services.OpenDataDir(dir, services.DataDirOptions{Fsync: 7})
	require.ErrorContains(t, err, "unknown fsync policy 7")
	assert.NoDirExists(t, dir, "nothing is created for a bad policy")
}

// A host's buckets outlive its tree, a second opener is refused while the
// directory is held, and a checkpoint opens as a data directory of its own.
func TestDataDirKeepsBucketsAcrossTrees(t *testing.T) {
	dir := t.TempDir()
	data, err := services.OpenDataDir(dir, services.DataDirOptions{Fsync: services.FsyncAlways})
	require.NoError(t, err)
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	assert.Equal(t, real, data.Dir())

	_, err = services.OpenDataDir(dir, services.DataDirOptions{})
	require.ErrorIs(t, err, services.ErrDataDirInUse)

	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		b, err := kv.Registry().Create(ctx, "kept")
		require.NoError(t, err)
		require.NoError(t, b.Put("k", []byte("v1")))
		_, err = kv.Registry().Create(ctx, "empty")
		require.NoError(t, err)
	})
	checkpoint := filepath.Join(t.TempDir(), "checkpoint")
	require.NoError(t, data.Checkpoint(checkpoint))
	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		names, err := kv.Registry().NamesErr()
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"kept", "empty"}, names, "stored buckets are listed before they load")
		b, err := kv.Registry().Create(ctx, "kept")
		require.NoError(t, err)
		v, err := b.Get("k")
		require.NoError(t, err)
		assert.Equal(t, "v1", string(v))
		require.NoError(t, b.Put("k", []byte("v2")))
	})
	require.NoError(t, data.Close())

	for _, tc := range []struct{ dir, want string }{{dir, "v2"}, {checkpoint, "v1"}} {
		data, err := services.OpenDataDir(tc.dir, services.DataDirOptions{})
		require.NoError(t, err)
		serveOn(t, data, func(ctx context.Context, kv *services.Root) {
			b, err := kv.Registry().Create(ctx, "kept")
			require.NoError(t, err)
			v, err := b.Get("k")
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(v), tc.dir)
		})
		require.NoError(t, data.Close())
	}
}

// Damage that recovery cannot repair stops the open, naming the file.
func TestDataDirDamaged(t *testing.T) {
	dir := t.TempDir()
	data, err := services.OpenDataDir(dir, services.DataDirOptions{})
	require.NoError(t, err)
	serveOn(t, data, func(ctx context.Context, kv *services.Root) { putKV(ctx, t, kv) })
	require.NoError(t, data.Close())

	manifests, err := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	require.NoError(t, err)
	require.NotEmpty(t, manifests)
	m := manifests[len(manifests)-1]
	raw, err := os.ReadFile(m)
	require.NoError(t, err)
	for i := range raw {
		raw[i] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(m, raw, 0o644))

	_, err = services.OpenDataDir(dir, services.DataDirOptions{})
	require.ErrorIs(t, err, services.ErrDataDirDamaged)
	assert.Contains(t, err.Error(), filepath.Base(m))
}

// One tree at a time serves on a DataDir: two would each keep their own
// copy of a bucket in memory. The next may start once the first has
// stopped. Writes after Close fail with ErrDataDirClosed, as does a
// second Close.
func TestDataDirServesOneTreeAtATime(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
	require.NoError(t, err)
	first := services.New(services.Config{DataDir: data})
	ctx, cancel := context.WithCancel(context.Background())
	done := first.ServeBackground(ctx)

	bounded, stop := context.WithTimeout(context.Background(), waitFor) // were it to serve
	defer stop()
	err = services.New(services.Config{DataDir: data}).Serve(bounded)
	require.ErrorIs(t, err, services.ErrDataDirInUse)
	require.ErrorIs(t, err, suture.ErrDoNotRestart, "a host tree does not retry it")
	err = <-services.New(services.Config{DataDir: data}).ServeBackground(bounded)
	require.ErrorIs(t, err, services.ErrDataDirInUse)

	b, err := first.Registry().Create(ctx, "b")
	require.NoError(t, err)
	cancel()
	require.NoError(t, ignoreCanceled(<-done))

	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		b, err := kv.Registry().Create(ctx, "b")
		require.NoError(t, err)
		require.NoError(t, b.Put("k", []byte("v")))
	})
	require.NoError(t, data.Close())
	require.ErrorIs(t, data.Close(), services.ErrDataDirClosed)
	require.ErrorIs(t, b.Put("k", []byte("v")), bucket.ErrEnded, "the first tree's bucket ended with it")

	other, err := store.Open(t.TempDir(), store.Options{})
	require.NoError(t, err)
	defer other.Close()
	assert.PanicsWithValue(t, "services: Config.DataDir and Config.Store are both set", func() {
		services.New(services.Config{DataDir: data, Store: other})
	})
}

// A DataDir closed under a running tree fails its writes, with
// ErrDataDirClosed; reads go on from memory.
func TestDataDirClosedUnderATree(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
	require.NoError(t, err)
	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		b := putKV(ctx, t, kv)
		require.NoError(t, data.Close())
		require.ErrorIs(t, b.Put("k", []byte("w")), services.ErrDataDirClosed)
		v, err := b.Get("k")
		require.NoError(t, err)
		assert.Equal(t, "v", string(v))
	})
}

// A tree built before another tree served on the same DataDir sees what
// that tree stored: its registry lists the store when it starts to serve,
// not when it is built.
func TestTreeBuiltEarlySeesWhatAnEarlierTreeStored(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{Fsync: services.FsyncAlways})
	require.NoError(t, err)
	defer func() { assert.NoError(t, data.Close()) }()
	second := services.New(services.Config{DataDir: data}) // built now, served after the first
	serveOn(t, data, func(ctx context.Context, kv *services.Root) { putKV(ctx, t, kv) })

	ctx, cancel := context.WithCancel(context.Background())
	done := second.ServeBackground(ctx)
	reg := second.Registry()
	names, err := reg.NamesErr()
	require.NoError(t, err)
	assert.Equal(t, []string{"b"}, names)
	requireValue(t, reg, "b", "k", "v")
	require.NoError(t, reg.Delete(ctx, "b"), "and deleted, with its data")
	nb, err := reg.Create(ctx, "b")
	require.NoError(t, err)
	require.NoError(t, nb.Put("z", []byte("1")))
	cancel()
	require.NoError(t, ignoreCanceled(<-done))

	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		b, ok := kv.Registry().Lookup("b")
		require.True(t, ok)
		keys, err := b.Keys()
		require.NoError(t, err)
		assert.Equal(t, []string{"z"}, keys, "the deleted bucket's data is gone from the disk")
	})
}

// So does a tree built while another serves on the DataDir.
func TestTreeBuiltWhileAnotherServesSeesWhatItStored(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{Fsync: services.FsyncAlways})
	require.NoError(t, err)
	defer func() { assert.NoError(t, data.Close()) }()
	var next *services.Root
	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		next = services.New(services.Config{DataDir: data})
		putKV(ctx, t, kv)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := next.ServeBackground(ctx)
	defer func() {
		cancel()
		require.NoError(t, ignoreCanceled(<-done))
	}()
	names, err := next.Registry().NamesErr()
	require.NoError(t, err)
	assert.Equal(t, []string{"b"}, names)
}

// A registry whose tree has stopped writes nothing more to the store: a
// host that kept it (in a handler, say) and deletes, flushes or renames
// through it after the stop gets ErrStopped, and the next tree serving on
// the data directory keeps its data. Before the fix each of these wrote:
// the next tree's live bucket was dropped, wiped or moved on disk.
func TestStoppedRegistryLeavesTheStoreAlone(t *testing.T) {
	for name, op := range map[string]func(context.Context, *registry.Registry) error{
		"delete":   func(ctx context.Context, r *registry.Registry) error { return r.Delete(ctx, "b") },
		"flushall": func(ctx context.Context, r *registry.Registry) error { return r.FlushAll(ctx) },
		"rename":   func(ctx context.Context, r *registry.Registry) error { return r.Rename(ctx, "b", "c") },
		"copy": func(ctx context.Context, r *registry.Registry) error {
			_, err := r.Copy(ctx, "b", "c", true)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
			require.NoError(t, err)
			defer func() { require.NoError(t, data.Close()) }()
			var old *registry.Registry
			serveOn(t, data, func(ctx context.Context, kv *services.Root) {
				putKV(ctx, t, kv)
				old = kv.Registry()
			})
			serveOn(t, data, func(ctx context.Context, kv *services.Root) {
				b, ok := kv.Registry().Lookup("b")
				require.True(t, ok)
				require.ErrorIs(t, op(ctx, old), registry.ErrStopped)
				require.NoError(t, b.Put("k2", []byte("v2")))
			})
			serveOn(t, data, func(ctx context.Context, kv *services.Root) {
				requireValue(t, kv.Registry(), "b", "k2", "v2")
				_, ok := kv.Registry().Lookup("c")
				assert.False(t, ok)
			})
		})
	}
}

// A registry whose tree is refused its DataDir, because another tree
// serves on it, neither loads from the store nor writes to it, whether its
// root's Serve was refused already or not yet called: every store
// operation gets ErrDataDirInUse, and the tree serving keeps its data.
// Before the fix each of these went through: a delete, flush or rename
// wiped or moved the serving tree's bucket on disk, and a create or load
// made a second copy in memory.
func TestRegistryOfATreeRefusedItsDataDirLeavesTheStoreAlone(t *testing.T) {
	ops := map[string]func(context.Context, *registry.Registry) error{
		"create": func(ctx context.Context, r *registry.Registry) error { _, err := r.Create(ctx, "new"); return err },
		"create with": func(ctx context.Context, r *registry.Registry) error {
			_, _, err := r.CreateWith(ctx, "new", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
			return err
		},
		"lookup": func(ctx context.Context, r *registry.Registry) error {
			b, ok, err := r.LookupErr("b")
			if ok || b != nil {
				return errors.New("found a stored bucket")
			}
			return err
		},
		"delete":   func(ctx context.Context, r *registry.Registry) error { return r.Delete(ctx, "b") },
		"flushall": func(ctx context.Context, r *registry.Registry) error { return r.FlushAll(ctx) },
		"rename":   func(ctx context.Context, r *registry.Registry) error { return r.Rename(ctx, "b", "c") },
		"copy": func(ctx context.Context, r *registry.Registry) error {
			_, err := r.Copy(ctx, "b", "c", true)
			return err
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
			require.NoError(t, err)
			defer func() { require.NoError(t, data.Close()) }()
			serveOn(t, data, func(ctx context.Context, kv *services.Root) { putKV(ctx, t, kv) })

			// Bounded: without the fix, an operation may wait for a loop
			// that never runs.
			bounded, stop := context.WithTimeout(context.Background(), waitFor)
			defer stop()
			serveOn(t, data, func(ctx context.Context, kv *services.Root) {
				refused := services.New(services.Config{DataDir: data})
				require.ErrorIs(t, refused.Serve(ctx), services.ErrDataDirInUse)
				require.ErrorIs(t, op(bounded, refused.Registry()), services.ErrDataDirInUse, "refused its data directory")
				early := services.New(services.Config{DataDir: data})
				require.ErrorIs(t, op(bounded, early.Registry()), services.ErrDataDirInUse, "not served yet, while another tree serves")
				require.ErrorIs(t, early.Serve(ctx), services.ErrDataDirInUse)
				b, ok := kv.Registry().Lookup("b")
				require.True(t, ok)
				require.NoError(t, b.Put("k2", []byte("v2")))
			})
			serveOn(t, data, func(ctx context.Context, kv *services.Root) {
				for k, want := range map[string]string{"k": "v", "k2": "v2"} {
					requireValue(t, kv.Registry(), "b", k, want)
				}
				assert.ElementsMatch(t, []string{"b"}, kv.Registry().Names())
			})
		})
	}
}

// A tree whose registry uses the store before the tree serves (a host
// adds the root to its own tree and uses it as soon as that runs, before
// suture has called the root's Serve) holds the DataDir from then on:
// another tree is refused it until this one has served and stopped.
func TestRegistryUsedBeforeServeHoldsTheDataDir(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
	require.NoError(t, err)
	defer func() { require.NoError(t, data.Close()) }()
	serveOn(t, data, func(ctx context.Context, kv *services.Root) { putKV(ctx, t, kv) })

	ctx := context.Background()
	early := services.New(services.Config{DataDir: data})
	b := requireValue(t, early.Registry(), "b", "k", "v")
	other := services.New(services.Config{DataDir: data})
	require.ErrorIs(t, other.Serve(ctx), services.ErrDataDirInUse, "the early tree holds it")

	serving, stop := context.WithCancel(ctx)
	done := early.ServeBackground(serving)
	require.NoError(t, b.Put("k2", []byte("v2")))
	stop()
	require.NoError(t, ignoreCanceled(<-done))
	_, err = early.Registry().Create(ctx, "late")
	require.ErrorIs(t, err, registry.ErrStopped)

	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		requireValue(t, kv.Registry(), "b", "k2", "v2")
	})
}

// The README's embedding with a DataDir: the host adds the root to its
// own tree, runs it, and uses the registry at once. suture calls the
// root's Serve on a goroutine of its own, so the registry is used before
// the root has claimed its DataDir; it works every time (a review found
// it refused every time, once the registry asked for admission).
func TestEmbeddedDurableTreeIsUsableOnceItsHostRuns(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
	require.NoError(t, err)
	defer func() { require.NoError(t, data.Close()) }()
	var logs testlog.Buffer
	for i := range 20 {
		host := suture.NewSimple("host")
		kv := services.New(services.Config{DataDir: data, Logger: logs.Logger(slog.LevelError)})
		host.Add(kv)
		ctx, cancel := context.WithCancel(context.Background())
		done := host.ServeBackground(ctx)
		if i > 0 {
			b, ok := kv.Registry().Lookup("shopping")
			require.True(t, ok, "round %d: the stored bucket", i)
			v, err := b.Get("milk")
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprint(i-1), string(v))
		}
		b, err := kv.Registry().Create(ctx, "shopping")
		require.NoError(t, err, "round %d", i)
		require.NoError(t, b.Put("milk", []byte(fmt.Sprint(i))))
		cancel()
		<-done
	}
	require.Empty(t, logs.String(), "no error logged")
}

// A tree built before another tree served on its DataDir, and used before
// its own Serve (as a host that adds it to its tree does, before suture
// has called the root's Serve), sees what that tree stored: its first
// lookup or listing does not answer from the list of stored buckets taken
// at New.
func TestTreeBuiltEarlyAndUsedBeforeServeSeesWhatAnEarlierTreeStored(t *testing.T) {
	for name, use := range map[string]func(t *testing.T, kv *services.Root){
		"lookup": func(t *testing.T, kv *services.Root) {
			requireValue(t, kv.Registry(), "b", "k", "v")
		},
		"names": func(t *testing.T, kv *services.Root) {
			names, err := kv.Registry().NamesErr()
			require.NoError(t, err)
			assert.Equal(t, []string{"b"}, names)
		},
		"len": func(t *testing.T, kv *services.Root) {
			assert.Equal(t, 1, kv.Registry().Len())
		},
		"scan": func(t *testing.T, kv *services.Root) {
			names, _, err := kv.Registry().Scan(0, 10)
			require.NoError(t, err)
			assert.Equal(t, []string{"b"}, names)
		},
	} {
		t.Run(name, func(t *testing.T) {
			data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
			require.NoError(t, err)
			defer func() { assert.NoError(t, data.Close()) }()
			early := services.New(services.Config{DataDir: data}) // built now, used after the first tree
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { // served, so that it ends what it loaded
				done := early.ServeBackground(ctx)
				cancel()
				require.NoError(t, ignoreCanceled(<-done))
			}()
			serveOn(t, data, func(ctx context.Context, kv *services.Root) { putKV(ctx, t, kv) })
			use(t, early)
		})
	}
}

// The same through a host tree, as the README embeds kv: the root is used
// as soon as its host runs.
func TestEmbeddedTreeBuiltEarlySeesWhatAnEarlierTreeStored(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
	require.NoError(t, err)
	defer func() { assert.NoError(t, data.Close()) }()
	for i := range 20 {
		early := services.New(services.Config{DataDir: data})
		serveOn(t, data, func(ctx context.Context, kv *services.Root) { putKV(ctx, t, kv) })
		host := suture.NewSimple("host")
		host.Add(early)
		ctx, cancel := context.WithCancel(context.Background())
		done := host.ServeBackground(ctx)
		_, ok := early.Registry().Lookup("b")
		assert.True(t, ok, "round %d: the stored bucket is found", i)
		require.NoError(t, early.Registry().FlushAll(ctx))
		cancel()
		<-done
	}
}

// A tree that takes the DataDir while the previous tree's last create is
// still on its way to the disk (CreateWith's write, which its caller waits
// for after the tree has stopped) finds that bucket once the write is
// durable. Before the fix the new tree's index, listed at its hold, left
// it out: a lookup said it was absent, and a Create made an empty bucket
// in memory over the stored pairs.
func TestTreeFindsABucketWhoseCreateWasInFlightWhenItTookTheDataDir(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
	require.NoError(t, err)
	defer func() { assert.NoError(t, data.Close()) }()
	var pending bucket.Pending
	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		_, p, err := kv.Registry().CreateWith(ctx, "x", func(tx *bucket.Tx) error { return tx.Put("k", []byte("v")) })
		require.NoError(t, err)
		pending = p // waited for once the tree has stopped
	})
	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		require.NoError(t, pending.Wait())
		b, ok := kv.Registry().Lookup("x")
		require.True(t, ok, "the stored bucket is found")
		v, err := b.Get("k")
		require.NoError(t, err)
		assert.Equal(t, "v", string(v))
		b, err = kv.Registry().Create(ctx, "x")
		require.NoError(t, err)
		v, err = b.Get("k")
		require.NoError(t, err)
		assert.Equal(t, "v", string(v))
	})
}

// requireValue checks that reg finds the bucket named name (loading it
// from the store if need be) with want under key, and returns it.
func requireValue(t *testing.T, reg *registry.Registry, name, key, want string) *bucket.Bucket {
	t.Helper()
	b, ok := reg.Lookup(name)
	require.True(t, ok, "bucket %q is found", name)
	v, err := b.Get(key)
	require.NoError(t, err)
	assert.Equal(t, want, string(v), "%q in bucket %q", key, name)
	return b
}

// A Close that meets another under way returns once the store is closed
// and the directory released, as the first does: a review found it
// returned ErrDataDirClosed at once, while the first still waited for a
// write, and the directory was still locked (OpenDataDir failed with
// ErrDataDirInUse after both Closes had been called and one had returned).
func TestDataDirCloseWaitsForACloseUnderWay(t *testing.T) {
	dir := t.TempDir()
	data, err := services.OpenDataDir(dir, services.DataDirOptions{})
	require.NoError(t, err)
	var pending bucket.Pending
	serveOn(t, data, func(ctx context.Context, kv *services.Root) {
		b := putKV(ctx, t, kv)
		_, p, err := b.SetNoWait("k2", []byte("v2"))
		require.NoError(t, err)
		pending = p // Close waits for it
	})
	results := make(chan error, 2)
	for range 2 {
		go func() { results <- data.Close() }()
	}
	// One Close waits for the pending write; the other returns, or waits
	// for the first.
	require.Eventually(t, func() bool {
		if len(results) > 0 {
			return true
		}
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			// A Close that waits for the other (not in the store's
			// Close, blocked rather than running).
			if strings.Contains(g, "services.(*DataDir).Close") && !strings.Contains(g, "store.(*Store).Close") &&
				!strings.Contains(g, "[running") && !strings.Contains(g, "[runnable") {
				return true
			}
		}
		return false
	}, waitFor, time.Millisecond)
	select {
	case err := <-results:
		_, oerr := services.OpenDataDir(dir, services.DataDirOptions{})
		require.Failf(t, "a Close returned while another still closed the store", "Close: %v; the directory: %v", err, oerr)
	default:
	}
	require.NoError(t, pending.Wait())
	errs := []error{<-results, <-results}
	if errs[0] != nil {
		errs[0], errs[1] = errs[1], errs[0]
	}
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], services.ErrDataDirClosed)

	again, err := services.OpenDataDir(dir, services.DataDirOptions{})
	require.NoError(t, err, "released once both Closes have returned")
	serveOn(t, again, func(ctx context.Context, kv *services.Root) {
		requireValue(t, kv.Registry(), "b", "k2", "v2")
	})
	require.NoError(t, again.Close())
}
