package main

import (
	"context"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// crashSeed is the seed of a kill -9 test's own random source (the kill's
// moment, the clients' choices): KV_CRASH_SEED, or the clock's; logged,
// so that a failing run's choices can be made again (the scheduling, not).
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KV_CRASH_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "KV_CRASH_SEED")
	}
	t.Logf("seed %d (KV_CRASH_SEED=%d to choose the same kills)", seed, seed)
	return seed
}

// The write commands that the other kill -9 tests leave out, under both
// fsync policies (README, Durability: under always and everysec alike a
// process kill loses nothing acknowledged; and nothing that was never
// written appears): concurrent clients run HINCRBY and HINCRBYFLOAT
// (counters: the acknowledged value or the one in flight after it), COPY
// with and without REPLACE of a hash written with HMSET (every
// acknowledged copy whole, at the generation it copied), HDEL of several
// fields and of a hash's last one (acknowledged deletions stay deleted,
// atomically), HSETNX (an acknowledged winner stays the value), UNLINK
// and RENAMENX (onto a free name and onto a taken one), until kv is killed
// with SIGKILL; after each restart each client's model is checked, and
// every stored key is one a client wrote.
func TestKill9MixedWriteCommands(t *testing.T) {
	bin := buildKV(t)
	seed := crashSeed(t)
	for i, policy := range []string{"always", "everysec"} {
		t.Run(policy, func(t *testing.T) { mixKill9Rounds(t, bin, policy, seed+uint64(i)) })
	}
}

// FLUSHALL (and FLUSHDB, FLUSHALL ASYNC) among writers under kill -9, both
// fsync policies. Every operation is stamped with a ticket taken before
// it is sent and one taken once it is answered, so real-time order is
// known where it is certain; after each restart, for each write:
// acknowledged, and sent after every flush was answered: present; answered
// before an acknowledged flush was sent: gone; and a flush the kill cut
// off took effect wholly or not at all (the store drops everything in one
// range deletion: the writes answered after the flush before it and before
// it was sent are all there, or none). Nothing else is asserted of writes
// that overlap a flush. Writes of two fields (HMSET) are whole, no key is
// empty, and nothing appears that was never written.
func TestKill9FlushAllAmongWrites(t *testing.T) {
	bin := buildKV(t)
	seed := crashSeed(t)
	for i, policy := range []string{"always", "everysec"} {
		t.Run(policy, func(t *testing.T) { flushKill9Rounds(t, bin, policy, seed+uint64(i)) })
	}
}

// mixModel is one kind of client of TestKill9MixedWriteCommands: run
// starts its clients in a round; verify checks the restarted store against
// what they were answered, claims its keys (deletes them from keys) and
// takes what it found as the state the next round starts from.
type mixModel interface {
	run(r *crashRound, ack func(), rng func() *rand.Rand)
	verify(t *testing.T, rc *redis.Client, keys map[string]bool)
}

func mixKill9Rounds(t *testing.T, bin, policy string, seed uint64) {
	args := []string{"--data-dir", t.TempDir(), "--fsync", policy}
	rng := rand.New(rand.NewPCG(seed, 0))
	models := []mixModel{
		newCounters(4), &floatCounters{n: 2}, &creators{},
		newCopiers(2), newHdels(2), &emptiers{}, newHsetnx(2), &unlinker{},
		newRenamers(2),
	}
	verify := func(t *testing.T, rc *redis.Client) {
		ctx := context.Background()
		names, err := rc.Keys(ctx, "*").Result()
		require.NoError(t, err)
		keys := map[string]bool{}
		for _, k := range names {
			keys[k] = true
		}
		for _, m := range models {
			m.verify(t, rc, keys)
		}
		require.Empty(t, keys, "keys no client wrote")
	}
	// Each round, one kind of client (the victim) counts its acknowledged
	// commands towards the kill, so that kv is killed right after one of
	// its commands was answered, while the others run.
	clients := uint64(0)
	victim := 0
	kill9Rounds(t, bin, args, func() int64 {
		victim = rng.IntN(len(models))
		return int64(5 + rng.IntN(300))
	}, verify, func(r *crashRound) {
		t.Logf("round %d: kill after the %dth acknowledged command of the %T clients", r.round, r.killAt, models[victim])
		for i, m := range models {
			ack := func() {}
			if i == victim {
				ack = func() { r.acked(1) }
			}
			m.run(r, ack, func() *rand.Rand { clients++; return rand.New(rand.NewPCG(seed, clients)) })
		}
	})
}

// hgetall is the pairs of key, which must be readable.
func hgetall(t *testing.T, rc *redis.Client, key string) map[string]string {
	t.Helper()
	pairs, err := rc.HGetAll(context.Background(), key).Result()
	require.NoError(t, err)
	return pairs
}

// claim takes from keys those that start with prefix, sorted.
func claim(keys map[string]bool, prefix string) []string {
	var out []string
	for k := range keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
			delete(keys, k)
		}
	}
	slices.Sort(out)
	return out
}

