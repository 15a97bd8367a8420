package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kvproject/kv/internal/store"
	"github.com/kvproject/kv/services"
	"github.com/kvproject/kv/services/httpapi"
	"github.com/kvproject/kv/services/metrics"
	"github.com/kvproject/kv/services/resp"
	"github.com/kvproject/kv/services/text"
)

// version is kv's version, printed by --version and reported by INFO.
const version = "0.3.0-dev"

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1 // the tree failed, or did not stop in time
	exitUsage    = 2 // bad flags or variables
	exitRefused  = 3 // a configuration kv refuses to run with
	exitNoListen = 4 // the listener could not be opened
	exitLocked   = 5 // the data directory is used by another kv
	exitStorage  = 6 // the data directory cannot be opened or is damaged
)

// defaultDataDir is where kv keeps its data unless told otherwise.
const defaultDataDir = "./kv-data"

// options is the daemon's configuration, filled from flags, then KV_*
// variables, then defaults.
type options struct {
	respAddr        string
	textAddr        string
	httpAddr        string
	maxLineBytes    int
	maxBodyBytes    int64
	password        string
	passwordFile    string
	logFormat       string
	logLevel        string
	inMemory        bool
	dataDir         string
	fsync           string
	maxClients      int
	textMaxClients  int
	httpMaxConns    int
	maxRequestBytes int
	maxReplyBytes   int
	maxBulkLen      int
	maxArgs         int
	idleTimeout     time.Duration
	slowerThan      time.Duration
	slowlogMaxLen   int
	shutdownTimeout time.Duration
	keepCheckpoints int
	unloadIdle      time.Duration
	enableDebug     bool
	goroutines      bool
	// open opens the data directory: store.Open, or in tests one that
	// takes its time.
	open func(dir string, o store.Options) (*store.Store, error)
	// storeMaxFiles is the files the store may keep open (0: pebble's
	// default), set by serve to fit the open-file limit.
	storeMaxFiles int
	// maxClientsCeiling is what CONFIG SET maxclients may set (0: no
	// limit known): see fitOpenFiles.
	maxClientsCeiling int
	// warnings are what parse found odd but not wrong: run logs them, in
	// the format and at the level the flags asked for.
	warnings []string
}

// envName is the variable of a flag: --resp-addr is KV_RESP_ADDR.
func envName(flagName string) string {
	return "KV_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet declares every flag into o.
func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.respAddr, "resp-addr", resp.DefaultAddr, "`address` of the Redis protocol listener (a non-loopback address needs a password)")
	fs.StringVar(&o.textAddr, "text-addr", "", "`address` of the guide's line protocol listener, off when empty (the guide used :4040, every interface; kv needs a password for that, or 127.0.0.1:4040)")
	fs.StringVar(&o.httpAddr, "http-addr", "", "`address` of the HTTP API, events and metrics listener, off when empty (e.g. 127.0.0.1:8080)")
	bytesVar(fs, &o.maxLineBytes, "text-max-line-bytes", 64<<10, "longest line of the line protocol in `bytes`; a longer one gets ERROR")
	bytesVar(fs, &o.maxBodyBytes, "http-max-body-bytes", 1<<20, "largest HTTP request body in `bytes`; a larger one gets 413")
	fs.StringVar(&o.password, "password", "", "`password` clients must give (Redis AUTH, the line protocol's AUTH, HTTP Bearer); prefer --password-file or the variable")
	fs.StringVar(&o.passwordFile, "password-file", "", "`file` holding the password (one line)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format` on stderr: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.BoolVar(&o.inMemory, "in-memory", false, "keep data in memory only: nothing is written to disk and a restart or a bucket's crash loses its data")
	fs.StringVar(&o.dataDir, "data-dir", defaultDataDir, "`directory` of the durable store (created if needed; locked while kv runs)")
	fs.StringVar(&o.fsync, "fsync", "everysec", "when writes reach the disk, as Redis's appendfsync: `policy` always (before the reply), everysec (within a second) or no (when the OS likes)")
	countVar(fs, &o.maxClients, "max-clients", 10000, "most Redis-protocol clients connected at once")
	countVar(fs, &o.textMaxClients, "text-max-clients", text.DefaultMaxConns, "most line-protocol clients connected at once; one more gets ERROR and is closed")
	countVar(fs, &o.httpMaxConns, "http-max-conns", httpapi.DefaultMaxConns, "most HTTP connections open at once; more wait to be accepted")
	bytesVar(fs, &o.maxRequestBytes, "max-request-bytes", 64<<20, "most `bytes` of one request in transit (past it the client is disconnected), of a transaction's queued commands, and of the names a client watches or subscribes to")
	bytesVar(fs, &o.maxReplyBytes, "max-reply-bytes", 64<<20, "most `bytes` of replies kept for a Redis client that does not read them yet (past it, its requests wait), and of what a short command may build from repeats (HRANDFIELD, HMGET, COMMAND INFO) or a transaction's replies")
	bytesVar(fs, &o.maxBulkLen, "max-bulk-len", 16<<20, "longest argument in `bytes`; a longer one gets an error reply")
	countVar(fs, &o.maxArgs, "max-args", 1<<20, "most arguments in one command; more gets an error reply")
	durationVar(fs, &o.idleTimeout, "idle-timeout", 5*time.Minute, "close Redis-protocol and line-protocol clients idle this long, a `duration` with its unit such as 300s (0: never; subscribers are exempt)")
	durationVar(fs, &o.slowerThan, "slowlog-slower-than", 10*time.Millisecond, "keep in the slow log (SLOWLOG GET) the Redis-protocol commands that run this long, a `duration` with its unit such as 10ms, rounded up to whole microseconds (0: every command; negative: none)")
	countVar(fs, &o.slowlogMaxLen, "slowlog-max-len", 128, "most commands the slow log keeps, the oldest dropped first (0: none)")
	durationVar(fs, &o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "bound on a clean stop after SIGINT/SIGTERM, a `duration` with its unit such as 15s")
	durationVar(fs, &o.unloadIdle, "unload-idle", 0, "take out of memory a bucket unused for at least this long (at most about twice that), a `duration` with its unit such as 10m: its data stays on disk and its next use loads it back (0: never)")
	countVar(fs, &o.keepCheckpoints, "keep-checkpoints", 0, "`number` of checkpoints (SAVE, BGSAVE, POST /v1/save) kept in <data-dir>/checkpoints: after each, the oldest beyond it are deleted (0: keep all)")
	fs.BoolVar(&o.goroutines, "resp-goroutine-per-client", false, "serve each Redis protocol client on a goroutine of its own rather than on the event loop (as kv does off Linux, and in memory with GOMAXPROCS=1)")
	fs.BoolVar(&o.enableDebug, "enable-debug-command", false, "allow DEBUG CRASH-BUCKET <key> (for demonstrations and tests)")
	return fs
}

