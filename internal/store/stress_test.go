package store

// A randomized stress test of the fence: concurrent writers, a goroutine
// that fails, stalls and clears the disk at random, and a model of every
// acknowledged and failed write, checked against LoadAll after each round
// (once a write has recovered the store) and after a Close and a reopen.
//
// It runs only when asked to:
//
//	KV_STRESS=1 [KV_STRESS_POLICY=always|everysec|both] [KV_STRESS_DURATION=10m]
//	[KV_STRESS_ITERS=n] [KV_STRESS_SEED=s] [KV_STRESS_HANG=60s] [KV_STRESS_LOG=1]
//	[KV_STRESS_SEL=1] [KV_STRESS_CKPT=1]
//	go test -race -count=1 -run TestStressFence -v -timeout 0 ./internal/store
//
// KV_STRESS_SEL adds faults of one kind of I/O at a time (creating tables,
// directory fsyncs, MANIFEST writes, renames, table fsyncs: see selFS);
// KV_STRESS_CKPT runs checkpoints alongside, in the daemon's layout.
//
// A seed fixes every random choice (operations, sizes, fault schedule, the
// store's options), not the interleaving of goroutines: a failure that
// depends on timing may need several runs of its seed.

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
)

func stressEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestStressFence(t *testing.T) {
	if os.Getenv("KV_STRESS") == "" && os.Getenv("KV_STRESS_SEED") == "" {
		t.Skip("set KV_STRESS=1 (or KV_STRESS_SEED) to run the fence stress test")
	}
	var policies []Fsync
	switch p := stressEnv("KV_STRESS_POLICY", "both"); p {
	case "both":
		policies = []Fsync{FsyncAlways, FsyncEverySec}
	default:
		f, err := ParseFsync(p)
		if err != nil {
			t.Fatal(err)
		}
		policies = []Fsync{f}
	}
	dur, err := time.ParseDuration(stressEnv("KV_STRESS_DURATION", "1m"))
	if err != nil {
		t.Fatal(err)
	}
	iters, _ := strconv.Atoi(stressEnv("KV_STRESS_ITERS", "0"))
	hang, err := time.ParseDuration(stressEnv("KV_STRESS_HANG", "60s"))
	if err != nil {
		t.Fatal(err)
	}
	var seeds []uint64
	fixed := os.Getenv("KV_STRESS_SEED") != ""
	if fixed {
		for _, f := range strings.Split(os.Getenv("KV_STRESS_SEED"), ",") {
			s, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, s)
		}
	}
	base := uint64(time.Now().UnixNano()) % 1_000_000_000
	deadline := time.Now().Add(dur)
	var total stressTotals
	for i := 0; ; i++ {
		var seed uint64
		if fixed {
			if i >= len(seeds) {
				break
			}
			seed = seeds[i]
		} else {
			if time.Now().After(deadline) || (iters > 0 && i >= iters) {
				break
			}
			seed = base + uint64(i)
		}
		policy := policies[i%len(policies)]
		if len(policies) > 1 && fixed {
			// A fixed seed runs under each policy.
			for _, p := range policies {
				if !runStressSeed(t, p, seed, hang, &total) {
					return
				}
			}
			continue
		}
		if !runStressSeed(t, policy, seed, hang, &total) {
			return
		}
	}
	t.Logf("TOTAL: %d seeds, %d operations (%d acknowledged, %d failed, %d changes), %d faults injected, %d recovery attempts, %d checks",
		total.seeds, total.ops, total.acked, total.failed, total.changes, total.faults, total.retries, total.checks)
}

type stressTotals struct {
	seeds, ops, acked, failed, changes, faults, retries, checks int64
}

func runStressSeed(t *testing.T, policy Fsync, seed uint64, hang time.Duration, total *stressTotals) bool {
	name := fmt.Sprintf("%s/seed=%d", policy, seed)
	return t.Run(name, func(t *testing.T) {
		t.Logf("seed %d policy %s; reproduce: KV_STRESS_SEED=%d KV_STRESS_POLICY=%s go test -race -count=1 -run 'TestStressFence' -v -timeout 0 ./internal/store",
			seed, policy, seed, policy)
		before := goleak.IgnoreCurrent()
		h := newStressHarness(t, policy, seed, hang)
		h.run()
		if !t.Failed() {
			if err := goleak.Find(before); err != nil {
				t.Errorf("seed %d: goroutines leaked: %v", seed, err)
			}
		}
		total.seeds++
		total.ops += h.ops.Load()
		total.acked += h.acked.Load()
		total.failed += h.failed.Load()
		total.changes += h.changes.Load()
		total.faults += h.faults.Load()
		total.retries += h.retries
		total.checks += h.checks
		t.Logf("seed %d: %d writers, %d ops (%d acked, %d failed, %d changes), %d faults, %d recovery attempts, %d checks",
			seed, len(h.writers), h.ops.Load(), h.acked.Load(), h.failed.Load(), h.changes.Load(), h.faults.Load(), h.retries, h.checks)
	})
}