// counters: client i adds 1 to field c<i> of ctr with HINCRBY, and one
// more client adds pipelines of 8 to field cp; each records the last value
// it was answered (acked) and the highest it may have reached (hi).
type counters struct {
	n         int
	acked, hi []atomic.Int64 // n single clients, then the pipelined one
}

func newCounters(n int) *counters {
	return &counters{n: n, acked: make([]atomic.Int64, n+1), hi: make([]atomic.Int64, n+1)}
}

func (c *counters) field(i int) string {
	if i == c.n {
		return "cp"
	}
	return "c" + strconv.Itoa(i)
}

func (c *counters) run(r *crashRound, ack func(), _ func() *rand.Rand) {
	ctx := context.Background()
	for i := range c.n {
		r.goClient(func(rc *redis.Client) {
			for {
				c.hi[i].Store(c.acked[i].Load() + 1)
				v, err := rc.HIncrBy(ctx, "ctr", c.field(i), 1).Result()
				if err != nil {
					r.failed("hincrby", err)
					return
				}
				if !assert.Equal(r.t, c.acked[i].Load()+1, v, "ctr %s", c.field(i)) {
					return
				}
				c.acked[i].Store(v)
				ack()
			}
		})
	}
	r.goClient(func(rc *redis.Client) {
		const batch = 8
		for {
			base := c.acked[c.n].Load()
			c.hi[c.n].Store(base + batch)
			pipe := rc.Pipeline()
			cmds := make([]*redis.IntCmd, batch)
			for j := range cmds {
				cmds[j] = pipe.HIncrBy(ctx, "ctr", "cp", 1)
			}
			_, err := pipe.Exec(ctx)
			for j, cmd := range cmds {
				if cmd.Err() == nil {
					assert.Equal(r.t, base+int64(j)+1, cmd.Val())
					c.acked[c.n].Store(cmd.Val())
				}
			}
			if err != nil {
				r.failed("hincrby pipeline", err)
				return
			}
			ack()
		}
	})
}

func (c *counters) verify(t *testing.T, rc *redis.Client, keys map[string]bool) {
	claim(keys, "ctr")
	pairs := hgetall(t, rc, "ctr")
	for i := range c.n + 1 {
		f := c.field(i)
		var v int64
		if s, ok := pairs[f]; ok {
			var err error
			v, err = strconv.ParseInt(s, 10, 64)
			require.NoError(t, err)
			delete(pairs, f)
		}
		require.GreaterOrEqual(t, v, c.acked[i].Load(), "ctr %s: acknowledged increments lost", f)
		require.LessOrEqual(t, v, c.hi[i].Load(), "ctr %s: more increments than were sent (acknowledged %d)", f, c.acked[i].Load())
		c.acked[i].Store(v)
		c.hi[i].Store(v)
	}
	require.Empty(t, pairs, "ctr: fields no client wrote")
}

// floatCounters: client i adds 0.5 to field f<i> of fctr with HINCRBYFLOAT
// (exact in binary, so the values compare exactly).
type floatCounters struct {
	n         int
	mu        sync.Mutex
	acked, hi []float64
}

func (c *floatCounters) run(r *crashRound, ack func(), _ func() *rand.Rand) {
	ctx := context.Background()
	if c.acked == nil {
		c.acked, c.hi = make([]float64, c.n), make([]float64, c.n)
	}
	for i := range c.n {
		r.goClient(func(rc *redis.Client) {
			for {
				c.mu.Lock()
				c.hi[i] = c.acked[i] + 0.5
				want := c.hi[i]
				c.mu.Unlock()
				v, err := rc.HIncrByFloat(ctx, "fctr", "f"+strconv.Itoa(i), 0.5).Result()
				if err != nil {
					r.failed("hincrbyfloat", err)
					return
				}
				if !assert.Equal(r.t, want, v) {
					return
				}
				c.mu.Lock()
				c.acked[i] = v
				c.mu.Unlock()
				ack()
			}
		})
	}
}

func (c *floatCounters) verify(t *testing.T, rc *redis.Client, keys map[string]bool) {
	claim(keys, "fctr")
	pairs := hgetall(t, rc, "fctr")
	if c.acked == nil {
		require.Empty(t, pairs)
		return
	}
	for i := range c.n {
		f := "f" + strconv.Itoa(i)
		var v float64
		if s, ok := pairs[f]; ok {
			var err error
			v, err = strconv.ParseFloat(s, 64)
			require.NoError(t, err)
			delete(pairs, f)
		}
		require.True(t, v == c.acked[i] || v == c.hi[i], "fctr %s is %v: acknowledged %v, in flight %v", f, v, c.acked[i], c.hi[i])
		c.acked[i], c.hi[i] = v, v
	}
	require.Empty(t, pairs, "fctr: fields no client wrote")
}