// durationValue is a time.Duration flag whose error says what is wrong.
// The flag package's own says only "parse error", and a Redis user who
// gives --idle-timeout 300 (Redis's timeout is in seconds) must learn
// that the unit is missing.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration: give a number with its unit, such as 300s, 1.5m or 10ms")
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }

// durationVar declares a duration flag as fs.DurationVar does, with
// durationValue's errors.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var((*durationValue)(p), name, usage)
}

// intValue is an integer flag whose error says what is wrong: the flag
// package's own says only "parse error", and a user who gives
// --max-request-bytes 64MiB (or Redis's 64mb), or --max-clients 10k, must
// learn that kv takes a plain number. It reads the number as the flag
// package's integer flags do (0x, 0o, 0b prefixes and underscores
// allowed).
type intValue[T int | int64] struct {
	p   *T
	bad string // the error for a value that is not a plain number
}

func (v intValue[T]) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if err == nil && int64(T(n)) != n {
		err = strconv.ErrRange
	}
	switch {
	case errors.Is(err, strconv.ErrRange):
		return errors.New("value out of range")
	case err != nil:
		return errors.New(v.bad)
	}
	*v.p = T(n)
	return nil
}

func (v intValue[T]) String() string {
	if v.p == nil { // the flag package's zero value, for its defaults
		return "0"
	}
	return strconv.FormatInt(int64(*v.p), 10)
}

// typeName is the name of the flag's value in the help when its usage
// names none, where the flag package would say "value" for a type of
// its own: int, as for its integer flags.
func (intValue[T]) typeName() string { return "int" }

// bytesVar declares a flag counting bytes as fs.IntVar does, with
// intValue's errors.
func bytesVar[T int | int64](fs *flag.FlagSet, p *T, name string, value T, usage string) {
	*p = value
	fs.Var(intValue[T]{p, "not a number of bytes: give it without a unit, such as 67108864 for 64 MiB"}, name, usage)
}

// countVar declares a flag counting clients, arguments or checkpoints as
// fs.IntVar does, with intValue's errors.
func countVar(fs *flag.FlagSet, p *int, name string, value int, usage string) {
	*p = value
	fs.Var(intValue[int]{p, "not a whole number: give digits only, such as 10000"}, name, usage)
}

// usage prints the help: every flag with its variable and default.
func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "kv %s: a key-value daemon speaking the Redis protocol\n\n", version)
	fmt.Fprintf(w, "Usage: kv [flags]\n\nEvery flag may also be set by its variable; a flag wins over the variable.\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "version" {
			return
		}
		name, help := flag.UnquoteUsage(f)
		if t, ok := f.Value.(interface{ typeName() string }); ok && name == "value" {
			name = t.typeName()
		}
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s\n      env %s, default %q\n", line, help, envName(f.Name), f.DefValue)
	})
	fmt.Fprintf(w, "  --version\n      print the version and exit\n")
	fmt.Fprintf(w, "  kv check DIR\n      verify a data directory offline and exit\n")
	fmt.Fprintf(w, "\nExit codes: 0 clean stop, 1 failure, 2 usage, 3 refused configuration, 4 cannot listen,\n5 data directory in use, 6 data directory unreadable or damaged.\n")
}