// vspec names a value: the bytes are a function of it.
type vspec struct {
	w    uint16
	op   uint32
	idx  uint32
	size uint32
}

var stressPattern = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 1<<16+8192)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

func (v vspec) header() []byte {
	return fmt.Appendf(nil, "w%d/o%d/i%d/", v.w, v.op, v.idx)
}

func (v vspec) bytes(dst []byte) []byte {
	hdr := v.header()
	size := int(v.size)
	if size <= len(hdr) {
		return append(dst[:0], hdr[:size]...)
	}
	dst = append(dst[:0], hdr...)
	off := int((uint64(v.w)*1_000_003 + uint64(v.op)*7919 + uint64(v.idx)*31) % 8192)
	for len(dst) < size {
		n := min(size-len(dst), 1<<16)
		dst = append(dst, stressPattern[off:off+n]...)
	}
	return dst
}

// parseHeader returns which write made a value, if it can tell.
func parseHeader(v []byte) string {
	var w, op, idx int
	if n, err := fmt.Sscanf(string(v[:min(len(v), 40)]), "w%d/o%d/i%d/", &w, &op, &idx); n == 3 && err == nil {
		return fmt.Sprintf("w%d op %d item %d", w, op, idx)
	}
	return "unknown writer"
}

type bmodel struct {
	exists bool
	pairs  map[string]vspec
	bytes  int64
}

func (b *bmodel) set(k string, v vspec) {
	if old, ok := b.pairs[k]; ok {
		b.bytes -= int64(old.size)
	}
	b.pairs[k] = v
	b.bytes += int64(v.size)
}

func (b *bmodel) del(k string) {
	if old, ok := b.pairs[k]; ok {
		b.bytes -= int64(old.size)
		delete(b.pairs, k)
	}
}

func (b *bmodel) clear() {
	b.exists = false
	clear(b.pairs)
	b.bytes = 0
}

type opKind int

const (
	kApply opKind = iota
	kApplyPairs
	kCreate
	kDrop
	kMove
)

func (k opKind) String() string {
	return [...]string{"apply", "applyPairs", "create", "drop", "move"}[k]
}

type sop struct {
	id     uint32
	kind   opKind
	via    string // how it was called
	bucket string
	to     string
	keys   []string
	vals   []vspec
	dels   []bool
	pairs  map[string]vspec // move
	bytes  int
}

func (o *sop) ops() []Op {
	var buf []byte
	out := make([]Op, len(o.keys))
	for i, k := range o.keys {
		if o.dels[i] {
			out[i] = Delete(k)
		} else {
			buf = o.vals[i].bytes(nil)
			out[i] = Put(k, buf)
		}
	}
	return out
}

func (o *sop) movePairs() map[string][]byte {
	m := make(map[string][]byte, len(o.pairs))
	for k, v := range o.pairs {
		m[k] = v.bytes(nil)
	}
	return m
}

func (o *sop) String() string {
	switch o.kind {
	case kMove:
		return fmt.Sprintf("op %d move %s -> %s (%d pairs, %d bytes) via %s", o.id, o.bucket, o.to, len(o.pairs), o.bytes, o.via)
	case kApply, kApplyPairs:
		return fmt.Sprintf("op %d %s %s (%d ops, %d bytes) via %s", o.id, o.kind, o.bucket, len(o.keys), o.bytes, o.via)
	}
	return fmt.Sprintf("op %d %s %s via %s", o.id, o.kind, o.bucket, o.via)
}

type oprec struct {
	kind     opKind
	bucket   string
	to       string
	desc     string
	outcome  string // "ok", "fail: ...", or "pending"
	start    time.Time
	end      time.Time
	faultsAt int64
}