// creators: HINCRBY nk:<round>:<n> x 1 makes a new hash each time; every
// acknowledged one is there as {x: 1}, the one in flight may be, no other.
type creators struct {
	known        map[string]bool // there at the last check: must stay
	round        int
	acked, tried atomic.Int64 // this round's
}

func (c *creators) name(round int, n int64) string {
	return "nk:" + strconv.Itoa(round) + ":" + strconv.FormatInt(n, 10)
}

func (c *creators) run(r *crashRound, ack func(), _ func() *rand.Rand) {
	c.round = r.round
	c.acked.Store(-1)
	c.tried.Store(-1)
	r.goClient(func(rc *redis.Client) {
		for n := int64(0); ; n++ {
			c.tried.Store(n)
			v, err := rc.HIncrBy(context.Background(), c.name(r.round, n), "x", 1).Result()
			if err != nil {
				r.failed("hincrby (new key)", err)
				return
			}
			if !assert.Equal(r.t, int64(1), v) {
				return
			}
			c.acked.Store(n)
			ack()
		}
	})
}

func (c *creators) verify(t *testing.T, rc *redis.Client, keys map[string]bool) {
	found := map[string]bool{}
	for _, k := range claim(keys, "nk:") {
		require.Equal(t, map[string]string{"x": "1"}, hgetall(t, rc, k), k)
		found[k] = true
	}
	for k := range c.known {
		require.True(t, found[k], "%s lost", k)
	}
	if c.known != nil {
		for n := int64(0); n <= c.acked.Load(); n++ {
			require.True(t, found[c.name(c.round, n)], "acknowledged %s lost", c.name(c.round, n))
		}
		for k := range found {
			if !c.known[k] {
				n, err := strconv.ParseInt(k[strings.LastIndexByte(k, ':')+1:], 10, 64)
				require.NoError(t, err)
				require.True(t, strings.HasPrefix(k, "nk:"+strconv.Itoa(c.round)+":") && n <= c.tried.Load(), "%s never written", k)
			}
		}
	} else {
		require.Empty(t, found)
	}
	c.known = found
}

// copiers: client c writes generation g to src<c> (HMSET gen a b c, and an
// odd field for odd generations, HDEL'd for even ones), copies it to
// dst<c>:<g> (COPY) and onto dst<c> (COPY REPLACE).
type copiers struct {
	st []copier
}

type copier struct {
	mu                 sync.Mutex
	srcAcked, srcTried int64 // HMSET of generation ...
	copies             map[int64]bool
	copyTried          int64
	repAcked, repTried int64
}

func newCopiers(n int) *copiers {
	c := &copiers{st: make([]copier, n)}
	for i := range c.st {
		c.st[i] = copier{srcAcked: -1, srcTried: -1, copies: map[int64]bool{}, copyTried: -1, repAcked: -1, repTried: -1}
	}
	return c
}

// generation is what generation g's hash holds.
func generation(g int64) map[string]string {
	s := strconv.FormatInt(g, 10)
	m := map[string]string{"gen": s, "a": s + "/a", "b": s + "/b", "c": s + "/c"}
	if g%2 == 1 {
		m["odd"] = s
	}
	return m
}

func (c *copiers) run(r *crashRound, ack func(), _ func() *rand.Rand) {
	ctx := context.Background()
	for i := range c.st {
		st := &c.st[i]
		src, dst := "src"+strconv.Itoa(i), "dst"+strconv.Itoa(i)
		r.goClient(func(rc *redis.Client) {
			set := func(f func()) { st.mu.Lock(); f(); st.mu.Unlock() }
			for g := st.srcAcked + 1; ; g++ {
				s := strconv.FormatInt(g, 10)
				set(func() { st.srcTried = g })
				if err := rc.HMSet(ctx, src, "gen", s, "a", s+"/a", "b", s+"/b", "c", s+"/c").Err(); err != nil {
					r.failed("hmset", err)
					return
				}
				set(func() { st.srcAcked = g })
				ack()
				var err error
				if g%2 == 1 {
					err = rc.HSet(ctx, src, "odd", s).Err()
				} else {
					err = rc.HDel(ctx, src, "odd").Err()
				}
				if err != nil {
					r.failed("odd field", err)
					return
				}
				ack()
				set(func() { st.copyTried = g })
				n, err := rc.Copy(ctx, src, dst+":"+s, 0, false).Result()
				if err != nil {
					r.failed("copy", err)
					return
				}
				if !assert.Equal(r.t, int64(1), n, "COPY %s %s:%s", src, dst, s) {
					return
				}
				set(func() { st.copies[g] = true; st.repTried = g })
				ack()
				if n, err = rc.Copy(ctx, src, dst, 0, true).Result(); err != nil {
					r.failed("copy replace", err)
					return
				}
				if !assert.Equal(r.t, int64(1), n, "COPY %s %s REPLACE", src, dst) {
					return
				}
				set(func() { st.repAcked = g })
				ack()
			}
		})
	}
}