// parse fills o from args, then env, then defaults. It returns done when
// the caller should exit with code (help, version, or an error).
func parse(args, env []string, stdout, stderr io.Writer) (o options, code int, done bool) {
	fs := newFlagSet(&o, stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {} // the flag package calls it for --help too: see below
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, stdout)
			return o, exitOK, true
		}
		fmt.Fprintln(stderr, "Run kv --help for the flags.")
		return o, exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kv: unexpected argument %q (kv takes flags only; see kv --help)\n", fs.Arg(0))
		return o, exitUsage, true
	}
	if *showVersion {
		fmt.Fprintf(stdout, "kv %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return o, exitOK, true
	}
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fromEnv := map[string]bool{}
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "version" || bad != nil {
			return
		}
		if v, ok := vars[envName(f.Name)]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				bad = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
					bad = fmt.Errorf("%w (use true or false, 1 or 0)", bad)
				}
				return
			}
			fromEnv[f.Name] = true
		}
	})
	if bad != nil {
		fmt.Fprintf(stderr, "kv: invalid environment variable %v\n", bad)
		return o, exitUsage, true
	}
	if o.password != "" && o.passwordFile != "" {
		// One source of the password: a flag wins over a variable, as
		// everywhere; two of the same kind are a mistake.
		switch {
		case set["password"] && !set["password-file"]:
			o.passwordFile = ""
		case set["password-file"] && !set["password"]:
			o.password = ""
		default:
			fmt.Fprintf(stderr, "kv: give the password once: --password (KV_PASSWORD) or --password-file (KV_PASSWORD_FILE), not both\n")
			return o, exitUsage, true
		}
	}
	for _, a := range []struct {
		flag, addr string
		optional   bool // empty turns the listener off
	}{{"resp-addr", o.respAddr, false}, {"text-addr", o.textAddr, true}, {"http-addr", o.httpAddr, true}} {
		if a.addr == "" && a.optional {
			continue
		}
		if err := checkAddr(a.addr); err != nil {
			fmt.Fprintf(stderr, "kv: --%s (%s) %q: %v; give host:port, for example 127.0.0.1:%s\n", a.flag, envName(a.flag), a.addr, err, defaultPort(a.flag))
			return o, exitUsage, true
		}
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		fmt.Fprintf(stderr, "kv: --log-format must be text or json, not %q\n", o.logFormat)
		return o, exitUsage, true
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "kv: --log-level must be debug, info, warn or error, not %q\n", o.logLevel)
		return o, exitUsage, true
	}
	if _, err := store.ParseFsync(o.fsync); err != nil {
		fmt.Fprintf(stderr, "kv: --fsync must be always, everysec or no, not %q\n", o.fsync)
		return o, exitUsage, true
	}
	if given := func(n string) bool { return set[n] || fromEnv[n] }; o.inMemory && (given("data-dir") || given("fsync") || given("keep-checkpoints") || given("unload-idle")) {
		o.warnings = append(o.warnings, "kv: --in-memory writes nothing to disk; --data-dir, --fsync, --keep-checkpoints and --unload-idle are ignored")
	}
	if !o.inMemory && o.dataDir == "" {
		fmt.Fprintf(stderr, "kv: --data-dir is empty (give a directory, or --in-memory)\n")
		return o, exitUsage, true
	}
	for _, l := range []struct {
		flag string
		bad  bool
	}{
		{"max-clients", o.maxClients < 1}, {"text-max-clients", o.textMaxClients < 1}, {"http-max-conns", o.httpMaxConns < 1},
		{"max-request-bytes", o.maxRequestBytes < 1}, {"max-reply-bytes", o.maxReplyBytes < 1}, {"text-max-line-bytes", o.maxLineBytes < 1}, {"http-max-body-bytes", o.maxBodyBytes < 1},
		{"max-bulk-len", o.maxBulkLen < 1}, {"max-args", o.maxArgs < 1}, {"idle-timeout", o.idleTimeout < 0}, {"shutdown-timeout", o.shutdownTimeout <= 0},
		{"keep-checkpoints", o.keepCheckpoints < 0}, {"slowlog-max-len", o.slowlogMaxLen < 0}, {"unload-idle", o.unloadIdle < 0},
	} {
		if l.bad {
			hint := ""
			switch l.flag {
			case "idle-timeout":
				hint = " (0 disables it)"
			case "keep-checkpoints":
				hint = " (0 keeps all)"
			case "slowlog-max-len":
				hint = " (0 keeps none)"
			case "unload-idle":
				hint = " (0 keeps every bucket in memory)"
			}
			fmt.Fprintf(stderr, "kv: limits must be positive: --%s (%s) is %s%s\n", l.flag, envName(l.flag), fs.Lookup(l.flag).Value, hint)
			return o, exitUsage, true
		}
	}
	return o, exitOK, false
}

// checkAddr reports what makes addr something kv cannot listen on as
// written: no port ("127.0.0.1", which the protected mode would otherwise
// take for a non-loopback host; or "127.0.0.1:", which Go would listen on
// at a random port), a port out of range or unknown, or no
// address at all (Go would listen on every interface, on a random port).
func checkAddr(addr string) error {
	if addr == "" {
		return errors.New("the address is empty (the Redis protocol listener cannot be turned off)")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "" {
		// "127.0.0.1:" (a $PORT left unset): Go would read it as port 0
		// and listen on a random port no client knows. ":0" says so.
		return errors.New("the port is empty")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return err
	}
	return nil
}

// defaultPort is the port of a listener's example address in errors.
func defaultPort(flagName string) string {
	addr := resp.DefaultAddr
	switch flagName {
	case "text-addr":
		addr = text.DefaultAddr
	case "http-addr":
		addr = httpapi.DefaultAddr
	}
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// newLogger builds the daemon's slog logger on stderr.
func newLogger(o options, stderr io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.logLevel)) // checked by parse
	hopts := &slog.HandlerOptions{Level: lvl}
	if o.logFormat == "json" {
		hopts.ReplaceAttr = durationText
		return slog.New(slog.NewJSONHandler(stderr, hopts))
	}
	return slog.New(slog.NewTextHandler(stderr, hopts))
}

// durationText writes a duration as the text handler does ("1.5s"),
// where the JSON handler writes a bare number of nanoseconds, whose unit
// a reader of the log cannot tell.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// stopBudgets splits --shutdown-timeout: a stop fits in it (the root takes
// up to FrontEndStopTimeout + 2 x StopTimeout + 1 s): half of it for the
// front ends to finish the commands in flight (frontEnd; clients, their own
// bound on the clients, is inside it), the rest for the buckets and the
// registry (core). Each is positive: the services read 0 as their default,
// which a tiny timeout must not become.
func stopBudgets(total time.Duration) (frontEnd, clients, core time.Duration) {
	frontEnd = max(total/2, time.Nanosecond)
	clients = max(frontEnd-frontEnd/5, time.Nanosecond) // four fifths, without overflow for the longest timeouts
	core = max((total-frontEnd-time.Second)/2, 250*time.Millisecond)
	return frontEnd, clients, core
}

