package resp

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// ckOp is one write of a writer, with the tickets of its sending and of its
// acknowledgement (a global counter: a ticket below another was taken
// before it).
type ckOp struct {
	kind        byte // 'S' HSET, 'I' HINCRBY, 'D' HDEL, 'X' DEL, 'R' RENAME
	key, key2   string
	fields      []string
	vals        []string
	sent, acked int64
}

type ckState map[string]map[string]string

func (st ckState) apply(op *ckOp) {
	switch op.kind {
	case 'S':
		h := st[op.key]
		if h == nil {
			h = map[string]string{}
			st[op.key] = h
		}
		for i, f := range op.fields {
			h[f] = op.vals[i]
		}
	case 'I':
		h := st[op.key]
		if h == nil {
			h = map[string]string{}
			st[op.key] = h
		}
		n, _ := strconv.Atoi(h[op.fields[0]])
		h[op.fields[0]] = strconv.Itoa(n + 1)
	case 'D':
		if h := st[op.key]; h != nil {
			for _, f := range op.fields {
				delete(h, f)
			}
		}
	case 'X':
		delete(st, op.key)
	case 'R':
		if h, ok := st[op.key]; ok && op.key != op.key2 {
			st[op.key2] = h
			delete(st, op.key)
		}
	}
}

func (st ckState) equal(o ckState) bool {
	if len(st) != len(o) {
		return false
	}
	for k, h := range st {
		g, ok := o[k]
		if !ok || !maps.Equal(h, g) {
			return false
		}
	}
	return true
}

// ckWriter is one connection's writes, all of them since the test began.
type ckWriter struct {
	id  int
	rng *rand.Rand
	big bool // some writes carry large values
	mu  sync.Mutex
	ops []*ckOp
}

const ckBuckets = 30 // buckets per writer

func (w *ckWriter) bucket() string { return fmt.Sprintf("w%d:b%d", w.id, w.rng.IntN(ckBuckets)) }

// next returns the writer's next writes: one command, or a pipeline of three.
func (w *ckWriter) next() []*ckOp {
	n := len(w.ops) + 1
	mk := func(n int) *ckOp {
		r := w.rng.IntN(100)
		switch {
		case w.big && r < 8:
			size := 1 << (10 + w.rng.IntN(8)) // 1 KiB to 128 KiB
			if r == 0 {
				size = 1<<20 + w.rng.IntN(300<<10) // committed alone
			}
			v := strings.Repeat(string(rune('a'+n%26)), size)
			return &ckOp{kind: 'S', key: w.bucket(), fields: []string{"big", "last"}, vals: []string{v, strconv.Itoa(n)}}
		case r < 45:
			s := strconv.Itoa(n)
			return &ckOp{kind: 'S', key: w.bucket(), fields: []string{"s" + s, "last"}, vals: []string{s, s}}
		case r < 60:
			return &ckOp{kind: 'I', key: w.bucket(), fields: []string{"ctr"}}
		case r < 70:
			return &ckOp{kind: 'D', key: w.bucket(), fields: []string{"s" + strconv.Itoa(w.rng.IntN(n)+1), "last"}}
		case r < 74:
			return &ckOp{kind: 'X', key: w.bucket()}
		case r < 84:
			return &ckOp{kind: 'R', key: w.bucket(), key2: w.bucket()}
		default:
			return &ckOp{kind: 'S', key: fmt.Sprintf("w%d:new%d", w.id, n), fields: []string{"f"}, vals: []string{strconv.Itoa(n)}}
		}
	}
	if w.rng.IntN(10) == 0 {
		return []*ckOp{mk(n), mk(n + 1), mk(n + 2)}
	}
	return []*ckOp{mk(n)}
}

func (op *ckOp) cmd(ctx context.Context, p redis.Cmdable) redis.Cmder {
	switch op.kind {
	case 'S':
		args := []any{}
		for i, f := range op.fields {
			args = append(args, f, op.vals[i])
		}
		return p.HSet(ctx, op.key, args...)
	case 'I':
		return p.HIncrBy(ctx, op.key, op.fields[0], 1)
	case 'D':
		return p.HDel(ctx, op.key, op.fields...)
	case 'X':
		return p.Del(ctx, op.key)
	default:
		return p.Rename(ctx, op.key, op.key2)
	}
}