func (c *copiers) verify(t *testing.T, rc *redis.Client, keys map[string]bool) {
	for i := range c.st {
		st := &c.st[i]
		src, dst := "src"+strconv.Itoa(i), "dst"+strconv.Itoa(i)
		// src: generation srcAcked or the one in flight, its four fields
		// whole (the odd field is written apart).
		delete(keys, src)
		pairs := hgetall(t, rc, src)
		gen := int64(-1)
		if len(pairs) > 0 {
			var err error
			gen, err = strconv.ParseInt(pairs["gen"], 10, 64)
			require.NoError(t, err, "%s: %v", src, pairs)
			delete(pairs, "odd")
			want := generation(gen)
			delete(want, "odd")
			require.Equal(t, want, pairs, "%s: HMSET whole", src)
		}
		require.True(t, gen == st.srcAcked || gen == st.srcTried, "%s at generation %d; acknowledged %d, tried %d", src, gen, st.srcAcked, st.srcTried)
		// dst:g: every acknowledged copy, whole, and the one in flight.
		found := map[int64]bool{}
		for _, k := range claim(keys, dst+":") {
			g, err := strconv.ParseInt(k[len(dst)+1:], 10, 64)
			require.NoError(t, err, k)
			require.True(t, st.copies[g] || g == st.copyTried, "%s never copied (last tried %d)", k, st.copyTried)
			require.Equal(t, generation(g), hgetall(t, rc, k), "%s: the copy of generation %d, whole", k, g)
			found[g] = true
		}
		for g := range st.copies {
			require.True(t, found[g], "acknowledged COPY to %s:%d lost", dst, g)
		}
		// dst: the last acknowledged COPY REPLACE or the one in flight.
		delete(keys, dst)
		pairs = hgetall(t, rc, dst)
		rep := int64(-1)
		if len(pairs) > 0 {
			var err error
			rep, err = strconv.ParseInt(pairs["gen"], 10, 64)
			require.NoError(t, err, "%s: %v", dst, pairs)
			require.Equal(t, generation(rep), pairs, "%s: COPY REPLACE of generation %d, whole (and nothing left of the one it replaced)", dst, rep)
		}
		require.True(t, rep == st.repAcked || rep == st.repTried, "%s at generation %d; acknowledged %d, tried %d", dst, rep, st.repAcked, st.repTried)

		st.srcAcked, st.srcTried = gen, gen
		st.copies, st.copyTried = found, -1
		st.repAcked, st.repTried = rep, rep
	}
}

// hdels: client h sets keep in hd<h> once, then over and over sets three
// fields x<n>a..c in one HSET and deletes them in one HDEL: after a
// restart the three are all there or none, and none of an acknowledged
// HDEL.
type hdels struct {
	st []hdel
}

type hdel struct {
	keepAcked         bool
	delAcked, touched int64 // last acknowledged HDEL; the n of the last HSET or HDEL sent
	mayStay           map[int64]bool
	next              int64
}

func newHdels(n int) *hdels {
	h := &hdels{st: make([]hdel, n)}
	for i := range h.st {
		h.st[i] = hdel{delAcked: -1, touched: -1, mayStay: map[int64]bool{}}
	}
	return h
}

func (h *hdels) run(r *crashRound, ack func(), _ func() *rand.Rand) {
	ctx := context.Background()
	for i := range h.st {
		st := &h.st[i]
		key := "hd" + strconv.Itoa(i)
		var mu sync.Mutex
		r.goClient(func(rc *redis.Client) {
			if !st.keepAcked {
				if err := rc.HSet(ctx, key, "keep", "1").Err(); err != nil {
					r.failed("hset keep", err)
					return
				}
				st.keepAcked = true
			}
			for n := st.next; ; n++ {
				s := "x" + strconv.FormatInt(n, 10)
				mu.Lock()
				st.touched, st.next = n, n+1
				mu.Unlock()
				if v, err := rc.HSet(ctx, key, s+"a", "1", s+"b", "1", s+"c", "1").Result(); err != nil {
					r.failed("hset", err)
					return
				} else if !assert.Equal(r.t, int64(3), v) {
					return
				}
				ack()
				v, err := rc.HDel(ctx, key, s+"a", s+"b", s+"c").Result()
				if err != nil {
					r.failed("hdel", err)
					return
				}
				if !assert.Equal(r.t, int64(3), v, "HDEL %s %s*", key, s) {
					return
				}
				mu.Lock()
				st.delAcked = n
				mu.Unlock()
				ack()
			}
		})
	}
}