type stressWriter struct {
	h       *stressHarness
	id      int
	rng     *rand.Rand
	buckets []string
	model   map[string]*bmodel
	nextOp  uint32
	log     map[uint32]*oprec
	keyHist map[string][]uint32 // bucket\x00key -> the last ops that wrote it
	slot    *stressSlot
}

type stressSlot struct {
	start atomic.Int64 // unix ns of the call in flight; 0 if none
	desc  atomic.Pointer[string]
}

type stressHarness struct {
	t         *testing.T
	policy    Fsync
	seed      uint64
	rng       *rand.Rand
	dir       string
	hang      time.Duration
	faultsInj *Faults
	sel       atomic.Int32
	logs      *logBuffer
	opts      Options

	s       *Store
	writers []*stressWriter
	main    *stressSlot

	ops, acked, failed, changes, faults atomic.Int64
	progress                            chan struct{}
	clearSince                          atomic.Int64 // unix ns since faults are all clear; 0 while one is on
	retries, checks                     int64

	probeModel *bmodel
	probeN     int
}

func newStressHarness(t *testing.T, policy Fsync, seed uint64, hang time.Duration) *stressHarness {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	h := &stressHarness{t: t, policy: policy, seed: seed, rng: rng, dir: t.TempDir(), hang: hang,
		faultsInj: &Faults{}, logs: &logBuffer{}, progress: make(chan struct{}, 1), main: &stressSlot{},
		probeModel: &bmodel{pairs: map[string]vspec{}}}
	h.clearSince.Store(time.Now().UnixNano())
	retry := []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond}[rng.IntN(4)]
	syncEvery := []time.Duration{2 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond, time.Second}[rng.IntN(4)]
	var logger *slog.Logger
	if os.Getenv("KV_STRESS_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	} else {
		logger = h.logs.logger()
	}
	h.opts = Options{Fsync: policy, Faults: h.faultsInj, Logger: logger, RetryInterval: retry, syncEvery: syncEvery}
	n := 2 + rng.IntN(6)
	for g := range n {
		w := &stressWriter{h: h, id: g, rng: rand.New(rand.NewPCG(seed, uint64(g)+1)), model: map[string]*bmodel{},
			log: map[uint32]*oprec{}, keyHist: map[string][]uint32{}, slot: &stressSlot{}}
		for b := range 4 {
			name := fmt.Sprintf("w%d.b%d", g, b)
			w.buckets = append(w.buckets, name)
			w.model[name] = &bmodel{pairs: map[string]vspec{}}
		}
		h.writers = append(h.writers, w)
	}
	t.Logf("seed %d: %d writers, RetryInterval %v, syncEvery %v", seed, n, retry, syncEvery)
	return h
}

func (h *stressHarness) poke() {
	select {
	case h.progress <- struct{}{}:
	default:
	}
}