// isLoopback reports whether addr's host only reaches this machine.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// boundToLoopback reports whether ln listens on a loopback address: what
// a name resolved to, where isLoopback judges the name.
func boundToLoopback(ln net.Listener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// minDurableProcs is the fewest Ps (GOMAXPROCS) the durable store runs
// well with. A fsync is a blocking system call: the goroutine that makes
// it keeps its P until the runtime's monitor takes it back, which takes
// from 20 µs to 10 ms; with one P, every connection waits that long at each
// sync. Measured with bench/vs-redis.sh, kv and Redis pinned to one core:
// HSET with --fsync always ran at 8.7k req/s with one P and 42k with two on
// that same core.
const minDurableProcs = 2

// durableProcs returns the GOMAXPROCS the daemon sets, or 0 to keep Go's
// choice (procs): minDurableProcs when the store is durable and Go chose
// fewer, unless env sets GOMAXPROCS to a value the runtime takes (as it
// does: the first GOMAXPROCS entry, a positive integer), whose choice
// stands. Go chooses 1 on a machine, or under a CPU affinity (taskset, a
// cpuset), of one CPU; not under a CPU quota below 2, which it rounds up
// to 2.
func durableProcs(durable bool, env []string, procs int) int {
	if !durable || procs >= minDurableProcs {
		return 0
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok {
			if n, err := strconv.ParseInt(v, 10, 32); err == nil && n > 0 {
				return 0
			}
			break
		}
	}
	return minDurableProcs
}

// goroutinePerClient reports whether the Redis protocol server serves
// each client on a goroutine of its own rather than on its event loop:
// when --resp-goroutine-per-client says so, and in memory with one P
// (procs). The event loop's gain is that a request wakes no second
// thread on the clients' core; with one P there is none to wake, and
// there, pinned to one core (bench/vs-redis.sh PIN=1), a goroutine per
// client served 1.02-1.13x of Redis's unpipelined requests where the loop
// served 0.88-0.90x (0.97x with two Ps). The durable store keeps the loop,
// which served more there in every figure; kv gives it two Ps (see
// durableProcs) unless the user's GOMAXPROCS says otherwise. Decided once,
// at start, as GOMAXPROCS is.
func goroutinePerClient(o options, procs int) bool {
	return o.goroutines || o.inMemory && procs == 1
}

// repeatedSignal is how soon after the first a signal is the same stop,
// not a second one that exits at once: GNU timeout, and other tools that
// signal a process and then its group, deliver one stop twice within
// microseconds; a person asking again takes longer.
const repeatedSignal = 100 * time.Millisecond

// run is the daemon: it parses its configuration, serves until SIGINT or
// SIGTERM, stops cleanly and returns the exit code. A second signal exits
// at once. setProcs, when not nil, is runtime.GOMAXPROCS: run raises the
// process's GOMAXPROCS with it for the durable store (see durableProcs);
// tests, which run the daemon inside the test binary, pass nil. Raised
// once at start: an explicit GOMAXPROCS also ends Go's own updates of it
// when the CPUs kv may use change.
func run(args, env []string, stdout, stderr io.Writer, setProcs func(int) int) int {
	if len(args) > 0 && args[0] == "check" {
		return check(args[1:], stdout, stderr)
	}
	o, code, done := parse(args, env, stdout, stderr)
	if done {
		return code
	}
	log := newLogger(o, stderr)
	for _, w := range o.warnings {
		log.Warn(w)
	}
	if setProcs != nil {
		if n := durableProcs(!o.inMemory, env, setProcs(0)); n > 0 {
			was := setProcs(n)
			log.Info("raised GOMAXPROCS for the durable store: a write's fsync would hold the only P",
				"gomaxprocs", n, "was", was)
		}
	}
	// One channel hears every signal from the start, so that a second
	// signal is never missed, however soon it follows the first.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// As Redis does: a daemon started from a terminal outlives it (Go's
	// default for SIGHUP is to exit at once, without a clean stop).
	signal.Ignore(syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		var first time.Time
		select {
		case sig := <-sigs:
			first = time.Now()
			log.Info("signal received: stopping cleanly (a second signal exits at once)", "signal", sig.String())
			cancel()
		case <-finished:
			return
		}
		for {
			select {
			case sig := <-sigs:
				if time.Since(first) < repeatedSignal {
					log.Info("signal repeated at once: the same stop", "signal", sig.String())
					continue
				}
				log.Error("second signal: exiting at once", "signal", sig.String())
				os.Exit(exitFailed)
			case <-finished:
				return
			}
		}
	}()
	errOut := stderr
	if o.logFormat == "json" {
		errOut = errorRecords{log}
	}
	return serve(ctx, o, log, errOut, nil)
}

// errorRecords is an io.Writer that logs each write as one error record:
// with --log-format json, the refusals that serve prints as text at start
// (a busy port, a data directory in use) reach a log pipeline as JSON,
// like every other line kv writes once its flags are read.
type errorRecords struct{ log *slog.Logger }

func (e errorRecords) Write(p []byte) (int, error) {
	e.log.Error(strings.TrimSpace(strings.TrimPrefix(string(p), "kv: ")))
	return len(p), nil
}

// listening is where the daemon's front ends listen; an address is nil
// when that front end is off.
type listening struct{ resp, text, http net.Addr }

// serve runs the tree and its front ends until ctx ends. ready, when not
// nil, is called with their addresses once they are serving.
func serve(ctx context.Context, o options, log *slog.Logger, stderr io.Writer, ready func(listening)) (code int) {
	var stopBegan time.Time // when the stop began: the data directory's close gets what is left
	password := o.password
	if o.passwordFile != "" {
		raw, err := os.ReadFile(o.passwordFile)
		if err != nil {
			fmt.Fprintf(stderr, "kv: reading the password file: %v\n", err)
			return exitRefused
		}
		// A leading byte order mark (Notepad writes one) is not part of
		// the password: kept, it made every client's AUTH fail.
		password = strings.TrimRight(strings.TrimPrefix(string(raw), "\ufeff"), "\r\n")
		if password == "" {
			fmt.Fprintf(stderr, "kv: the password file %s is empty\n", o.passwordFile)
			return exitRefused
		}
		if strings.ContainsAny(password, "\r\n") {
			// The file is one line; a second is a mistake (a comment, two
			// passwords), not part of the password.
			fmt.Fprintf(stderr, "kv: the password file %s has more than one line; it holds the password alone\n", o.passwordFile)
			return exitRefused
		}
	}
	refuse := func(flagName, addr string) int {
		fmt.Fprintf(stderr, "kv: refusing to listen on %s (%s) without a password: anyone who can reach it could read and delete every bucket.\n"+
			"Set --password-file, KV_PASSWORD or --password, or listen on loopback (for example %s 127.0.0.1:0).\n", addr, flagName, flagName)
		return exitRefused
	}
	if o.textAddr != "" {
		if err := text.CheckPassword(password); err != nil {
			fmt.Fprintf(stderr, "kv: cannot serve --text-addr %s: %v.\nChoose a password without white space, or leave --text-addr empty.\n", o.textAddr, err)
			return exitRefused
		}
	}
	if o.httpAddr != "" {
		if err := httpapi.CheckPassword(password); err != nil {
			fmt.Fprintf(stderr, "kv: cannot serve --http-addr %s: %v.\nChoose another password, or leave --http-addr empty.\n", o.httpAddr, err)
			return exitRefused
		}
	}
	addrs := []struct{ flag, addr string }{{"--resp-addr", o.respAddr}, {"--text-addr", o.textAddr}, {"--http-addr", o.httpAddr}}
	for _, a := range addrs {
		if a.addr != "" && !isLoopback(a.addr) && password == "" {
			return refuse(a.flag, a.addr)
		}
	}

	// The caps and the store's files must fit in the open-file limit.
	storeMax, warnings, err := fitOpenFiles(&o, openFileLimit())
	if err != nil {
		fmt.Fprintf(stderr, "kv: %v\n", err)
		return exitRefused
	}
	o.storeMaxFiles = storeMax
	for _, w := range warnings {
		log.Warn(w)
	}

	// A data directory that another kv holds is the clearer error when
	// both are true (a second kv with the defaults): said before the
	// ports are taken. Open's lock still decides (below).
	if !o.inMemory {
		if err := store.InUse(o.dataDir); err != nil {
			return dataDirInUse(stderr, o.dataDir, err)
		}
	}

	// Every listener is opened before the tree starts, so that a busy
	// port is a clear startup error.
	var lc net.ListenConfig
	listen := func(what, flagName, addr string) (net.Listener, int) {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			if ctx.Err() != nil {
				// A signal during start-up (it cancels a name's lookup):
				// a clean stop, not a busy port.
				return nil, exitOK
			}
			fmt.Fprintf(stderr, "kv: cannot listen for %s on %s: %v\n(%s)\n", what, addr, err, listenHint(err, flagName))
			return nil, exitNoListen
		}
		// A name such as localhost passed the check above; what it
		// resolved to must be loopback too.
		if password == "" && !boundToLoopback(ln) {
			ln.Close()
			return nil, refuse(flagName, fmt.Sprintf("%s (%s)", addr, ln.Addr()))
		}
		return ln, exitOK
	}
	var opened []net.Listener
	closeOpened := func() {
		for _, ln := range opened {
			ln.Close()
		}
	}
	ln, failed := listen("the Redis protocol", "--resp-addr", o.respAddr)
	if ln == nil {
		return failed
	}
	opened = append(opened, ln)
	var textLn, httpLn net.Listener
	if o.textAddr != "" {
		if textLn, failed = listen("the line protocol", "--text-addr", o.textAddr); textLn == nil {
			closeOpened()
			return failed
		}
		opened = append(opened, textLn)
	}
	if o.httpAddr != "" {
		if httpLn, failed = listen("HTTP", "--http-addr", o.httpAddr); httpLn == nil {
			closeOpened()
			return failed
		}
		opened = append(opened, httpLn)
	}

	// The store is opened after the listeners (a busy port creates no
	// data directory) and before the tree; it is closed after the tree has
	// stopped.
	var st *store.Store
	mode := "in-memory"
	if !o.inMemory {
		if st, failed = recoverStore(ctx, o, log, stderr); st == nil {
			closeOpened()
			return failed
		}
		defer func() {
			// What is left of the stop's budget, and at least a second.
			budget := o.shutdownTimeout
			if !stopBegan.IsZero() {
				budget = max(o.shutdownTimeout-time.Since(stopBegan), time.Second)
			}
			if err := closeWithin(st.Close, budget); err != nil {
				log.Error("kv: closing the data directory", "err", err)
				if code == exitOK {
					code = exitFailed // writes may be missing: say so
				}
			}
		}()
		mode = "durable"
	}
	frontEndStop, clientsStop, coreStop := stopBudgets(o.shutdownTimeout)
	cfg := services.Config{Logger: log, FrontEndStopTimeout: frontEndStop, StopTimeout: coreStop}
	var backups resp.Backups
	if st != nil {
		cfg.Store = st
		cfg.UnloadIdle = o.unloadIdle
		backups = newCheckpoints(st, log, o.keepCheckpoints)
	}
	root := services.New(cfg)
	// One set of metrics for every front end, served by the HTTP API.
	met := metrics.New(metrics.Config{Tree: root.Registry(), Events: root.Events(), Logger: log.With("service", "metrics")})
	var serving atomic.Bool
	// SHUTDOWN: a client's request to stop, which stops kv as a signal
	// does.
	ctx, shutdown := context.WithCancel(ctx)
	defer shutdown()
	srv := resp.New(resp.Config{
		Registry:           root.Registry(),
		Events:             root.Events(),
		Listener:           ln,
		Password:           password,
		Logger:             log.With("service", "resp"),
		Version:            version,
		MaxClients:         o.maxClients,
		MaxClientsCeiling:  o.maxClientsCeiling,
		MaxRequestBytes:    o.maxRequestBytes,
		MaxReplyBytes:      o.maxReplyBytes,
		MaxBulkLen:         o.maxBulkLen,
		MaxArgs:            o.maxArgs,
		IdleTimeout:        idle(o.idleTimeout),
		SlowlogSlowerThan:  slowerThan(o.slowerThan),
		SlowlogMaxLen:      slowlogMaxLen(o.slowlogMaxLen),
		EnableDebugCommand: o.enableDebug,
		GoroutinePerClient: goroutinePerClient(o, runtime.GOMAXPROCS(0)),
		Observer:           met,
		Backups:            backups,
		ShutdownTimeout:    clientsStop,
		Shutdown:           shutdown,
	})
	// The front ends come after the registry: one that fails is restarted
	// alone, without touching the buckets; at the stop they go first.
	root.Add(srv)
	if textLn != nil {
		root.Add(text.New(text.Config{
			Listener:        textLn,
			Registry:        root.Registry(),
			Password:        password,
			MaxLineBytes:    o.maxLineBytes,
			MaxConns:        o.textMaxClients,
			IdleTimeout:     idle(o.idleTimeout),
			ShutdownTimeout: clientsStop,
			Observer:        met,
			Logger:          log.With("service", "text"),
		}))
	}
	if httpLn != nil {
		root.Add(httpapi.New(httpapi.Config{
			Listener:        httpLn,
			Registry:        root.Registry(),
			Events:          root.Events(),
			Metrics:         met,
			Password:        password,
			MaxBodyBytes:    o.maxBodyBytes,
			MaxConns:        o.httpMaxConns,
			ShutdownTimeout: clientsStop,
			Ready: func() error {
				if !serving.Load() {
					return errors.New("kv is starting or stopping")
				}
				return nil
			},
			Save:   httpSave(backups),
			Logger: log.With("service", "http"),
		}))
	}

	treeCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Ready before the tree starts its front ends: the HTTP server, a
	// child of the tree, answers at once the requests that waited in its
	// backlog during the recovery, and /readyz must not tell them 503.
	serving.Store(true)
	errc := root.ServeBackground(treeCtx)
	log.Info("kv started", "version", version, "resp", ln.Addr().String(),
		"text", addrOf(textLn), "http", addrOf(httpLn), "mode", mode, "data_dir", dataDirOf(o), "fsync", fsyncOf(o),
		"auth", password != "", "debug_command", o.enableDebug)
	if ready != nil {
		l := listening{resp: ln.Addr()}
		if textLn != nil {
			l.text = textLn.Addr()
		}
		if httpLn != nil {
			l.http = httpLn.Addr()
		}
		ready(l)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		log.Error("kv: the supervision tree stopped on its own", "err", err)
		return exitFailed
	}
	serving.Store(false)
	log.Info("kv stopping: no new clients; finishing the commands in flight")
	begin := time.Now()
	stopBegan = begin
	// The root stops the front ends (added with root.Add) first: the
	// commands in flight finish against live buckets, and only then does
	// it stop the registry and the buckets.
	cancel()
	timer := time.NewTimer(o.shutdownTimeout)
	defer timer.Stop()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error("kv: the tree stopped with an error", "err", err)
			return exitFailed
		}
	case <-timer.C:
		log.Error("kv: did not stop in time", "waited", o.shutdownTimeout)
		return exitFailed
	}
	log.Info("kv stopped", "took", time.Since(begin).Round(time.Millisecond))
	return exitOK
}