func (h *hdels) verify(t *testing.T, rc *redis.Client, keys map[string]bool) {
	for i := range h.st {
		st := &h.st[i]
		key := "hd" + strconv.Itoa(i)
		delete(keys, key)
		pairs := hgetall(t, rc, key)
		if st.keepAcked {
			require.Equal(t, "1", pairs["keep"], "%s keep lost", key)
		}
		delete(pairs, "keep")
		groups := map[int64]int{}
		for f, v := range pairs {
			require.Equal(t, "1", v)
			require.True(t, len(f) > 2 && f[0] == 'x', "%s %s never written", key, f)
			n, err := strconv.ParseInt(f[1:len(f)-1], 10, 64)
			require.NoError(t, err, f)
			groups[n]++
		}
		for n, count := range groups {
			require.Equal(t, 3, count, "%s x%d: HSET and HDEL of three fields are whole", key, n)
			require.True(t, st.mayStay[n] || (n == st.touched && n != st.delAcked), "%s x%d*: an acknowledged HDEL undone (acknowledged up to %d)", key, n, st.delAcked)
			st.mayStay[n] = true
		}
	}
}

// emptiers: HSET he:<n> f 1 then HDEL he:<n> f; the hash stays, empty
// (README: kv's departure from Redis), and never gets f back once the HDEL
// was acknowledged.
type emptiers struct {
	emptied map[string]bool              // HDEL acknowledged
	left    map[string]map[string]string // found at a check, the HDEL unacknowledged
	tried   string                       // the key in flight
	next    int64
	mu      sync.Mutex
}

func (e *emptiers) run(r *crashRound, ack func(), _ func() *rand.Rand) {
	ctx := context.Background()
	if e.emptied == nil {
		e.emptied = map[string]bool{}
	}
	r.goClient(func(rc *redis.Client) {
		for n := e.next; ; n++ {
			key := "he:" + strconv.FormatInt(n, 10)
			e.mu.Lock()
			e.tried, e.next = key, n+1
			e.mu.Unlock()
			if err := rc.HSet(ctx, key, "f", "1").Err(); err != nil {
				r.failed("hset", err)
				return
			}
			ack()
			v, err := rc.HDel(ctx, key, "f").Result()
			if err != nil {
				r.failed("hdel last field", err)
				return
			}
			if !assert.Equal(r.t, int64(1), v) {
				return
			}
			e.mu.Lock()
			e.emptied[key] = true
			e.mu.Unlock()
			ack()
		}
	})
}

func (e *emptiers) verify(t *testing.T, rc *redis.Client, keys map[string]bool) {
	for _, k := range claim(keys, "he:") {
		pairs := hgetall(t, rc, k)
		switch {
		case e.emptied[k]:
			require.Empty(t, pairs, "%s: an acknowledged HDEL undone", k)
		case e.left[k] != nil:
			require.Equal(t, e.left[k], pairs, k)
		default:
			require.Equal(t, e.tried, k, "%s never written", k)
			require.Subset(t, map[string]string{"f": "1"}, pairs, k)
			if e.left == nil {
				e.left = map[string]map[string]string{}
			}
			e.left[k] = pairs
		}
	}
	for k := range e.emptied { // as before the kill: kept, empty, until DEL
		n, err := rc.Exists(context.Background(), k).Result()
		require.NoError(t, err)
		require.Equal(t, int64(1), n, "%s, emptied by an acknowledged HDEL, is gone", k)
	}
}

// hsetnxers: n clients race HSETNX nx k<round>-<s> c<i>-<s>; a field some
// client was answered 1 for holds that client's value, whoever else tried.
type hsetnxers struct {
	n       int
	mu      sync.Mutex
	winner  map[string]string          // acknowledged 1
	tried   map[string]map[string]bool // values sent
	settled map[string]string          // found at the last check
}

func newHsetnx(n int) *hsetnxers {
	return &hsetnxers{n: n, winner: map[string]string{}, tried: map[string]map[string]bool{}, settled: map[string]string{}}
}

func (h *hsetnxers) run(r *crashRound, ack func(), rng func() *rand.Rand) {
	ctx := context.Background()
	for i := range h.n {
		rnd := rng()
		r.goClient(func(rc *redis.Client) {
			for s := 0; ; s++ {
				f := "k" + strconv.Itoa(r.round) + "-" + strconv.Itoa(s)
				v := "c" + strconv.Itoa(i) + "-" + strconv.Itoa(s)
				if rnd.IntN(4) == 0 { // now and then a field the others will not race for
					f += "-" + strconv.Itoa(i)
				}
				h.mu.Lock()
				if h.tried[f] == nil {
					h.tried[f] = map[string]bool{}
				}
				h.tried[f][v] = true
				h.mu.Unlock()
				set, err := rc.HSetNX(ctx, "nx", f, v).Result()
				if err != nil {
					r.failed("hsetnx", err)
					return
				}
				if set {
					h.mu.Lock()
					prev, twice := h.winner[f]
					h.winner[f] = v
					h.mu.Unlock()
					if !assert.False(r.t, twice, "HSETNX nx %s answered 1 twice (%s, %s)", f, prev, v) {
						return
					}
				}
				ack()
			}
		})
	}
}

