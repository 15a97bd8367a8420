package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// startBinary runs the built kv with args and returns its RESP address and
// the process; its logs are drained until it exits (exited is closed then).
func startBinary(t *testing.T, bin string, args ...string) (addr string, cmd *exec.Cmd, exited chan struct{}) {
	t.Helper()
	return startCommand(t, exec.Command(bin, append(binaryArgs(), args...)...))
}

// requireCleanExit waits up to 30 s for the kv that startBinary or
// startCommand started (exited) to exit, and requires exit code 0; what
// names the stop asked for (SIGTERM, SHUTDOWN). On a timeout it kills kv.
func requireCleanExit(t *testing.T, cmd *exec.Cmd, exited <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-exited:
		require.True(t, cmd.ProcessState.Success(), "kv exits 0 after %s: %s", what, cmd.ProcessState)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("kv did not stop after %s", what)
	}
}

// binaryArgs are the arguments startBinary gives kv before the test's own.
func binaryArgs() []string { return []string{"--resp-addr", "127.0.0.1:0", "--log-format", "json"} }

// startCommand is startBinary for a command the caller has made (another
// environment, kv run through another program); kv's arguments must
// start with binaryArgs.
func startCommand(t *testing.T, cmd *exec.Cmd) (addr string, _ *exec.Cmd, exited chan struct{}) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	logs := bufio.NewScanner(stderr)
	var seen []string
	for logs.Scan() {
		seen = append(seen, logs.Text())
		var line map[string]any
		if json.Unmarshal(logs.Bytes(), &line) == nil && line["msg"] == "kv started" {
			addr = line["resp"].(string)
			break
		}
	}
	if addr == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("kv did not start:\n%s", strings.Join(seen, "\n"))
	}
	exited = make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(exited)
	}()
	return addr, cmd, exited
}

// The crash test of issue 5: concurrent writers record every acknowledged
// HSET; kv is killed with SIGKILL at a random moment (after a random number
// of acknowledged writes); after a restart every acknowledged write is
// there with its value, and nothing is there that was never written.
// Half the writers send one HSET at a time, half pipelines of eight (whose
// replies kv sends once the whole pipeline is durable). Three rounds on one data directory, with --fsync always, and again with
// everysec: a kill of the process loses nothing under either (everysec
// risks up to a second of writes only to a power cut or an OS crash, which
// this test cannot cause).
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	bin := buildKV(t)
	for _, policy := range []string{"always", "everysec"} {
		t.Run(policy, func(t *testing.T) { hsetKill9Rounds(t, bin, policy) })
	}
}

func hsetKill9Rounds(t *testing.T, bin, policy string) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--fsync", policy}

	const writers = 8
	type write struct{ bucket, field string }
	var mu sync.Mutex
	acked := map[write]string{}     // acknowledged: must be there
	attempted := map[write]string{} // sent (acknowledged or not): may be there

	verify := func(t *testing.T, rc *redis.Client) {
		ctx := context.Background()
		found := 0
		for _, name := range rc.Keys(ctx, "*").Val() {
			all, err := rc.HGetAll(ctx, name).Result()
			require.NoError(t, err)
			for f, v := range all {
				want, ok := attempted[write{name, f}]
				require.True(t, ok, "%s %s=%s was never written", name, f, v)
				require.Equal(t, want, v, "%s %s", name, f)
				found++
			}
		}
		for w, v := range acked {
			got, err := rc.HGet(ctx, w.bucket, w.field).Result()
			require.NoError(t, err, "acknowledged write %v lost", w)
			require.Equal(t, v, got)
		}
		t.Logf("%d acknowledged writes, all there; %d pairs stored", len(acked), found)
	}

	kill9Rounds(t, bin, args, func() int64 { return int64(200 + rand.IntN(1500)) }, verify, func(r *crashRound) {
		ctx := context.Background()
		for i := range writers {
			r.goClient(func(rc *redis.Client) {
				batch := 1
				if i%2 == 1 {
					batch = 8
				}
				for seq := 0; ; seq += batch {
					ws := make([]write, batch)
					vs := make([]string, batch)
					pipe := rc.Pipeline()
					cmds := make([]*redis.IntCmd, batch)
					mu.Lock()
					for j := range batch {
						ws[j] = write{fmt.Sprintf("w%d", (i+j)%4), fmt.Sprintf("r%d-c%d-%d", r.round, i, seq+j)}
						vs[j] = fmt.Sprintf("v%d", rand.Int64())
						attempted[ws[j]] = vs[j]
						cmds[j] = pipe.HSet(ctx, ws[j].bucket, ws[j].field, vs[j])
					}
					mu.Unlock()
					_, err := pipe.Exec(ctx)
					mu.Lock()
					for j, c := range cmds {
						if c.Err() == nil { // answered: acknowledged
							acked[ws[j]] = vs[j]
						}
					}
					mu.Unlock()
					if err != nil {
						r.failed("write", err)
						return
					}
					r.acked(int64(batch))
				}
			})
		}
	})
}