// closeWithin runs close and waits for it at most d. A store stuck on a
// failing disk must not keep the process from exiting: what was
// acknowledged is on disk or in the OS already, and the next start
// recovers it from the log, as after a crash.
func closeWithin(close func() error, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("did not close within %v; leaving it to the next start's recovery", d)
	}
}

// addrOf is a listener's address for the logs, "off" when there is none.
func addrOf(ln net.Listener) string {
	if ln == nil {
		return "off"
	}
	return ln.Addr().String()
}

// slowerThan is --slowlog-slower-than as resp.Config has it: there 0
// means the default, and every command is slower than a nanosecond, which
// the server drops as a part of a microsecond. A positive threshold is
// rounded up to whole microseconds, the slow log's unit: 500ns is 1µs,
// not 0 (every command).
func slowerThan(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return time.Nanosecond
	case d > 0 && d%time.Microsecond != 0 && d < math.MaxInt64-time.Microsecond:
		return d - d%time.Microsecond + time.Microsecond
	}
	return d
}

// slowlogMaxLen is --slowlog-max-len as resp.Config has it: there 0
// means the default, and negative none.
func slowlogMaxLen(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// idle maps the flag's 0 (never) to the server's "disabled".
func idle(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// listenHint is what to do about a listener that failed: a name that
// does not resolve is not a busy port.
func listenHint(err error, flagName string) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "is the host name right? give an address, or a name this machine resolves, with " + flagName
	}
	return "is another program using it? choose another with " + flagName
}