func (h *hsetnxers) verify(t *testing.T, rc *redis.Client, keys map[string]bool) {
	delete(keys, "nx")
	pairs := hgetall(t, rc, "nx")
	for f, v := range pairs {
		if old, ok := h.settled[f]; ok {
			require.Equal(t, old, v, "nx %s changed", f)
			continue
		}
		require.True(t, h.tried[f][v], "nx %s=%s never written", f, v)
	}
	for f, v := range h.winner {
		require.Equal(t, v, pairs[f], "nx %s: the acknowledged HSETNX's value", f)
	}
	for f, v := range h.settled {
		require.Equal(t, v, pairs[f], "nx %s lost", f)
	}
	h.settled, h.winner, h.tried = pairs, map[string]string{}, map[string]map[string]bool{}
}

// unlinker: HSET u:<n>:a and u:<n>:b, then UNLINK both; an acknowledged
// UNLINK is not undone.
type unlinker struct {
	mu      sync.Mutex
	next    int64
	tried   int64 // the n in flight
	mayStay map[string]bool
}

func (u *unlinker) run(r *crashRound, ack func(), _ func() *rand.Rand) {
	ctx := context.Background()
	if u.mayStay == nil {
		u.mayStay = map[string]bool{}
		u.tried = -1
	}
	r.goClient(func(rc *redis.Client) {
		for n := u.next; ; n++ {
			a, b := "u:"+strconv.FormatInt(n, 10)+":a", "u:"+strconv.FormatInt(n, 10)+":b"
			u.mu.Lock()
			u.tried, u.next = n, n+1
			u.mu.Unlock()
			if err := rc.HSet(ctx, a, "f", "1").Err(); err != nil {
				r.failed("hset", err)
				return
			}
			ack()
			if err := rc.HSet(ctx, b, "f", "1").Err(); err != nil {
				r.failed("hset", err)
				return
			}
			ack()
			v, err := rc.Unlink(ctx, a, b).Result()
			if err != nil {
				r.failed("unlink", err)
				return
			}
			if !assert.Equal(r.t, int64(2), v) {
				return
			}
			ack()
		}
	})
}

func (u *unlinker) verify(t *testing.T, rc *redis.Client, keys map[string]bool) {
	for _, k := range claim(keys, "u:") {
		require.Equal(t, map[string]string{"f": "1"}, hgetall(t, rc, k), k)
		if u.mayStay[k] {
			continue
		}
		parts := strings.Split(k, ":")
		n, err := strconv.ParseInt(parts[1], 10, 64)
		require.NoError(t, err)
		require.Equal(t, u.tried, n, "%s: an acknowledged UNLINK undone, or never written", k)
		u.mayStay[k] = true
	}
}

// renamers: client i moves object rn<i>:<g> (five fields) to rn<i>:<g+1>
// with RENAMENX; every fourth move it first makes rn<i>:<g+1> a blocker
// ({blocker: 1}), checks that RENAMENX answers 0, and DELs the blocker.
type renamers struct {
	st []renamer
}

type renamer struct {
	mu             sync.Mutex
	gen            int64 // acknowledged: the object's name (-1: not created)
	blocker        string
	blockerTried   string
	leftBlocker    string // found at a check: DEL'd first
	movedTo        int64  // a RENAMENX in flight to this generation
	createInFlight bool
}

func newRenamers(n int) *renamers {
	rn := &renamers{st: make([]renamer, n)}
	for i := range rn.st {
		rn.st[i] = renamer{gen: -1, movedTo: -1}
	}
	return rn
}

func objectPairs(i int) map[string]string {
	m := map[string]string{}
	for f := range 5 {
		m["f"+strconv.Itoa(f)] = "rn" + strconv.Itoa(i) + "/f" + strconv.Itoa(f)
	}
	return m
}

func (rn *renamers) run(r *crashRound, ack func(), _ func() *rand.Rand) {
	ctx := context.Background()
	for i := range rn.st {
		st := &rn.st[i]
		name := func(g int64) string { return "rn" + strconv.Itoa(i) + ":" + strconv.FormatInt(g, 10) }
		set := func(f func()) { st.mu.Lock(); f(); st.mu.Unlock() }
		r.goClient(func(rc *redis.Client) {
			if st.leftBlocker != "" {
				if err := rc.Del(ctx, st.leftBlocker).Err(); err != nil {
					r.failed("del blocker", err)
					return
				}
				st.leftBlocker = ""
			}
			if st.gen < 0 {
				var args []any
				for f, v := range objectPairs(i) {
					args = append(args, f, v)
				}
				set(func() { st.createInFlight = true })
				if err := rc.HSet(ctx, name(0), args...).Err(); err != nil {
					r.failed("hset object", err)
					return
				}
				set(func() { st.gen, st.createInFlight = 0, false })
			}
			for {
				g := st.gen
				if g%4 == 3 {
					set(func() { st.blockerTried = name(g + 1) })
					if err := rc.HSet(ctx, name(g+1), "blocker", "1").Err(); err != nil {
						r.failed("hset blocker", err)
						return
					}
					set(func() { st.blocker = name(g + 1) })
					ack()
					n, err := rc.RenameNX(ctx, name(g), name(g+1)).Result()
					if err != nil {
						r.failed("renamenx onto a blocker", err)
						return
					}
					if !assert.False(r.t, n, "RENAMENX onto an existing key") {
						return
					}
					ack()
					if err := rc.Del(ctx, name(g+1)).Err(); err != nil {
						r.failed("del blocker", err)
						return
					}
					set(func() { st.blocker, st.blockerTried = "", "" })
					ack()
				}
				set(func() { st.movedTo = g + 1 })
				n, err := rc.RenameNX(ctx, name(g), name(g+1)).Result()
				if err != nil {
					r.failed("renamenx", err)
					return
				}
				if !assert.True(r.t, n, "RENAMENX %s %s", name(g), name(g+1)) {
					return
				}
				set(func() { st.gen, st.movedTo = g+1, -1 })
				ack()
			}
		})
	}
}