// run sends the writer's writes until stop, each acknowledged before the
// next is sent.
func (w *ckWriter) run(rc *redis.Client, tick *atomic.Int64, stop <-chan struct{}, limit int) error {
	ctx := context.Background()
	for i := 0; limit == 0 || i < limit; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		ops := w.next()
		sent := tick.Add(1)
		for _, op := range ops {
			op.sent = sent
		}
		w.mu.Lock()
		w.ops = append(w.ops, ops...)
		w.mu.Unlock()
		cmds, _ := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, op := range ops {
				op.cmd(ctx, p)
			}
			return nil
		})
		acked := tick.Add(1)
		for i, op := range ops {
			op.acked = acked
			if err := cmds[i].Err(); err != nil && !(op.kind == 'R' && strings.Contains(err.Error(), "no such key")) {
				return fmt.Errorf("writer %d: %v: %w", w.id, cmds[i].Args(), err)
			}
		}
	}
	return nil
}

type ckEvent struct{ sent, acked int64 }

// ckSave is one checkpoint: the tickets taken as its Save began and once
// its Checkpoint returned, and the store's LastSave then.
type ckSave struct {
	begin, end int64
	dir        string
	lastSave   time.Time
}

// ckBackups is testBackups that records every checkpoint with tickets.
type ckBackups struct {
	t    testing.TB
	st   *store.Store
	tick *atomic.Int64
	mu   sync.Mutex
	done []ckSave
	fail []string // dirs of failed saves
}

func (b *ckBackups) Save() (string, error) {
	dir := filepath.Join(b.t.TempDir(), "checkpoint")
	b.mu.Lock()
	defer b.mu.Unlock()
	s := ckSave{begin: b.tick.Add(1), dir: dir}
	err := b.st.Checkpoint(dir)
	s.end = b.tick.Add(1)
	if err != nil {
		b.fail = append(b.fail, dir)
		return "", err
	}
	s.lastSave = b.st.LastSave()
	b.done = append(b.done, s)
	return dir, nil
}

func (b *ckBackups) LastSave() time.Time { return b.st.LastSave() }

// model returns the state of w's keys after its writes (from, to], from
// empty.
func (w *ckWriter) model(from, to int) ckState {
	st := ckState{}
	for _, op := range w.ops[from:to] {
		st.apply(op)
	}
	return st
}

// matches reports the cuts (from, to] of w's writes, to in [lo, hi] and
// from in froms, whose state is got.
func (w *ckWriter) matches(got ckState, froms []int, lo, hi int) (from, to int, ok bool) {
	for _, f := range froms {
		if f > hi {
			continue
		}
		st := w.model(f, max(f, lo))
		for c := max(f, lo); c <= hi; c++ {
			if c > max(f, lo) {
				st.apply(w.ops[c-1])
			}
			if st.equal(got) {
				return f, c, true
			}
		}
	}
	return 0, 0, false
}

// flushCuts returns the cuts of w's writes a FLUSHALL acknowledged at
// fl could have fallen between: n such that write n may have committed
// before it and write n+1 after it.
func (w *ckWriter) flushCuts(fl ckEvent, floor int) []int {
	var cuts []int
	for n := floor; n <= len(w.ops); n++ {
		before := n == 0 || w.ops[n-1].sent < fl.acked
		after := n == len(w.ops) || w.ops[n].acked > fl.sent
		if before && after {
			cuts = append(cuts, n)
		}
	}
	return cuts
}

// readAll returns every hash rc serves, by writer.
func readAll(t *testing.T, rc *redis.Client, writers int) []ckState {
	t.Helper()
	ctx := context.Background()
	states := make([]ckState, writers)
	for i := range states {
		states[i] = ckState{}
	}
	keys, err := rc.Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		h, err := rc.HGetAll(ctx, k).Result()
		require.NoError(t, err)
		var id int
		_, err = fmt.Sscanf(k, "w%d:", &id)
		require.NoError(t, err, "key %q", k)
		states[id][k] = h
	}
	return states
}

// ckConfig is one run of the checkpoint stress test.
type ckConfig struct {
	writers, rounds int
	phase           time.Duration
	big             bool // values up to 1.3 MB among the writes
}

