package resp

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/relisten"
)

// Protocol is the protocol name given to an [Observer].
const Protocol = "resp"

// DefaultAddr is the address Serve listens on when Config.Addr is empty:
// loopback, one above Redis's 6379 so that both can run side by side.
const DefaultAddr = "127.0.0.1:6380"

// Registry is what the server needs of kv's registry; *registry.Registry is
// one.
type Registry interface {
	Create(ctx context.Context, name string) (*bucket.Bucket, error)
	CreateWith(ctx context.Context, name string, first func(*bucket.Tx) error) (*bucket.Bucket, bucket.Pending, error)
	Lookup(name string) (*bucket.Bucket, bool)
	LookupErr(name string) (*bucket.Bucket, bool, error)
	LookupCurrent(ctx context.Context, name string) (*bucket.Bucket, bool, error)
	Delete(ctx context.Context, name string) error
	DeleteManyNoWait(ctx context.Context, names []string) (deleted int, drops []bucket.Pending, err error)
	WaitForgotten(ctx context.Context, b *bucket.Bucket) error
	Names() []string
	NamesErr() ([]string, error)
	Len() int
	LenErr() (int, error)
	Scan(cursor uint64, count int) (names []string, next uint64, err error)
	RandomName() (name string, ok bool, err error)
	RenameNoWait(ctx context.Context, from, to string) (bucket.Pending, error)
	RenameNXNoWait(ctx context.Context, from, to string) (bool, bucket.Pending, error)
	CopyNoWait(ctx context.Context, from, to string, replace bool) (bool, bucket.Pending, error)
	FlushAllNoWait(ctx context.Context) (wait func(context.Context) error, err error)
	// TxLock isolates transactions: EXEC holds it alone, every other
	// command shared, as every front end on the registry does.
	TxLock() *sync.RWMutex
	// Births changes whenever a bucket is recorded under name (and
	// sometimes for another name): WATCH of a missing key.
	Births(name string) uint64
	// HoldWrites keeps a transaction's writes in one atomic write to the
	// store, until release.
	HoldWrites() (release func())
}

// Events is what the server needs of kv's event manager; *events.Manager is
// one.
type Events interface {
	Subscribe(opts events.SubscribeOptions, fn func(events.Event)) (*events.Subscription, error)
}

// Observer receives the server's measurements (the metrics service
// implements it). Its methods are called on the connections' goroutines and
// must not block. A nil Observer costs nothing.
type Observer interface {
	// ObserveCommand is called once per command with its lower-case name
	// ("unknown" for a command kv does not know), how long it ran and
	// whether its reply was an error.
	ObserveCommand(protocol, command string, elapsed time.Duration, failed bool)
	// ObserveClients is called with +1 when a client connects and -1 when it
	// leaves.
	ObserveClients(protocol string, delta int)
}