func (rn *renamers) verify(t *testing.T, rc *redis.Client, keys map[string]bool) {
	for i := range rn.st {
		st := &rn.st[i]
		prefix := "rn" + strconv.Itoa(i) + ":"
		var objects []int64
		blockers := 0
		for _, k := range claim(keys, prefix) {
			g, err := strconv.ParseInt(k[len(prefix):], 10, 64)
			require.NoError(t, err, k)
			pairs := hgetall(t, rc, k)
			if _, ok := pairs["blocker"]; ok {
				require.Equal(t, map[string]string{"blocker": "1"}, pairs, k)
				require.True(t, k == st.blocker || k == st.blockerTried || k == st.leftBlocker, "%s: a blocker whose DEL was acknowledged, or never made", k)
				st.leftBlocker = k
				blockers++
				continue
			}
			require.Equal(t, objectPairs(i), pairs, "%s: the object whole", k)
			objects = append(objects, g)
		}
		require.LessOrEqual(t, blockers, 1)
		if st.gen < 0 && len(objects) == 0 {
			continue
		}
		require.Len(t, objects, 1, "object rn%d under exactly one name: %v", i, objects)
		g := objects[0]
		require.True(t, g == st.gen || (g == st.movedTo && g == st.gen+1) || (st.gen < 0 && g == 0 && st.createInFlight),
			"rn%d at generation %d; acknowledged %d, in flight %d", i, g, st.gen, st.movedTo)
		st.gen, st.movedTo, st.createInFlight = g, -1, false
		st.blocker, st.blockerTried = "", ""
	}
}

// flushWrite is one write of the flush test: its fields (bucket and
// field, each written once in the whole test) and tickets.
type flushWrite struct {
	fields       []flushField
	value        string
	sent, answer int64 // answer 0: not acknowledged
}

type flushField struct{ bucket, field string }

type flushOp struct{ sent, answer int64 }