// A second kv on a data directory in use fails at once, with exit code 5
// and a message that says what to do.
func TestLockedDataDirectory(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	defer st.Close()
	var out, errOut bytes.Buffer
	begin := time.Now()
	code := run([]string{"--resp-addr", "127.0.0.1:0", "--data-dir", dir}, nil, &out, &errOut, nil)
	assert.Equal(t, exitLocked, code)
	assert.Less(t, time.Since(begin), 30*time.Second, "a hang, not a speed: it does not wait for the lock")
	assert.Contains(t, errOut.String(), "is in use by another kv")
	assert.Contains(t, errOut.String(), "--data-dir")

	// A second kv with the first one's port too (both defaults): the
	// data directory is what it is told about, not a busy port.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	out.Reset()
	errOut.Reset()
	assert.Equal(t, exitLocked, run([]string{"--resp-addr", busy.Addr().String(), "--data-dir", dir}, nil, &out, &errOut, nil))
	assert.Contains(t, errOut.String(), "is in use by another kv")

	out.Reset()
	errOut.Reset()
	assert.Equal(t, exitLocked, run([]string{"check", dir}, nil, &out, &errOut, nil))
	assert.Empty(t, out.String())
	assert.Contains(t, errOut.String(), "in use")
}

// kv check sums up a store, sound or damaged, and nothing else: a missing
// or empty directory, or one too damaged to open, gets an error and no
// summary; --help is the usage.
func TestCheckOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
		err  string
	}{
		{"help", []string{"check", "--help"}, exitOK, "Usage: kv check DIR", ""},
		{"missing directory", []string{"check", filepath.Join(t.TempDir(), "nope")}, exitStorage, "", "no such file"},
		{"empty directory", []string{"check", t.TempDir()}, exitStorage, "", "not a kv data directory"},
		{"damaged beyond opening", []string{"check", damagedManifest(t)}, exitStorage, "", "MANIFEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			assert.Equal(t, tc.code, run(tc.args, nil, &out, &errOut, nil))
			if tc.out == "" {
				assert.Empty(t, out.String())
			} else {
				assert.Contains(t, out.String(), tc.out)
			}
			assert.Contains(t, errOut.String(), tc.err)
		})
	}
}