// TestCheckpointStress runs writers of every kind (HSET, HINCRBY, HDEL,
// DEL, RENAME, new keys, pipelines of three; to buckets loaded back from
// disk after a restart, and crashed with DEBUG CRASH-BUCKET), FLUSHALL,
// and two clients racing SAVE and BGSAVE, then a SAVE and a BGSAVE as the
// server stops. Every checkpoint must pass kv check, leave nothing beside
// it, report its time as LASTSAVE before and after a start from it, and
// serve, once started from, a state the writers went through: for each
// writer, its writes (L, C] from empty, with C at least every write it
// had acknowledged before the save began and L the cut of one FLUSHALL
// the checkpoint may hold, the same FLUSHALL for every writer. It runs on
// demand: KV_STRESS=1 (4 rounds of each size; KV_STRESS_ROUNDS=n).
func TestCheckpointStress(t *testing.T) {
	if os.Getenv("KV_STRESS") == "" {
		t.Skip("set KV_STRESS=1 to run the checkpoint stress test")
	}
	rounds := 4
	if n, err := strconv.Atoi(os.Getenv("KV_STRESS_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	t.Run("small", func(t *testing.T) {
		runCheckpointStress(t, ckConfig{writers: 6, rounds: rounds, phase: 1500 * time.Millisecond})
	})
	t.Run("big", func(t *testing.T) {
		runCheckpointStress(t, ckConfig{writers: 4, rounds: rounds, phase: 1500 * time.Millisecond, big: true})
	})
}