// Config configures a [Server]. Registry and Events are required; every
// other zero field means its documented default.
type Config struct {
	Registry Registry // the tree's registry (required)
	Events   Events   // the tree's event manager (required)

	// Addr is the TCP address to listen on; "" means DefaultAddr.
	Addr string
	// Listener, when set, is used by the first Serve instead of listening on
	// Addr; a Serve that suture restarts listens again on its address,
	// as a plain TCP or Unix listener (after a listener of another kind,
	// TLS say, it fails for good rather than serve without it).
	Listener net.Listener
	// Password, when set, must be given with AUTH (or HELLO ... AUTH) before
	// any other command. It is compared in constant time.
	Password string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Observer, when set, receives command and client measurements.
	Observer Observer
	// Version is reported by INFO and HELLO; "" means "dev".
	Version string

	// MaxClients is how many clients may be connected at once; one more is
	// told "ERR max number of clients reached" and disconnected. 0 means
	// 10000.
	MaxClients int
	// MaxClientsCeiling bounds what CONFIG SET maxclients may set: the
	// clients the process's open files allow (the daemon gives what its
	// open-file limit leaves for Redis clients). 0 means no ceiling.
	MaxClientsCeiling int
	// MaxRequestBytes bounds the bytes of one request not yet complete; a
	// client that goes past it is told "ERR Protocol error: request too
	// large" and disconnected. It also bounds a transaction's queued
	// commands and the names a client watches or subscribes to (an error
	// reply; the connection stays). 0 means 64 MiB.
	MaxRequestBytes int
	// MaxBulkLen bounds one argument; a complete command with a longer one
	// is refused with an error reply. 0 means 16 MiB.
	MaxBulkLen int
	// MaxArgs bounds the arguments of one command, the name included; a
	// longer command is refused with an error reply. 0 means 1048576.
	MaxArgs int
	// IdleTimeout closes a client that sends nothing for that long
	// (subscribers and monitors excepted). 0 means 5 minutes; a negative
	// value disables it. CONFIG SET timeout changes it while the server
	// runs.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a client (a reply, an event); a
	// client that does not read for that long is disconnected. 0 means 30
	// seconds.
	WriteTimeout time.Duration
	// MaxReplyBytes bounds the replies that may wait for one client while
	// it does not read them. Client libraries send a pipeline whole before
	// they read its replies (go-redis's Pipelined, redis-py's pipeline):
	// while the client's socket is full the server goes on reading and
	// running its commands, as Redis does, and keeps their replies, up to
	// this many bytes; then it reads nothing more from the client until
	// it reads. It also bounds the replies that a short command could make
	// of any size: past it, HRANDFIELD's and HMGET's repeats may be no
	// larger than the hash, COMMAND INFO's repeats are refused, and a
	// transaction's later long replies become errors. 0 means 64 MiB.
	MaxReplyBytes int
	// ShutdownTimeout bounds how long stopping waits for clients to finish
	// the commands they sent before it forces their connections closed. 0
	// means 5 seconds.
	ShutdownTimeout time.Duration
	// SubscriberMailbox is how many events may wait for one subscribed
	// client. A subscriber that falls further behind is disconnected. 0
	// means 1024.
	SubscriberMailbox int
	// GoroutinePerClient serves every client on a goroutine of its own,
	// as on systems other than Linux. On Linux, by default, one event loop
	// serves the clients (see the package documentation), and hands a
	// client to a goroutine of its own when it subscribes, monitors or runs SAVE.
	GoroutinePerClient bool
	// SlowlogSlowerThan is how long a command must run to be kept in the
	// slow log (SLOWLOG GET), as Redis's slowlog-log-slower-than, in whole
	// microseconds (a part of one is dropped): 0 means 10 ms; negative,
	// none is kept. The log is kept when the server
	// has an Observer, which times the commands (the daemon always has).
	SlowlogSlowerThan time.Duration
	// SlowlogMaxLen is how many commands the slow log keeps, the oldest
	// dropped first: 0 means 128; negative, none.
	SlowlogMaxLen int
	// EnableDebugCommand turns on DEBUG CRASH-BUCKET.
	EnableDebugCommand bool
	// Shutdown, when set, serves SHUTDOWN: a client asks the program that
	// runs the server to stop. The server calls it (after the checkpoint
	// that SHUTDOWN SAVE asks for) and closes that client without a
	// reply, as Redis does; it must begin the program's clean stop, which
	// stops this server too, and return at once. It may be called more
	// than once. nil refuses SHUTDOWN: a program that embeds the server
	// decides whether its clients may stop it.
	Shutdown func()
	// Backups, when set, serves SAVE, BGSAVE and LASTSAVE, and CONFIG GET
	// appendonly answers yes; nil refuses SAVE and BGSAVE, and LASTSAVE
	// answers 0.
	Backups Backups

	// testHookLive, when set, runs with each bucket a command has looked
	// up, before the command uses it (tests end the bucket there).
	testHookLive func(*bucket.Bucket)
	// testHookEventWrite, when set, runs on a subscription's goroutine
	// before it writes an event's messages to the client, holding the
	// client's wmu (tests hold it there, as a socket that takes no more
	// would).
	testHookEventWrite func()
	// testHookMonitorWrite, when set, runs on a monitor's writer
	// goroutine before it writes lines to the client, holding its wmu.
	testHookMonitorWrite func()
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 10000
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 64 << 20
	}
	if c.MaxBulkLen <= 0 {
		c.MaxBulkLen = 16 << 20
	}
	if c.MaxArgs <= 0 {
		c.MaxArgs = 1 << 20
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.IdleTimeout < 0 {
		c.IdleTimeout = 0
	}
	if c.SlowlogSlowerThan == 0 {
		c.SlowlogSlowerThan = 10 * time.Millisecond
	}
	if c.SlowlogMaxLen == 0 {
		c.SlowlogMaxLen = 128
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxReplyBytes <= 0 {
		c.MaxReplyBytes = 64 << 20
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if c.SubscriberMailbox <= 0 {
		c.SubscriberMailbox = 1024
	}
}

// Server is the Redis protocol front end: a suture.Service that accepts
// clients and runs their commands against the registry's buckets. Create
// one with [New].
type Server struct {
	cfg      Config
	reg      Registry
	ev       Events
	log      *slog.Logger
	obs      Observer
	cmds     map[string]*command
	pwHash   [sha256.Size]byte
	started  time.Time
	nextID   atomic.Int64
	listen   *relisten.Point
	ready    chan struct{} // closed once the first listener is up
	readyOne sync.Once

	// tx, the registry's TxLock, isolates transactions: EXEC checks its
	// watched keys and runs its queued commands under the write lock,
	// every other command runs under the read lock, as the other front
	// ends' do, so that no command of another client runs between a
	// transaction's (the event loop's clients are run one at a time
	// anyway; a client on a goroutine of its own, or of another front
	// end, is not). Not held while a client waits for its socket or for
	// the disk, only while a command runs.
	tx *sync.RWMutex

	mu        sync.Mutex
	conns     map[*conn]struct{}
	closedAll bool // under mu: shutdown has closed every connection
	stopping  atomic.Bool
	wg        sync.WaitGroup // one per connection goroutine

	// counters for INFO
	totalConns    atomic.Int64
	rejected      atomic.Int64
	totalCommands atomic.Int64 // commands of closed connections; live ones are summed at INFO
	commandsBase  atomic.Int64 // what total_commands_processed was at the last CONFIG RESETSTAT
	slowlog       slowlog
	subscribed    subscriptions // PUBSUB's counts
	kicked        atomic.Int64  // subscribers disconnected for being slow
	// What CONFIG SET may change while the server runs, from Config.
	maxClients atomic.Int64
	idle       atomic.Int64 // IdleTimeout, in nanoseconds; 0: none
	slowerThan atomic.Int64 // microseconds, as Redis's; negative: the slow log keeps none
	slowMaxLen atomic.Int64
	// INFO latencystats's percentiles (latency-tracking-info-percentiles).
	percentiles atomic.Pointer[[]float64]

	errors         errorStats   // error replies, for INFO errorstats
	mon            monitors     // the clients in MONITOR mode
	monitorsKicked atomic.Int64 // monitors disconnected for being slow

	loop atomic.Pointer[loop] // the event loop of the listener serving, if any

	saving     atomic.Bool    // a SAVE or BGSAVE is running
	saves      atomic.Int64   // checkpoints written by SAVE and BGSAVE
	saveFailed atomic.Bool    // the last SAVE or BGSAVE failed (INFO)
	bg         sync.WaitGroup // BGSAVE goroutines
}

// New returns a server for cfg, with every command registered. It panics
// if cfg.Registry or cfg.Events is nil.
func New(cfg Config) *Server {
	if cfg.Registry == nil || cfg.Events == nil {
		panic("resp: New needs Config.Registry and Config.Events")
	}
	cfg.setDefaults()
	s := &Server{
		cfg:     cfg,
		reg:     cfg.Registry,
		ev:      cfg.Events,
		log:     cfg.Logger,
		obs:     cfg.Observer,
		started: time.Now(),
		listen:  relisten.New(cfg.Listener, cfg.Addr, cfg.Logger, "resp"),
		ready:   make(chan struct{}),
		conns:   make(map[*conn]struct{}),
		tx:      cfg.Registry.TxLock(),
	}
	if cfg.Password != "" {
		s.pwHash = sha256.Sum256([]byte(cfg.Password))
	}
	s.maxClients.Store(int64(cfg.MaxClients))
	s.idle.Store(int64(cfg.IdleTimeout))
	if cfg.SlowlogSlowerThan < 0 {
		s.slowerThan.Store(-1) // a part of a microsecond is still negative
	} else {
		s.slowerThan.Store(cfg.SlowlogSlowerThan.Microseconds())
	}
	s.slowMaxLen.Store(int64(cfg.SlowlogMaxLen))
	s.percentiles.Store(&[]float64{50, 99, 99.9}) // Redis's default
	s.cmds = s.commandTable()
	return s
}

// String names the service in suture's logs.
func (s *Server) String() string { return "kv resp listener" }

// Ready is closed once the server has listened for the first time. It
// stays open while the server cannot listen (suture retries a busy Addr):
// a host that must know at once opens the listener itself and gives it in
// Config.Listener, as the daemon does.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Close closes the listener given in Config.Listener if no Serve has
// taken it: for a server that will not be served (its tree stopped before
// it ran). A Serve under way is stopped by its context, not by Close.
func (s *Server) Close() error { return s.listen.Close() }

// Addr returns the address the server listens on, or nil while it is not
// listening.
func (s *Server) Addr() net.Addr { return s.listen.Addr() }

// Serve listens (on Config.Listener the first time, else on Config.Addr or
// the address of the previous listener) and serves clients until ctx ends.
// Then it stops accepting, lets every client finish the commands it had
// sent (up to ShutdownTimeout), closes them and returns. It returns an
// error when it cannot listen, or when the listener fails, so that suture
// restarts it.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := s.listen.Listen(ctx)
	if err != nil {
		return fmt.Errorf("resp: %w", err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves clients accepted from ln until ctx ends or ln fails,
// as Serve does; it closes ln. Tests serve a listener on 127.0.0.1:0.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	notServing := s.listen.Serving(ln)
	s.readyOne.Do(func() { close(s.ready) })
	s.log.Info("resp: listening", "addr", ln.Addr().String())

	s.stopping.Store(false)
	s.mu.Lock()
	s.closedAll = false
	s.mu.Unlock()

	// The commands run with a context of their own, which ctx's end does
	// not cancel: the commands in flight at the stop finish as they would
	// have before it (a write that makes a key, a DEL), against the buckets
	// that still serve. It ends with shutdown's time, so that a command
	// still waiting then gives up.
	cmdCtx, cancelCmds := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCmds()

	var lp *loop
	if !s.cfg.GoroutinePerClient {
		var err error
		if lp, err = startLoop(cmdCtx, s); err != nil {
			s.log.Warn("resp: no event loop; serving each client on a goroutine of its own", "err", err)
		}
	}
	s.loop.Store(lp)
	defer s.loop.Store(nil)

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var (
		acceptErr error
		backoff   relisten.Backoff
	)
	for {
		nc, err := ln.Accept()
		if err != nil {
			// Out of file descriptors and the like: wait and accept again,
			// as net/http does. Returning would have suture restart the
			// server, closing every client, those that hold the
			// descriptors with the rest.
			if retry, waited := backoff.Wait(ctx, err); retry {
				s.log.Warn("resp: accept failed; retried", "err", err, "after", waited)
				continue
			}
			if ctx.Err() == nil {
				acceptErr = fmt.Errorf("resp: accept on %s: %w", ln.Addr(), err)
				s.log.Error("resp: listener failed", "err", err)
			}
			break
		}
		backoff.Reset()
		s.accept(cmdCtx, nc, lp)
	}
	ln.Close()
	notServing()
	s.shutdown(lp, cancelCmds)
	s.bg.Wait()
	if acceptErr != nil {
		return acceptErr
	}
	s.log.Info("resp: stopped", "addr", ln.Addr().String())
	return ctx.Err()
}

// accept starts a client, on the event loop lp if there is one, or
// refuses it when the server is full.
func (s *Server) accept(ctx context.Context, nc net.Conn, lp *loop) {
	s.totalConns.Add(1)
	s.mu.Lock()
	if int64(len(s.conns)) >= s.maxClients.Load() {
		s.mu.Unlock()
		s.rejected.Add(1)
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
		_ = nc.Close()
		return
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.observeClients(1)
	looped := lp != nil && lp.add(c)
	s.mu.Unlock()
	if !looped {
		go s.serveConn(ctx, c)
	}
}

// serveConn runs the client c on its goroutine until it ends.
func (s *Server) serveConn(ctx context.Context, c *conn) {
	defer s.ended(c)
	c.serve(ctx) // recovers a panic of its commands (see survive)
}

// survive, deferred, recovers a panic of the client c's command: a bug in
// a handler ends its client, logged with the stack, not the whole daemon
// with every other client (as net/http recovers a handler's panic). What
// the handler held with defer (the transactions' lock, a bucket's lock)
// is released as the panic unwinds; a bucket whose own code panicked ends
// on its own (bucket.Update). Deferred after conn.close, so that the
// record is written before the client sees its connection close.
func (s *Server) survive(c *conn) {
	if r := recover(); r != nil {
		s.logPanic(c, r)
	}
}

// logPanic logs the panic r of one of c's commands, with the stack, as
// its client is closed (see survive, and the event loop's serveSurviving).
func (s *Server) logPanic(c *conn, r any) {
	s.log.Error("resp: a command panicked; its client is closed", "client", c.addr, "panic", r, "stack", string(debug.Stack()))
}

// ended forgets the client c, which has ended.
func (s *Server) ended(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.totalCommands.Add(c.commands.Load())
	s.observeClients(-1)
	s.wg.Done()
}

// observeClients tells the Observer that a client came (+1) or left (-1).
// A panic in it is logged, as a command's is, and goes no further: it
// runs on the accept loop (under s.mu) and on the event loop, where
// nothing else would recover it.
func (s *Server) observeClients(delta int) {
	if s.obs == nil {
		return
	}
	defer s.observerPanicked("clients", delta)
	s.obs.ObserveClients(Protocol, delta)
}

// shutdown lets every client finish what it sent, then closes them all;
// once ShutdownTimeout has passed it calls cancelCmds too, which ends the
// commands still waiting.
func (s *Server) shutdown(lp *loop, cancelCmds context.CancelFunc) {
	s.stopping.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		c.interrupt()
	}
	s.mu.Unlock()
	if lp != nil {
		lp.stop() // its clients count in s.wg; it closes them by ShutdownTimeout
		defer lp.wait()
	}

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(s.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	cancelCmds()
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		if c.nc != nil {
			_ = c.nc.Close()
		}
	}
	s.closedAll = true // and a client the loop hands off later (see handoff)
	s.mu.Unlock()
	s.log.Warn("resp: clients did not finish in time; closed them", "clients", n, "waited", s.cfg.ShutdownTimeout)
	<-done
}

// clients returns a snapshot of the live connections.
func (s *Server) clients() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// idleTimeout is the idle timeout in force (Config.IdleTimeout, or what
// CONFIG SET timeout made it); 0: none.
func (s *Server) idleTimeout() time.Duration { return time.Duration(s.idle.Load()) }

// setIdleTimeout serves CONFIG SET timeout, in seconds, as Redis: 0 turns
// the idle timeout off, and the new one applies to the clients connected
// already. The event loop's clients follow at its next look for idle
// ones; a client on a goroutine of its own waits for a read under a
// deadline set by the old timeout, so each is woken (retime) to set it
// again: one that is idle by the new timeout is closed then.
func (s *Server) setIdleTimeout(secs int64) {
	s.idle.Store(secs * int64(time.Second))
	s.retime()
}

// retime wakes every client waiting for a read on a goroutine of its own
// (see setIdleTimeout).
func (s *Server) retime() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		// Under wq.mu, as the client's goroutine and its writer read the
		// timeout and set the deadline by it: one that read the old
		// timeout has set its deadline already, and this wakes it;
		// otherwise it reads the new one. (A client of the event loop has
		// no nc: interrupt leaves it to the loop.)
		c.wq.mu.Lock()
		c.interrupt()
		c.wq.mu.Unlock()
	}
}