// dataDirInUse reports that another kv holds dir, and returns the exit
// code that says so.
func dataDirInUse(stderr io.Writer, dir string, err error) int {
	fmt.Fprintf(stderr, "kv: the data directory %s is in use by another kv (%v)\n"+
		"Stop that kv, or give this one another --data-dir.\n", dir, err)
	return exitLocked
}

// recoverStore is openStore, stopped by ctx: a signal during a long
// recovery (millions of keys take seconds) ends the start within
// --shutdown-timeout rather than after the recovery and a start of the
// tree. If the recovery finishes within the budget, the store is closed
// and the stop is clean; if not, kv exits without it, which loses nothing:
// the next start recovers from the log again, as after a crash. It
// returns nil and the exit code when kv does not go on.
func recoverStore(ctx context.Context, o options, log *slog.Logger, stderr io.Writer) (*store.Store, int) {
	type recovered struct {
		st   *store.Store
		code int
	}
	// Buffered: an abandoned recovery's goroutine sends and ends.
	done := make(chan recovered, 1)
	go func() {
		st, code := openStore(o, log, stderr)
		done <- recovered{st, code}
	}()
	select {
	case r := <-done:
		return r.st, r.code // a stop that came meanwhile: serve's own
	case <-ctx.Done():
	}
	log.Info("kv stopping during the recovery: waiting for it to end", "at_most", o.shutdownTimeout)
	begin := time.Now()
	timer := time.NewTimer(o.shutdownTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.st == nil {
			return nil, r.code
		}
		if err := closeWithin(r.st.Close, max(o.shutdownTimeout-time.Since(begin), time.Second)); err != nil {
			log.Error("kv: closing the data directory", "err", err)
			return nil, exitFailed
		}
		log.Info("kv stopped before serving", "took", time.Since(begin).Round(time.Millisecond))
		return nil, exitOK
	case <-timer.C:
		log.Error("kv: the recovery did not end in time; exiting without it (the next start recovers again)",
			"waited", o.shutdownTimeout)
		go func() {
			// In a process that goes on (tests), the store that the
			// recovery opens late is closed, and its directory unlocked.
			if r := <-done; r.st != nil {
				_ = r.st.Close()
			}
		}()
		return nil, exitFailed
	}
}