func flushKill9Rounds(t *testing.T, bin, policy string, seed uint64) {
	args := []string{"--data-dir", t.TempDir(), "--fsync", policy}
	rng := rand.New(rand.NewPCG(seed, 0))
	const writers, buckets = 4, 3
	var (
		ticket  atomic.Int64
		mu      sync.Mutex
		writes  []*flushWrite
		flushes []flushOp // one flusher: in order; the last may be unanswered
		clients uint64
	)

	verify := func(t *testing.T, rc *redis.Client) {
		ctx := context.Background()
		stored := map[flushField]string{}
		names, err := rc.Keys(ctx, "*").Result()
		require.NoError(t, err)
		for _, k := range names {
			pairs := hgetall(t, rc, k)
			require.NotEmpty(t, pairs, "%s: an empty key", k)
			for f, v := range pairs {
				stored[flushField{k, f}] = v
			}
		}
		snapshot := maps.Clone(stored)
		var lastAnswered int64 // the last flush's answer, if every flush was answered
		inFlight := -1         // the unanswered flush, if any
		for i, f := range flushes {
			if f.answer == 0 {
				require.Equal(t, len(flushes)-1, i)
				inFlight = i
			} else {
				lastAnswered = f.answer
			}
		}
		var mustGo, mustStay, cutOff, cutOffThere int
		for _, w := range writes {
			present := 0
			for _, f := range w.fields {
				if v, ok := stored[f]; ok {
					require.Equal(t, w.value, v, "%v", f)
					present++
					delete(stored, f)
				}
			}
			require.True(t, present == 0 || present == len(w.fields), "a write of %v is in part there", w.fields)
			if w.answer == 0 {
				continue
			}
			gone := false // answered before an acknowledged flush was sent
			for _, f := range flushes {
				gone = gone || (f.answer != 0 && f.sent > w.answer)
			}
			if gone {
				mustGo++
				require.Zero(t, present, "%v, answered before an acknowledged FLUSHALL was sent, is there", w.fields)
			}
			stay := inFlight < 0 && w.sent > lastAnswered
			if stay {
				mustStay++
				require.NotZero(t, present, "acknowledged %v, sent after every FLUSHALL was answered, lost", w.fields)
			}
			if inFlight >= 0 && w.answer < flushes[inFlight].sent && (inFlight == 0 || w.sent > flushes[inFlight-1].answer) {
				cutOff++ // would stay but for the flush in flight
				if present > 0 {
					cutOffThere++
				}
			}
		}
		require.Empty(t, stored, "pairs never written")
		require.True(t, cutOffThere == 0 || cutOffThere == cutOff, "the FLUSHALL the kill cut off took %d of the %d writes before it", cutOff-cutOffThere, cutOff)
		t.Logf("%d writes, %d flushes (one cut off: %v, taking %d of %d writes before it); %d had to be gone, %d there",
			len(writes), len(flushes), inFlight >= 0, cutOff-cutOffThere, cutOff, mustGo, mustStay)

		// What is there now is the next round's starting point, written
		// and answered now; what is not can never come back.
		now := ticket.Add(1)
		var kept []*flushWrite
		for f, v := range snapshot {
			kept = append(kept, &flushWrite{fields: []flushField{f}, value: v, sent: now, answer: now})
		}
		writes, flushes = kept, nil
	}

	kill9Rounds(t, bin, args, func() int64 { return int64(100 + rng.IntN(1200)) }, verify, func(r *crashRound) {
		ctx := context.Background()
		var answered atomic.Int64
		progress := make(chan struct{}, 1)
		for w := range writers {
			clients++
			rnd := rand.New(rand.NewPCG(seed, clients))
			r.goClient(func(rc *redis.Client) {
				for seq := 0; ; seq++ {
					b := "fb" + strconv.Itoa(rnd.IntN(buckets))
					f := "r" + strconv.Itoa(r.round) + "-w" + strconv.Itoa(w) + "-" + strconv.Itoa(seq)
					wr := &flushWrite{fields: []flushField{{b, f}}, value: "v" + strconv.Itoa(seq)}
					var cmd redis.Cmder
					switch rnd.IntN(4) {
					case 0:
						cmd = redis.NewIntCmd(ctx, "hset", b, f, wr.value)
					case 1:
						wr.fields = append(wr.fields, flushField{b, f + "b"})
						cmd = redis.NewStatusCmd(ctx, "hmset", b, f, wr.value, f+"b", wr.value)
					case 2:
						wr.value = "1"
						cmd = redis.NewIntCmd(ctx, "hincrby", b, f, 1)
					case 3:
						cmd = redis.NewBoolCmd(ctx, "hsetnx", b, f, wr.value)
					}
					mu.Lock()
					writes = append(writes, wr)
					mu.Unlock()
					wr.sent = ticket.Add(1)
					err := rc.Process(ctx, cmd)
					if err != nil {
						r.failed(cmd.Name(), err)
						return
					}
					a := ticket.Add(1)
					mu.Lock()
					wr.answer = a
					mu.Unlock()
					answered.Add(1)
					select {
					case progress <- struct{}{}:
					default:
					}
					r.acked(1)
				}
			})
		}
		clients++
		rnd := rand.New(rand.NewPCG(seed, clients))
		// In some rounds the flushes stop a little before the kill, so that
		// writes answered after every flush are checked; in the others
		// they go on to the kill, which now and then races one.
		stopAt := int64(-1)
		if rnd.IntN(2) == 0 {
			stopAt = r.killAt - int64(20+rnd.IntN(80))
		}
		r.goClient(func(rc *redis.Client) {
			for n := 0; ; n++ {
				// Wait for some writes since the last flush.
				for target := answered.Load() + int64(1+rnd.IntN(40)); answered.Load() < target; {
					select {
					case <-progress:
					case <-r.killed:
						return
					}
				}
				if stopAt >= 0 && r.count.Load() >= stopAt {
					<-r.killed
					return
				}
				var cmd *redis.StatusCmd
				switch rnd.IntN(4) {
				case 0:
					cmd = redis.NewStatusCmd(ctx, "flushdb")
				case 1:
					cmd = redis.NewStatusCmd(ctx, "flushall", "async")
				default:
					cmd = redis.NewStatusCmd(ctx, "flushall")
				}
				mu.Lock()
				flushes = append(flushes, flushOp{sent: ticket.Add(1)})
				i := len(flushes) - 1
				mu.Unlock()
				if stopAt < 0 && rnd.IntN(8) == 0 && r.count.Load() > r.killAt/2 {
					r.wg.Go(r.kill) // the kill races the flush
				}
				err := rc.Process(ctx, cmd)
				if err != nil {
					r.failed("flushall", err)
					return
				}
				a := ticket.Add(1)
				mu.Lock()
				flushes[i].answer = a
				mu.Unlock()
				r.acked(1)
			}
		})
	})
}