// watchdog panics, with every goroutine's stack, when a call has not
// returned within h.hang of the faults clearing (or 4*h.hang in all).
func (h *stressHarness) watchdog(stop chan struct{}, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	slots := []*stressSlot{h.main}
	for _, w := range h.writers {
		slots = append(slots, w.slot)
	}
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		cs := h.clearSince.Load()
		for _, sl := range slots {
			st := sl.start.Load()
			if st == 0 {
				continue
			}
			hung := now-st > int64(4*h.hang)
			if cs != 0 && now-max(st, cs) > int64(h.hang) {
				hung = true
			}
			if hung {
				desc := "?"
				if d := sl.desc.Load(); d != nil {
					desc = *d
				}
				f, err := os.CreateTemp("", fmt.Sprintf("stress-fence-hang-%d-*.txt", h.seed))
				if err == nil {
					_ = pprof.Lookup("goroutine").WriteTo(f, 2)
					_ = f.Close()
				}
				fmt.Fprintf(os.Stderr, "HANG seed %d policy %s: %q in flight for %v (faults clear for %v); goroutines in %s\nstore logs:\n%s\n",
					h.seed, h.policy, desc, time.Duration(now-st), time.Duration(now-cs), f.Name(), tail(h.logs.String(), 4000))
				_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
				panic(fmt.Sprintf("stress: hang at seed %d policy %s: %s", h.seed, h.policy, desc))
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// timed runs f as a call the watchdog watches.
func timed[T any](sl *stressSlot, desc string, f func() T) T {
	sl.desc.Store(&desc)
	sl.start.Store(time.Now().UnixNano())
	defer sl.start.Store(0)
	return f()
}

func (h *stressHarness) run() {
	t := h.t
	wdStop, wdDone := make(chan struct{}), make(chan struct{})
	go h.watchdog(wdStop, wdDone)
	defer func() { close(wdStop); <-wdDone }()

	var err error
	h.s, err = open(h.dir, h.opts, selFS{vfs.Default, &h.sel})
	if err != nil {
		t.Fatalf("seed %d: open: %v", h.seed, err)
	}
	epochs := 1 + h.rng.IntN(2)
	for e := range epochs {
		if e > 0 {
			h.s, err = open(h.dir, h.opts, selFS{vfs.Default, &h.sel})
			if err != nil {
				t.Fatalf("seed %d: reopen with faults (epoch %d): %v", h.seed, e, err)
			}
		}
		rounds := 2 + h.rng.IntN(3)
		for r := range rounds {
			if !h.round(fmt.Sprintf("epoch %d round %d", e, r)) {
				h.closeAfterFailure()
				return
			}
		}
		h.retries += int64(h.s.retries.Load())
		cerr := timed(h.main, "Close", h.s.Close)
		if cerr != nil {
			t.Errorf("seed %d: Close after a recovered round: %v", h.seed, cerr)
		}
		// Reopen with no faults and check.
		s2, err := timed(h.main, "Open", func() storeErr {
			s, err := Open(h.dir, Options{Fsync: h.policy, Logger: h.opts.Logger})
			return storeErr{s, err}
		}).unpack()
		if err != nil {
			t.Fatalf("seed %d: reopen: %v", h.seed, err)
		}
		ok := h.check(s2, fmt.Sprintf("epoch %d after Close and reopen", e))
		if cerr := timed(h.main, "Close", s2.Close); cerr != nil {
			t.Errorf("seed %d: Close of the reopened store: %v", h.seed, cerr)
		}
		if !ok {
			return
		}
	}
}

type storeErr struct {
	s *Store
	e error
}

func (p storeErr) unpack() (*Store, error) { return p.s, p.e }

type waiterErr struct {
	w Waiter
	e error
}

func (p waiterErr) unpack() (Waiter, error) { return p.w, p.e }

func (h *stressHarness) closeAfterFailure() {
	h.faultsInj.Clear()
	_ = timed(h.main, "Close after failure", h.s.Close)
}

// round runs the writers and the faults for a while, then clears the
// faults, waits for a write to succeed, stops the writers and checks.
func (h *stressHarness) round(name string) bool {
	t := h.t
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range h.writers {
		wg.Go(func() { w.run(stop) })
	}
	fstop := make(chan struct{})
	fdone := make(chan struct{})
	go h.faulter(h.rng.Uint64(), fstop, fdone)
	if os.Getenv("KV_STRESS_CKPT") != "" {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				d := filepath.Join(h.dir, "checkpoints", fmt.Sprintf("%s-%d", strings.ReplaceAll(name, " ", "_"), i))
				_ = timed(&stressSlot{}, "checkpoint", func() error { return h.s.Checkpoint(d) })
				_ = os.RemoveAll(d)
			}
		})
	}

	time.Sleep(time.Duration(300+h.rng.IntN(1700)) * time.Millisecond)
	close(fstop)
	<-fdone
	h.faultsInj.Clear()
	h.sel.Store(selNone)
	h.clearSince.Store(time.Now().UnixNano())

	// Wait until a write succeeds, writers still running.
	h.probe(name)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return false
	}
	// A last successful write with the writers stopped: the store is
	// recovered, and every Waiter has been answered.
	h.probe(name + " (writers stopped)")
	if t.Failed() {
		return false
	}
	return h.check(h.s, name)
}