// openStore opens the data directory and counts what it holds (the
// recovery, logged). It returns nil and the exit code on failure.
func openStore(o options, log *slog.Logger, stderr io.Writer) (*store.Store, int) {
	policy, _ := store.ParseFsync(o.fsync) // checked by parse
	open := o.open
	if open == nil {
		open = store.Open
	}
	begin := time.Now()
	st, err := open(o.dataDir, store.Options{Fsync: policy, Logger: log.With("service", "store"), MaxOpenFiles: o.storeMaxFiles})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, dataDirInUse(stderr, o.dataDir, err)
		}
		if errors.Is(err, store.ErrNewerFormat) {
			// Not damage either: the message says what to run.
			fmt.Fprintf(stderr, "kv: cannot open the data directory %s: %v\n", o.dataDir, err)
			return nil, exitStorage
		}
		if accessProblem(err) {
			// Not damage: kv check would find the directory sound (or
			// fail the same way), and no checkpoint would help.
			fmt.Fprintf(stderr, "kv: cannot open the data directory %s: %v\n"+
				"(kv needs a directory it can create and write to: check the path, its permissions and the file system)\n",
				o.dataDir, err)
			return nil, exitStorage
		}
		fmt.Fprintf(stderr, "kv: cannot open the data directory %s: %v\n"+
			"(run kv check %s for details; restore a checkpoint from %s if it is damaged)\n",
			o.dataDir, err, o.dataDir, filepath.Join(o.dataDir, "checkpoints"))
		return nil, exitStorage
	}
	stats, err := st.Stats()
	if err != nil {
		_ = st.Close()
		fmt.Fprintf(stderr, "kv: cannot read the data directory %s: %v\n(run kv check %s for details)\n", o.dataDir, err, o.dataDir)
		return nil, exitStorage
	}
	log.Info("kv: data directory recovered", "dir", st.Dir(), "fsync", policy.String(),
		"buckets", stats.Buckets, "keys", stats.Keys, "bytes", stats.Bytes,
		"took", time.Since(begin).Round(time.Millisecond))
	return st, exitOK
}

// accessProblem reports whether err, from opening the data directory, is
// the file system refusing access (a path through a regular file, a
// read-only file system, a permission) rather than damage to the store.
func accessProblem(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOTDIR)
}

// checkpoints serves SAVE, BGSAVE, LASTSAVE and POST /v1/save: each
// checkpoint is a new directory under <data-dir>/checkpoints, named after
// the time in Unix seconds ("-2", "-3"... after it for more in one
// second), from which kv can start (--data-dir).
type checkpoints struct {
	st   *store.Store
	log  *slog.Logger
	keep int        // how many to keep (0: all; see prune)
	mu   sync.Mutex // a name is chosen and taken by one Save at a time
	// For INFO (resp.SaveStats), whichever front end saved: the saves
	// that succeeded, whether the last to end failed, those under way.
	saves   atomic.Int64
	failed  atomic.Bool
	running atomic.Int32
}

// newCheckpoints serves checkpoints of st, keeping the keep newest (0:
// all). It removes what checkpoints cut off by a kill left in
// <data-dir>/checkpoints (see store.PartialSuffix): nothing else writes
// there while kv holds the data directory.
func newCheckpoints(st *store.Store, log *slog.Logger, keep int) *checkpoints {
	base := filepath.Join(st.Dir(), "checkpoints")
	ents, _ := os.ReadDir(base) // none yet: nothing to clean
	for _, e := range ents {
		if n := e.Name(); isPartialCheckpoint(n) {
			if err := os.RemoveAll(filepath.Join(base, n)); err != nil {
				log.Error("kv: cannot remove an incomplete checkpoint (kv stopped while writing it)", "dir", filepath.Join(base, n), "err", err)
				continue
			}
			log.Warn("kv: removed an incomplete checkpoint (kv stopped while writing it)", "dir", filepath.Join(base, n))
		}
	}
	return &checkpoints{st: st, log: log, keep: keep}
}