// The daemon keeps its data across a restart, writes checkpoints under the
// data directory with SAVE and BGSAVE (LASTSAVE reports them), kv check
// verifies them, and kv starts from one with the same data.
func TestDaemonDurableRestartAndCheckpoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	l, stop := serveAll(t, "--in-memory=false", "--data-dir", dir, "--fsync", "always", "--enable-debug-command", "--http-addr", "127.0.0.1:0")
	rc := redis.NewClient(&redis.Options{Addr: l.resp.String()})
	require.NoError(t, rc.HSet(ctx, "cart", "apples", "3", "pears", "4").Err())
	require.NoError(t, rc.HSet(ctx, "user", "name", "ada").Err())
	require.NoError(t, rc.Do(ctx, "DEBUG", "CRASH-BUCKET", "cart").Err())
	assert.Equal(t, map[string]string{"apples": "3", "pears": "4"}, rc.HGetAll(ctx, "cart").Val(), "a crashed bucket comes back whole")
	require.NoError(t, rc.Save(ctx).Err())
	first := rc.LastSave(ctx).Val()
	assert.NotZero(t, first)
	res, err := http.Post("http://"+l.http.String()+"/v1/save", "", nil)
	require.NoError(t, err)
	var saved struct {
		Dir      string `json:"dir"`
		LastSave int64  `json:"last_save"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&saved))
	require.NoError(t, res.Body.Close())
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, filepath.Join(dir, "checkpoints"), filepath.Dir(saved.Dir))
	assert.Equal(t, rc.LastSave(ctx).Val(), saved.LastSave)
	require.NoError(t, rc.Close())
	require.Equal(t, exitOK, stop())

	cps, err := filepath.Glob(filepath.Join(dir, "checkpoints", "*"))
	require.NoError(t, err)
	require.Len(t, cps, 2, "SAVE and POST /v1/save")
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, run([]string{"check", cps[0]}, nil, &out, &errOut, nil), errOut.String())
	assert.Contains(t, out.String(), "2 buckets, 3 keys")

	// Each reports its own save as LASTSAVE.
	for d, lastSave := range map[string]int64{dir: saved.LastSave, cps[0]: first, cps[1]: saved.LastSave} {
		addr, stop := serveInProcess(t, "--in-memory=false", "--data-dir", d)
		rc = redis.NewClient(&redis.Options{Addr: addr})
		assert.Equal(t, lastSave, rc.LastSave(ctx).Val(), d)
		assert.Equal(t, []string{"cart", "user"}, rc.Keys(ctx, "*").Val())
		assert.Equal(t, map[string]string{"apples": "3", "pears": "4"}, rc.HGetAll(ctx, "cart").Val())
		assert.Equal(t, "ada", rc.HGet(ctx, "user", "name").Val())
		require.NoError(t, rc.Close())
		require.Equal(t, exitOK, stop())
	}
}

// A data directory damaged beyond repair stops the start with exit code 6
// and a message that names the damaged file.
func TestDamagedDataDirectory(t *testing.T) {
	dir, manifests := storeWithOneKey(t)
	m := manifests[len(manifests)-1]
	raw, err := os.ReadFile(m)
	require.NoError(t, err)
	for i := len(raw) / 3; i < len(raw)/3+16 && i < len(raw); i++ {
		raw[i] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(m, raw, 0o644))

	var out, errOut bytes.Buffer
	assert.Equal(t, exitStorage, run([]string{"--resp-addr", "127.0.0.1:0", "--data-dir", dir}, nil, &out, &errOut, nil))
	assert.Contains(t, errOut.String(), filepath.Base(m))
	assert.Contains(t, errOut.String(), "kv check")
	out.Reset()
	errOut.Reset()
	assert.Equal(t, exitStorage, run([]string{"check", dir}, nil, &out, &errOut, nil))
	assert.Contains(t, errOut.String(), filepath.Base(m))
}

// A data directory that a newer kv wrote (a later store format) stops the
// start with exit code 6 and says so, without calling it damage; kv check
// says the same.
func TestDataDirectoryOfANewerKV(t *testing.T) {
	dir, _ := storeWithOneKey(t)
	db, err := pebble.Open(dir, &pebble.Options{})
	require.NoError(t, err)
	require.NoError(t, db.Set([]byte("\x00format"), binary.BigEndian.AppendUint64(nil, 2), pebble.Sync)) // as kv with format 2 would
	require.NoError(t, db.Close())

	var out, errOut bytes.Buffer
	assert.Equal(t, exitStorage, run([]string{"--resp-addr", "127.0.0.1:0", "--data-dir", dir}, nil, &out, &errOut, nil))
	assert.Contains(t, errOut.String(), "is in store format 2, and this kv reads format 1 at most")
	assert.NotContains(t, errOut.String(), "damaged")
	out.Reset()
	errOut.Reset()
	assert.Equal(t, exitStorage, run([]string{"check", dir}, nil, &out, &errOut, nil))
	assert.Contains(t, errOut.String(), "is in store format 2")
}

// kv check on a store with a damaged table names the file, and says that
// the counts it printed stop at the damage (it printed "0 buckets, 0
// keys", which read as an empty store).
func TestCheckOfADamagedTable(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{Fsync: store.FsyncNo})
	require.NoError(t, err)
	value := bytes.Repeat([]byte("x"), 10<<10)
	for i := range 3000 { // 30 MiB: past the memtable and the log's fold
		require.NoError(t, st.Apply(fmt.Sprint("b", i%7), store.Put(fmt.Sprint("k", i), value)))
	}
	require.NoError(t, st.Close())
	tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	for _, table := range tables {
		raw, err := os.ReadFile(table)
		require.NoError(t, err)
		for i := len(raw) / 3; i < len(raw)/3+16; i++ {
			raw[i] ^= 0x5a
		}
		require.NoError(t, os.WriteFile(table, raw, 0o644))
	}

	var out, errOut bytes.Buffer
	assert.Equal(t, exitStorage, run([]string{"check", dir}, nil, &out, &errOut, nil))
	assert.Contains(t, out.String(), "read before the damage stopped the check")
	assert.NotContains(t, out.String(), "\nok\n")
	assert.Contains(t, errOut.String(), ".sst")
	assert.NotContains(t, errOut.String(), "carrier")
}

// Saves made at once (SAVE, BGSAVE and POST /v1/save from several
// clients) each get a checkpoint of their own, whole; what a kill left of
// one is removed at the next start.
func TestConcurrentSavesEachGetACheckpoint(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	leftover := filepath.Join(dir, "checkpoints", ".1700000000"+store.PartialSuffix)
	require.NoError(t, os.MkdirAll(leftover, 0o755))
	cps := newCheckpoints(st, slog.New(slog.DiscardHandler), 0)
	_, err = os.Stat(leftover)
	require.ErrorIs(t, err, fs.ErrNotExist, "the incomplete checkpoint is removed")

	saved := make([]string, 8)
	var wg sync.WaitGroup
	for i := range saved {
		wg.Go(func() {
			var err error
			saved[i], err = cps.Save()
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, d := range saved {
		require.False(t, seen[d], "two saves wrote into %s", d)
		seen[d] = true
		_, err := store.Check(d)
		require.NoError(t, err)
	}
}

// storeWithOneKey returns a stopped store holding b{k: v}, and its
// MANIFEST files.
func storeWithOneKey(t *testing.T) (dir string, manifests []string) {
	t.Helper()
	dir = t.TempDir()
	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Apply("b", store.Put("k", []byte("v"))))
	require.NoError(t, st.Close())
	manifests, err = filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	require.NoError(t, err)
	require.NotEmpty(t, manifests)
	return dir, manifests
}

// damagedManifest returns a store whose MANIFEST is garbled.
func damagedManifest(t *testing.T) string {
	t.Helper()
	dir, manifests := storeWithOneKey(t)
	for _, m := range manifests {
		require.NoError(t, os.WriteFile(m, bytes.Repeat([]byte{0x5a}, 200), 0o644))
	}
	return dir
}

// The start-up clean-up removes only what a Save's checkpoint leaves
// behind (".<unix seconds>[-N].partial"), never a directory of the user's.
func TestCleanupKeepsOtherPartialDirectories(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	base := filepath.Join(dir, "checkpoints")
	for _, n := range []string{".before-upgrade.partial", ".partial", ".12x.partial", "1700000000.partial", ".1700000000-x.partial"} {
		require.NoError(t, os.MkdirAll(filepath.Join(base, n), 0o755))
	}
	for _, n := range []string{".1700000000.partial", ".1700000000-3.partial"} {
		require.NoError(t, os.MkdirAll(filepath.Join(base, n), 0o755))
	}
	newCheckpoints(st, slog.New(slog.DiscardHandler), 0)
	ents, err := os.ReadDir(base)
	require.NoError(t, err)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	assert.ElementsMatch(t, []string{".before-upgrade.partial", ".partial", ".12x.partial", "1700000000.partial", ".1700000000-x.partial"}, left)
}

// A checkpoint's name is the first free one that sorts after every
// checkpoint there, even one of a later second (a clock set back) or past a
// deleted one (--keep-checkpoints); an error other than "does not exist"
// (a directory kv cannot search) fails the save rather than trying names
// for ever.
func TestFreeName(t *testing.T) {
	for _, tc := range []struct {
		name     string
		listed   []string // in /c
		unlisted []string // taken, though not listed (made meanwhile)
		want     string
	}{
		{"none yet", nil, nil, "/c/17"},
		{"taken", []string{"17", "17-2"}, nil, "/c/17-3"},
		{"the first of the second deleted", []string{"17-2"}, nil, "/c/17-3"},
		{"a later second", []string{"18"}, nil, "/c/18-2"},
		{"older ones and other names", []string{"16", "16-5", "backup", ".17.partial", "17-1"}, nil, "/c/17"},
		{"taken meanwhile", []string{"16"}, []string{"/c/17", "/c/17-2"}, "/c/17-3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := fstest.MapFS{}
			taken := map[string]bool{}
			for _, n := range tc.listed {
				files[n] = &fstest.MapFile{Mode: fs.ModeDir}
				taken["/c/"+n] = true
			}
			for _, p := range tc.unlisted {
				taken[p] = true
			}
			readDir := func(string) ([]fs.DirEntry, error) {
				if len(files) == 0 {
					return nil, fs.ErrNotExist
				}
				return fs.ReadDir(files, ".")
			}
			lstat := func(p string) (fs.FileInfo, error) {
				if taken[p] {
					return nil, nil
				}
				return nil, fs.ErrNotExist
			}
			dir, err := freeName("/c", 17, readDir, lstat)
			require.NoError(t, err)
			assert.Equal(t, tc.want, dir)
		})
	}
	noDir := func(string) ([]fs.DirEntry, error) { return nil, fs.ErrNotExist }
	_, err := freeName("/c", 17, noDir, func(string) (fs.FileInfo, error) { return nil, fs.ErrPermission })
	require.ErrorIs(t, err, fs.ErrPermission)
	_, err = freeName("/c", 17, func(string) ([]fs.DirEntry, error) { return nil, fs.ErrPermission }, nil)
	require.ErrorIs(t, err, fs.ErrPermission)
}

// savedBetween is the daemon's checkpoints, where another client's save
// runs as soon as one has ended, before its caller goes on: the scheduler
// running a concurrent SAVE (or POST /v1/save) first, which takes the
// lock the first save has just released.
type savedBetween struct {
	*checkpoints
	t     *testing.T
	other string
}

func (b *savedBetween) Save() (string, error) {
	dir, err := b.checkpoints.Save()
	if err == nil {
		b.other, err = b.checkpoints.Save()
		require.NoError(b.t, err)
	}
	return dir, err
}

// POST /v1/save answers with the time of its own checkpoint, whatever
// other saves run at the same moment (the field is documented as "Unix
// time of the checkpoint"). It read LASTSAVE after its save: a save that
// ended in between gave its time, which is another checkpoint's.
func TestHTTPSaveReportsItsOwnCheckpointsTime(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	b := &savedBetween{checkpoints: newCheckpoints(st, slog.New(slog.DiscardHandler), 0), t: t}
	dir, at, err := httpSave(b)()
	require.NoError(t, err)
	require.NotEqual(t, dir, b.other)
	own, err := os.ReadFile(filepath.Join(dir, "KV-CHECKPOINT"))
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(own)), fmt.Sprint(at.UnixNano()), "the time of %s, not of %s", dir, b.other)
}

// A data directory the file system refuses (here a path through a
// regular file) is not damage: the refusal says so, and does not send the
// operator to kv check, which finds nothing wrong with a sound store on a
// read-only file system, nor to a checkpoint.
func TestDataDirectoryRefusedByTheFileSystemIsNotCalledDamaged(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		var out, errOut bytes.Buffer
		assert.Equal(t, exitStorage, run([]string{"--resp-addr", "127.0.0.1:0", "--data-dir", dir}, nil, &out, &errOut, nil))
		assert.Contains(t, errOut.String(), "not a directory")
		assert.NotContains(t, errOut.String(), "kv check")
		assert.NotContains(t, errOut.String(), "restore a checkpoint")
	}
}

// SHUTDOWN stops the daemon as SIGTERM does: SHUTDOWN SAVE writes a
// checkpoint first, kv exits 0, and a restart on the data directory (or
// on the checkpoint) finds every write.
func TestShutdownCommandStopsTheDaemon(t *testing.T) {
	bin := buildKV(t)
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	addr, cmd, exited := startBinary(t, bin, "--data-dir", dir, "--fsync", "everysec")
	// go-redis retries a command whose connection ends, SHUTDOWN too
	// (against Redis as well): the retry would find kv gone.
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rc.Close()
	require.NoError(t, rc.HSet(ctx, "cart", "apples", "3", "pears", "4").Err())
	require.NoError(t, rc.ShutdownSave(ctx).Err(), "go-redis takes the closed connection for success")
	requireCleanExit(t, cmd, exited, "SHUTDOWN")
	cps, err := filepath.Glob(filepath.Join(dir, "checkpoints", "*"))
	require.NoError(t, err)
	require.Len(t, cps, 1, "SHUTDOWN SAVE's checkpoint")
	for _, d := range []string{dir, cps[0]} {
		addr, stop := serveInProcess(t, "--in-memory=false", "--data-dir", d)
		rc := redis.NewClient(&redis.Options{Addr: addr})
		assert.Equal(t, map[string]string{"apples": "3", "pears": "4"}, rc.HGetAll(ctx, "cart").Val(), d)
		require.NoError(t, rc.Close())
		require.Equal(t, exitOK, stop())
	}

	// In process: serve returns, with 0, without its context ending.
	o, _, done := parse([]string{"--resp-addr", "127.0.0.1:0", "--in-memory"}, nil, io.Discard, io.Discard)
	require.False(t, done)
	ready := make(chan listening, 1)
	code := make(chan int, 1)
	go func() {
		code <- serve(ctx, o, slog.New(slog.DiscardHandler), io.Discard, func(l listening) { ready <- l })
	}()
	l := <-ready
	rc = redis.NewClient(&redis.Options{Addr: l.resp.String(), MaxRetries: -1})
	defer rc.Close()
	require.NoError(t, rc.Shutdown(ctx).Err())
	select {
	case c := <-code:
		assert.Equal(t, exitOK, c)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return after SHUTDOWN")
	}
}