func (h *stressHarness) probe(name string) {
	deadline := time.Now().Add(h.hang)
	for {
		h.probeN++
		v := vspec{w: 999, op: uint32(h.probeN), size: 40}
		err := timed(h.main, "probe Apply", func() error { return h.s.Apply("probe", Put("p", v.bytes(nil))) })
		if err == nil {
			h.probeModel.exists = true
			h.probeModel.set("p", v)
			return
		}
		if !errors.Is(err, ErrWriteFailed) {
			h.t.Errorf("seed %d: %s: probe write: unexpected error %v", h.seed, name, err)
			return
		}
		if time.Now().After(deadline) {
			h.t.Errorf("seed %d policy %s: %s: no write succeeded within %v of the faults clearing: last error %v\nstore logs:\n%s",
				h.seed, h.policy, name, h.hang, err, tail(h.logs.String(), 6000))
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// faulter toggles faults until stop is closed.
func (h *stressHarness) faulter(seed uint64, stop, done chan struct{}) {
	defer close(done)
	rng := rand.New(rand.NewPCG(seed, 7))
	enospc := fmt.Errorf("injected: %w", syscall.ENOSPC)
	eio := fmt.Errorf("injected: %w", syscall.EIO)
	f := h.faultsInj
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	// waitFor waits until cond holds (checked at each writer outcome) or d
	// passes or stop.
	waitFor := func(d time.Duration, cond func() bool) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		for !cond() {
			select {
			case <-stop:
				return
			case <-timer.C:
				return
			case <-h.progress:
			}
		}
	}
	pause := func(max int) { waitFor(time.Duration(rng.IntN(max+1))*time.Millisecond, func() bool { return false }) }
	on := func() { h.clearSince.Store(0); h.faults.Add(1) }
	off := func() { f.Clear(); h.sel.Store(selNone); h.clearSince.Store(time.Now().UnixNano()) }
	for !stopped() {
		// A clear spell: until some writes succeed (a recovery), or a while.
		acked := h.acked.Load()
		want := int64(1 + rng.IntN(20))
		waitFor(time.Duration(5+rng.IntN(400))*time.Millisecond, func() bool { return h.acked.Load() >= acked+want })
		if stopped() {
			return
		}
		failed := h.failed.Load()
		switch a := rng.IntN(100); {
		case a < 30: // a full disk
			on()
			f.FailWrites(enospc)
			waitFor(time.Duration(1+rng.IntN(100))*time.Millisecond, func() bool { return h.failed.Load() > failed+int64(rng.IntN(5)) })
			pause(30)
			off()
		case a < 55: // fsyncs fail
			on()
			f.FailSyncs(eio)
			waitFor(time.Duration(1+rng.IntN(100))*time.Millisecond, func() bool { return h.s.Err() != nil })
			pause(30)
			off()
		case a < 75: // a hung disk, which may then fail
			on()
			resume := f.Stall()
			pause(40)
			switch rng.IntN(3) {
			case 0:
				f.FailWrites(enospc)
			case 1:
				f.FailSyncs(eio)
			}
			resume()
			pause(20)
			off()
		case a < 85: // flapping
			on()
			for range 1 + rng.IntN(6) {
				switch rng.IntN(4) {
				case 0:
					f.FailWrites(enospc)
				case 1:
					f.FailSyncs(eio)
				case 2:
					f.Clear()
				case 3:
					resume := f.Stall()
					pause(3)
					resume()
				}
				pause(5)
			}
			off()
		case a < 88 && os.Getenv("KV_STRESS_SEL") != "": // one kind of I/O fails
			on()
			h.sel.Store(int32(1 + rng.IntN(selModes-1)))
			waitFor(time.Duration(1+rng.IntN(200))*time.Millisecond, func() bool { return h.s.Err() != nil })
			pause(30)
			off()
		case a < 92: // a fault right as a recovery may be running
			on()
			f.FailWrites(enospc)
			waitFor(50*time.Millisecond, func() bool { return h.s.Err() != nil })
			off()
			r := h.s.retries.Load()
			waitFor(200*time.Millisecond, func() bool { return h.s.retries.Load() > r })
			on()
			if rng.IntN(2) == 0 {
				f.FailSyncs(eio)
			} else {
				f.FailWrites(enospc)
			}
			pause(5)
			off()
		default: // nothing
		}
	}
}

// run is one writer's loop, until stop.
func (w *stressWriter) run(stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		w.step()
		if w.h.t.Failed() {
			return
		}
	}
}

func (w *stressWriter) smallSize() int {
	switch r := w.rng.IntN(100); {
	case r < 50:
		return 1 + w.rng.IntN(16)
	case r < 90:
		return 17 + w.rng.IntN(1008)
	default:
		return 1024 + w.rng.IntN(63<<10)
	}
}

func (w *stressWriter) newOp(kind opKind, bucket string) *sop {
	w.nextOp++
	return &sop{id: w.nextOp, kind: kind, bucket: bucket}
}

func (w *stressWriter) addPut(o *sop, key string, size int) {
	v := vspec{w: uint16(w.id), op: o.id, idx: uint32(len(o.keys)), size: uint32(size)}
	o.keys = append(o.keys, key)
	o.vals = append(o.vals, v)
	o.dels = append(o.dels, false)
	o.bytes += size + len(key)
}

func (w *stressWriter) addDel(o *sop, key string) {
	o.keys = append(o.keys, key)
	o.vals = append(o.vals, vspec{})
	o.dels = append(o.dels, true)
	o.bytes += len(key)
}

func (w *stressWriter) totalBytes() int64 {
	var n int64
	for _, b := range w.model {
		n += b.bytes
	}
	return n
}

func (w *stressWriter) bucket() string { return w.buckets[w.rng.IntN(len(w.buckets))] }

// genApply makes an Apply of a random kind.
func (w *stressWriter) genApply(bucket string) *sop {
	o := w.newOp(kApply, bucket)
	m := w.model[bucket]
	switch r := w.rng.IntN(100); {
	case r < 40: // one small put
		w.addPut(o, fmt.Sprintf("s%d", w.rng.IntN(300)), w.smallSize())
	case r < 55: // one delete, of a key that is there if any
		key := fmt.Sprintf("s%d", w.rng.IntN(300))
		if len(m.pairs) > 0 && w.rng.IntN(2) == 0 {
			for k := range m.pairs {
				key = k
				break
			}
		}
		w.addDel(o, key)
	case r < 85: // a batch
		var n int
		switch q := w.rng.IntN(100); {
		case q < 70:
			n = 2 + w.rng.IntN(49)
		case q < 90:
			n = 51 + w.rng.IntN(1950)
		default:
			n = 2001 + w.rng.IntN(18000)
		}
		start := w.rng.IntN(25000)
		seq := w.rng.IntN(2) == 0
		for i := range n {
			var key string
			if seq {
				key = fmt.Sprintf("k%05d", (start+i)%25000)
			} else {
				key = fmt.Sprintf("k%05d", w.rng.IntN(25000)) // duplicates possible
			}
			if w.rng.IntN(100) < 15 {
				w.addDel(o, key)
				continue
			}
			size := 1 + w.rng.IntN(64)
			if n <= 2000 && w.rng.IntN(10) == 0 {
				size = w.smallSize()
				if size > 4096 {
					size = 4096
				}
			}
			w.addPut(o, key, size)
		}
	default: // a big value
		size := w.smallSize()
		if w.totalBytes() < 12<<20 {
			// log-uniform 64 KiB .. 3 MiB
			lo, hi := 16.0, 21.585 // log2
			size = int(math.Exp2(lo + w.rng.Float64()*(hi-lo)))
			size = min(size, 3<<20)
		}
		w.addPut(o, fmt.Sprintf("big%d", w.rng.IntN(4)), size)
		if w.rng.IntN(3) == 0 {
			w.addPut(o, fmt.Sprintf("s%d", w.rng.IntN(300)), w.smallSize())
		}
	}
	return o
}

func (w *stressWriter) record(o *sop) *oprec {
	rec := &oprec{kind: o.kind, bucket: o.bucket, to: o.to, desc: o.String(), outcome: "pending", start: time.Now(), faultsAt: w.h.faults.Load()}
	w.log[o.id] = rec
	for _, k := range o.keys {
		hk := o.bucket + "\x00" + k
		hist := append(w.keyHist[hk], o.id)
		if len(hist) > 6 {
			hist = hist[len(hist)-6:]
		}
		w.keyHist[hk] = hist
	}
	for k := range o.pairs {
		hk := o.to + "\x00" + k
		hist := append(w.keyHist[hk], o.id)
		if len(hist) > 6 {
			hist = hist[len(hist)-6:]
		}
		w.keyHist[hk] = hist
	}
	return rec
}

// outcome records how o ended and, if acknowledged, applies it to the model.
func (w *stressWriter) outcome(o *sop, rec *oprec, err error) {
	rec.end = time.Now()
	w.h.ops.Add(1)
	if err != nil {
		rec.outcome = "fail: " + err.Error()
		w.h.failed.Add(1)
		if !errors.Is(err, ErrWriteFailed) {
			w.h.t.Errorf("seed %d policy %s: writer %d: %s: an error that does not wrap ErrWriteFailed: %v", w.h.seed, w.h.policy, w.id, o, err)
		}
		w.h.poke()
		return
	}
	rec.outcome = "ok"
	w.h.acked.Add(1)
	w.h.changes.Add(int64(len(o.keys) + len(o.pairs)))
	w.h.poke()
	switch o.kind {
	case kApply, kApplyPairs:
		m := w.model[o.bucket]
		if o.kind == kApply {
			m.exists = true
		}
		for i, k := range o.keys {
			if o.dels[i] {
				m.del(k)
			} else {
				m.set(k, o.vals[i])
			}
		}
	case kCreate:
		w.model[o.bucket].exists = true
	case kDrop:
		w.model[o.bucket].clear()
	case kMove:
		w.model[o.bucket].clear()
		to := w.model[o.to]
		to.clear()
		to.exists = true
		for k, v := range o.pairs {
			to.set(k, v)
		}
	}
}

func (w *stressWriter) call(o *sop, f func() error) {
	rec := w.record(o)
	err := timed(w.slot, rec.desc, f)
	w.outcome(o, rec, err)
}

func (w *stressWriter) step() {
	switch r := w.rng.IntN(100); {
	case r < 45: // Apply
		o := w.genApply(w.bucket())
		o.via = "Apply"
		ops := o.ops()
		w.call(o, func() error { return w.h.s.Apply(o.bucket, ops...) })
	case r < 60: // ApplyNoWait, Wait
		o := w.genApply(w.bucket())
		o.via = "ApplyNoWait+Wait"
		ops := o.ops()
		w.call(o, func() error {
			wt, err := w.h.s.ApplyNoWait(o.bucket, ops...)
			if err != nil {
				return err
			}
			if w.rng.IntN(4) == 0 {
				time.Sleep(time.Duration(w.rng.IntN(2000)) * time.Microsecond)
			}
			return wt.Wait()
		})
	case r < 70: // a pipeline: several ApplyNoWait, then their Waits in order
		n := 2 + w.rng.IntN(4)
		type pend struct {
			o   *sop
			rec *oprec
			wt  Waiter
			err error
		}
		var ps []pend
		for range n {
			o := w.genApply(w.bucket())
			o.via = "pipelined ApplyNoWait"
			ops := o.ops()
			rec := w.record(o)
			wt, err := timed(w.slot, rec.desc, func() waiterErr {
				wt, err := w.h.s.ApplyNoWait(o.bucket, ops...)
				return waiterErr{wt, err}
			}).unpack()
			ps = append(ps, pend{o, rec, wt, err})
		}
		for _, p := range ps {
			err := p.err
			if err == nil {
				err = timed(w.slot, p.rec.desc+" Wait", p.wt.Wait)
			}
			w.outcome(p.o, p.rec, err)
		}
	case r < 76: // ApplyPairsNoWait, to a bucket known to exist
		b := w.bucket()
		o := w.genApply(b)
		if w.model[b].exists {
			o.kind = kApplyPairs
			o.via = "ApplyPairsNoWait+Wait"
			ops := o.ops()
			w.call(o, func() error {
				wt, err := w.h.s.ApplyPairsNoWait(o.bucket, ops...)
				if err != nil {
					return err
				}
				return wt.Wait()
			})
		} else {
			o.via = "Apply"
			ops := o.ops()
			w.call(o, func() error { return w.h.s.Apply(o.bucket, ops...) })
		}
	case r < 84:
		o := w.newOp(kCreate, w.bucket())
		o.via = "CreateBucket"
		w.call(o, func() error { return w.h.s.CreateBucket(o.bucket) })
	case r < 91:
		o := w.newOp(kDrop, w.bucket())
		o.via = "DropBucket"
		w.call(o, func() error { return w.h.s.DropBucket(o.bucket) })
	default: // Move, with the pairs the model says from holds
		from, to := w.bucket(), w.bucket()
		m := w.model[from]
		if m.bytes > 8<<20 || len(m.pairs) > 25000 {
			o := w.newOp(kDrop, from)
			o.via = "DropBucket"
			w.call(o, func() error { return w.h.s.DropBucket(o.bucket) })
			return
		}
		o := w.newOp(kMove, from)
		o.to = to
		o.via = "Move+Wait"
		o.pairs = make(map[string]vspec, len(m.pairs))
		for k, v := range m.pairs {
			o.pairs[k] = v
			o.bytes += int(v.size)
		}
		pairs := o.movePairs()
		w.call(o, func() error {
			wt, err := w.h.s.Move(o.bucket, o.to, pairs)
			if err != nil {
				return err
			}
			return wt.Wait()
		})
	}
}

// check compares the store's content with the model.
func (h *stressHarness) check(s *Store, phase string) bool {
	t := h.t
	h.checks++
	got := map[string]map[string][]byte{}
	err := timed(h.main, "LoadAll "+phase, func() error {
		return s.LoadAll(func(name string, pairs map[string][]byte) error {
			if _, dup := got[name]; dup {
				return fmt.Errorf("bucket %q emitted twice", name)
			}
			got[name] = pairs
			return nil
		})
	})
	if err != nil {
		t.Errorf("seed %d policy %s: %s: LoadAll: %v", h.seed, h.policy, phase, err)
		return false
	}
	want := map[string]*bmodel{}
	owner := map[string]*stressWriter{}
	if h.probeModel.exists {
		want["probe"] = h.probeModel
	}
	for _, w := range h.writers {
		for name, m := range w.model {
			owner[name] = w
			if m.exists {
				want[name] = m
			}
		}
	}
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 30 {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else if len(problems) == 30 {
			problems = append(problems, "... (more)")
		}
	}
	history := func(bucket, key string) string {
		w := owner[bucket]
		if w == nil {
			return ""
		}
		var sb strings.Builder
		for _, id := range w.keyHist[bucket+"\x00"+key] {
			if rec := w.log[id]; rec != nil {
				fmt.Fprintf(&sb, "\n        %s: %s [%s..%s, faults injected before: %d]", rec.desc, trunc(rec.outcome, 300),
					rec.start.Format("15:04:05.000000"), rec.end.Format("15:04:05.000000"), rec.faultsAt)
			}
		}
		return sb.String()
	}
	bucketOps := func(bucket string) string {
		w := owner[bucket]
		if w == nil {
			return ""
		}
		var ids []int
		for id, rec := range w.log {
			if (rec.bucket == bucket || rec.to == bucket) && rec.kind != kApplyPairs {
				ids = append(ids, int(id))
			}
		}
		sort.Ints(ids)
		if len(ids) > 8 {
			ids = ids[len(ids)-8:]
		}
		var sb strings.Builder
		for _, id := range ids {
			rec := w.log[uint32(id)]
			fmt.Fprintf(&sb, "\n        %s: %s", rec.desc, trunc(rec.outcome, 200))
		}
		return sb.String()
	}
	var buf []byte
	for name, m := range want {
		g, ok := got[name]
		if !ok {
			report("bucket %s: missing (the model has it with %d pairs); bucket-level ops:%s", name, len(m.pairs), bucketOps(name))
			continue
		}
		for k, v := range m.pairs {
			gv, ok := g[k]
			if !ok {
				report("bucket %s key %s: missing, want the value of w%d op %d item %d (%d bytes); history:%s", name, k, v.w, v.op, v.idx, v.size, history(name, k))
				continue
			}
			buf = v.bytes(buf)
			if !bytes.Equal(gv, buf) {
				report("bucket %s key %s: got %d bytes from %s, want w%d op %d item %d (%d bytes); history:%s",
					name, k, len(gv), parseHeader(gv), v.w, v.op, v.idx, v.size, history(name, k))
			}
		}
		for k, gv := range g {
			if _, ok := m.pairs[k]; !ok {
				report("bucket %s key %s: present (%d bytes from %s) but the model has no such key; history:%s",
					name, k, len(gv), parseHeader(gv), history(name, k))
			}
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok {
			report("bucket %s: present with %d pairs, but the model says it does not exist; bucket-level ops:%s", name, len(g), bucketOps(name))
		}
	}
	if len(problems) > 0 {
		t.Errorf("seed %d policy %s: %s: %d+ mismatches between the store and the acknowledged writes:\n  %s\nreproduce: KV_STRESS_SEED=%d KV_STRESS_POLICY=%s go test -race -count=1 -run TestStressFence -v -timeout 0 ./internal/store\nstore logs (tail):\n%s",
			h.seed, h.policy, phase, len(problems), strings.Join(problems, "\n  "), h.seed, h.policy, tail(h.logs.String(), 8000))
		return false
	}
	return true
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