func runCheckpointStress(t *testing.T, cfg ckConfig) {
	dir := t.TempDir()
	var tick atomic.Int64
	writers := make([]*ckWriter, cfg.writers)
	for i := range writers {
		writers[i] = &ckWriter{id: i, rng: rand.New(rand.NewPCG(uint64(i), 7)), big: cfg.big}
	}
	ctx := context.Background()
	checked, cold := 0, 0
	for round := range cfg.rounds {
		policy := []store.Fsync{store.FsyncEverySec, store.FsyncAlways}[round%2]
		perClient := round%4 >= 2
		var backups *ckBackups
		open := func() *durableServer {
			backups = &ckBackups{t: t, tick: &tick}
			ds := startDurable(t, dir, store.Options{Fsync: policy}, func(c *Config) {
				c.Backups = backups
				c.GoroutinePerClient = c.GoroutinePerClient || perClient
			})
			backups.st = ds.st
			return ds
		}
		ds := open()
		rc := ds.client(t)
		require.NoError(t, rc.FlushAll(ctx).Err())
		base := make([]int, len(writers))
		for i, w := range writers {
			base[i] = len(w.ops)
		}
		// Phase A: fill the buckets, then restart: they are all on disk only.
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for _, w := range writers {
			c := ds.client(t, func(o *redis.Options) { o.PoolSize = 1 })
			wg.Go(func() {
				if err := w.run(c, &tick, nil, 150); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		ds.stop()
		ds = open()
		rc = ds.client(t)
		cold += ckBuckets * len(writers)

		// Phase B: writers, FLUSHALL, crashes, SAVE and BGSAVE together.
		stop := make(chan struct{})
		var writersWG sync.WaitGroup
		for _, w := range writers {
			c := ds.client(t, func(o *redis.Options) { o.PoolSize = 1 })
			writersWG.Go(func() {
				if err := w.run(c, &tick, stop, 0); err != nil {
					errs <- err
				}
			})
		}
		var flushes []ckEvent
		var flushMu sync.Mutex
		wg.Go(func() {
			fc := ds.client(t)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(300+rand.IntN(400)) * time.Millisecond):
				}
				e := ckEvent{sent: tick.Add(1)}
				err := fc.FlushAll(ctx).Err()
				e.acked = tick.Add(1)
				if err != nil {
					errs <- fmt.Errorf("FLUSHALL: %w", err)
					return
				}
				flushMu.Lock()
				flushes = append(flushes, e)
				flushMu.Unlock()
			}
		})
		var crashes atomic.Int64
		wg.Go(func() {
			cc := ds.client(t)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				k := fmt.Sprintf("w%d:b%d", rand.IntN(len(writers)), rand.IntN(ckBuckets))
				if err := cc.Do(ctx, "DEBUG", "CRASH-BUCKET", k).Err(); err == nil {
					crashes.Add(1)
				} else if !strings.Contains(err.Error(), "no such key") {
					errs <- fmt.Errorf("DEBUG CRASH-BUCKET: %w", err)
					return
				}
			}
		})
		// Two savers, racing: SAVE or BGSAVE, whichever comes first wins.
		var refused atomic.Int64
		saver := func() {
			sc := ds.client(t)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(20+rand.IntN(60)) * time.Millisecond):
				}
				var err error
				if rand.IntN(2) == 0 {
					err = sc.Save(ctx).Err()
				} else {
					var r string
					r, err = sc.BgSave(ctx).Result()
					if err == nil && r != "Background saving started" {
						err = fmt.Errorf("BGSAVE answered %q", r)
					}
				}
				if err != nil && err.Error() == "ERR Background save already in progress" {
					refused.Add(1)
				} else if err != nil {
					errs <- fmt.Errorf("SAVE: %w", err)
					return
				}
			}
		}
		wg.Go(saver)
		wg.Go(saver)
		time.Sleep(cfg.phase)
		close(stop)
		writersWG.Wait()
		wg.Wait()
		final := readAll(t, rc, len(writers))
		// A SAVE and a BGSAVE as the server stops.
		sc, bc := ds.client(t), ds.client(t)
		require.NoError(t, sc.Ping(ctx).Err())
		require.NoError(t, bc.Ping(ctx).Err())
		saveDone := make(chan error, 2)
		go func() { saveDone <- sc.Save(ctx).Err() }()
		go func() { saveDone <- bc.BgSave(ctx).Err() }()
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		ds.stop()
		for range 2 {
			if err := <-saveDone; err != nil {
				t.Logf("a save during the stop: %v", err)
			}
		}
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		backups.mu.Lock()
		saves, failed := backups.done, backups.fail
		backups.mu.Unlock()
		t.Logf("round %d (%v, goroutine per client %v): %d saves (%d refused, %d failed), %d flushes, %d crashes, writes %v",
			round, policy, perClient, len(saves), refused.Load(), len(failed), len(flushes), crashes.Load(),
			func() (n []int) {
				for _, w := range writers {
					n = append(n, len(w.ops))
				}
				return n
			}())
		for _, d := range failed {
			ents, err := os.ReadDir(filepath.Dir(d))
			require.NoError(t, err)
			require.Empty(t, ents, "a failed save leaves nothing")
		}

		verify := func(s ckSave, got []ckState) {
			t.Helper()
			// The FLUSHALLs the checkpoint may have last: the last one
			// acknowledged before the save began, or a later one sent
			// before it ended.
			type cand struct {
				fl   *ckEvent
				name string
			}
			cands := []cand{{nil, "no FLUSHALL"}}
			for i := range flushes {
				f := &flushes[i]
				if f.acked < s.begin {
					cands = []cand{{f, fmt.Sprint("FLUSHALL ", i)}}
				} else if f.sent < s.end {
					cands = append(cands, cand{f, fmt.Sprint("FLUSHALL ", i)})
				}
			}
			var why []string
			for _, c := range cands {
				ok := true
				var detail []string
				for i, w := range writers {
					froms := []int{base[i]}
					if c.fl != nil {
						froms = w.flushCuts(*c.fl, base[i])
					}
					lo, hi := base[i], base[i]
					for n, op := range w.ops {
						if op.acked < s.begin {
							lo = n + 1
						}
						if op.sent < s.end {
							hi = n + 1
						}
					}
					from, to, m := w.matches(got[i], froms, lo, hi)
					if !m {
						ok = false
						detail = append(detail, fmt.Sprintf("writer %d: no cut (from %v, to [%d,%d]) matches %d keys", i, froms, lo, hi, len(got[i])))
						break
					}
					detail = append(detail, fmt.Sprintf("w%d (%d,%d]", i, from, to))
				}
				if ok {
					checked++
					return
				}
				why = append(why, c.name+": "+strings.Join(detail, "; "))
			}
			t.Errorf("%s is no state the writers went through:\n%s", s.dir, strings.Join(why, "\n"))
		}
		// The final state: every write, from the last FLUSHALL.
		verify(ckSave{begin: tick.Add(1), end: tick.Add(1), dir: "the final state"}, final)
		for _, s := range saves {
			rep, err := store.Check(s.dir)
			require.NoError(t, err, "kv check %s", s.dir)
			require.Empty(t, rep.Problems)
			b, err := os.ReadFile(filepath.Join(s.dir, "KV-CHECKPOINT"))
			require.NoError(t, err)
			ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			require.NoError(t, err)
			assert.Equal(t, s.lastSave.UnixNano(), ns, "LastSave after the checkpoint is its time")
			cp := startDurable(t, s.dir, store.Options{})
			crc := cp.client(t)
			lastSave, err := crc.LastSave(ctx).Result()
			require.NoError(t, err)
			assert.Equal(t, s.lastSave.Unix(), lastSave, "a daemon started from the checkpoint reports its time")
			verify(s, readAll(t, crc, len(writers)))
			cp.stop()
			ents, err := os.ReadDir(filepath.Dir(s.dir))
			require.NoError(t, err)
			require.Len(t, ents, 1, "nothing beside the checkpoint: %v", ents)
		}
	}
	total := 0
	for _, w := range writers {
		total += len(w.ops)
	}
	t.Logf("%d states checked; %d writes; %d buckets cold after a restart", checked, total, cold)
}