// isPartialCheckpoint reports whether name is one Save's Store.Checkpoint
// writes into: "." + <unix seconds>[-N] + PartialSuffix.
func isPartialCheckpoint(name string) bool {
	mid, dot := strings.CutPrefix(name, ".")
	mid, suf := strings.CutSuffix(mid, store.PartialSuffix)
	_, _, ok := checkpointName(mid)
	return dot && suf && ok
}

// freeName returns base/<secs>, or base/<secs>-2, -3... the first that
// sorts after every checkpoint in base (see checkpointName: a checkpoint
// deleted by --keep-checkpoints leaves no name free for a later one of
// the same second, which would sort before the ones it follows, and be
// taken for the oldest) and that lstat says does not exist; an error of
// readDir's other than a missing base, or of lstat's other than "does
// not exist", is returned.
func freeName(base string, secs uint64, readDir func(string) ([]fs.DirEntry, error), lstat func(string) (fs.FileInfo, error)) (string, error) {
	ents, err := readDir(base)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	n := uint64(1)
	for _, e := range ents {
		if s, m, ok := checkpointName(e.Name()); ok && (s > secs || s == secs && m >= n) {
			secs, n = s, m+1
		}
	}
	for ; ; n++ {
		dir := filepath.Join(base, checkpointDirName(secs, n))
		_, err := lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return dir, nil
		case err != nil:
			return "", err
		}
	}
}

// Save writes a checkpoint and returns its directory.
func (c *checkpoints) Save() (string, error) {
	c.running.Add(1)
	defer c.running.Add(-1)
	dir, err := c.save()
	if err == nil {
		c.saves.Add(1)
	}
	c.failed.Store(err != nil)
	return dir, err
}

// SaveStats reports the saves of every front end, for INFO's Persistence
// section (resp.SaveStats).
func (c *checkpoints) SaveStats() (saves int64, lastFailed, running bool) {
	return c.saves.Load(), c.failed.Load(), c.running.Load() > 0
}

func (c *checkpoints) save() (string, error) {
	base := filepath.Join(c.st.Dir(), "checkpoints")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("kv: checkpoint: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dir, err := freeName(base, uint64(max(time.Now().Unix(), 0)), os.ReadDir, os.Lstat)
	if err != nil {
		return "", fmt.Errorf("kv: checkpoint: %w", err)
	}
	if err := c.st.Checkpoint(dir); err != nil {
		c.log.Error("kv: checkpoint failed", "dir", dir, "err", err)
		return "", fmt.Errorf("kv: checkpoint: %w", err)
	}
	if c.keep > 0 {
		c.prune(base, c.keep)
	}
	return dir, nil
}

// LastSave returns the time of the last checkpoint.
func (c *checkpoints) LastSave() time.Time { return c.st.LastSave() }

// Sync returns once every write made before it is on disk (WAITAOF).
func (c *checkpoints) Sync() error { return c.st.Sync() }

// loggedGroups is kv check's note on n (> 0) groups of writes still in the
// log.
func loggedGroups(n int) string {
	groups := "groups"
	if n == 1 {
		groups = "group"
	}
	return fmt.Sprintf(" (%d logged %s of writes included, folded in at the next start)", n, groups)
}

// check is `kv check DIR`: it verifies a data directory offline.
func check(args []string, stdout, stderr io.Writer) int {
	const usage = "Usage: kv check DIR (verifies a data directory kv is not running on)\n"
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		fmt.Fprint(stdout, usage)
		return exitOK
	case len(args) != 1:
		fmt.Fprint(stderr, usage)
		return exitUsage
	case strings.HasPrefix(args[0], "-"):
		fmt.Fprintf(stderr, "kv check: unknown flag %s (a directory whose name starts with '-': ./%s)\n%s", args[0], args[0], usage)
		return exitUsage
	}
	rep, err := store.Check(args[0])
	switch {
	case errors.Is(err, store.ErrLocked):
		fmt.Fprintf(stderr, "kv check: %v\n", err)
		return exitLocked
	case err != nil && (!errors.Is(err, store.ErrCorrupt) || !rep.Opened):
		// Not a store, not readable, or too damaged to open: there is
		// nothing to sum up.
		fmt.Fprintf(stderr, "kv check: %v\n", err)
		return exitStorage
	}
	// A store, sound or damaged: what was read of it.
	fmt.Fprintf(stdout, "%s: %d buckets, %d keys, %d bytes", rep.Dir, rep.Buckets, rep.Keys, rep.Bytes)
	if rep.LogRecords > 0 {
		fmt.Fprint(stdout, loggedGroups(rep.LogRecords))
	}
	if !rep.LastSave.IsZero() {
		fmt.Fprintf(stdout, ", last checkpoint %s", rep.LastSave.UTC().Format(time.RFC3339))
	}
	if err != nil {
		// Not an empty store: the check stopped at the damage.
		fmt.Fprint(stdout, " read before the damage stopped the check")
	}
	fmt.Fprintln(stdout)
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "problem: %s\n", p)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kv check: %v\n", err)
		return exitStorage
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}

// dataDirOf and fsyncOf describe the storage for the start-up log line.
func dataDirOf(o options) string {
	if o.inMemory {
		return "none"
	}
	return o.dataDir
}

func fsyncOf(o options) string {
	if o.inMemory {
		return "none"
	}
	return o.fsync
}

// httpSave is POST /v1/save on backups; nil when kv runs in memory. The
// time it answers is the one its checkpoint holds: LASTSAVE, read after the
// save, may already be another save's (one that ran in between).
func httpSave(b resp.Backups) func() (string, time.Time, error) {
	if b == nil {
		return nil
	}
	return func() (string, time.Time, error) {
		dir, err := b.Save()
		if err != nil {
			return "", time.Time{}, err
		}
		at, err := store.CheckpointTime(dir)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("kv: checkpoint %s written, but: %w", dir, err)
		}
		return dir, at, nil
	}
}
