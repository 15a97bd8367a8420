package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/relisten"
	"github.com/kvproject/kv/registry"
	"github.com/kvproject/kv/services/metrics"
)

// Defaults of the Config fields left zero.
const (
	DefaultAddr              = "127.0.0.1:8080"
	DefaultMaxBodyBytes      = 1 << 20
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConns          = 1024
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultSSEBuffer         = 256
	DefaultSSEWriteTimeout   = 10 * time.Second
	DefaultSSEHeartbeat      = 15 * time.Second
	DefaultPageLimit         = 100
	MaxPageLimit             = 1000
)

// protocol is this front end's protocol label in kv's metrics.
const protocol = metrics.ProtocolHTTP

// Registry is what the API needs of kv's registry; *registry.Registry is
// one.
type Registry interface {
	Create(ctx context.Context, name string) (*bucket.Bucket, error)
	// LookupCurrent finds the live bucket named name, following one that
	// has just ended to what the name means now.
	LookupCurrent(ctx context.Context, name string) (*bucket.Bucket, bool, error)
	Delete(ctx context.Context, name string) error
	// NamesErr lists every bucket, stored ones included, or fails.
	NamesErr() ([]string, error)
	Len() int                 // for /metrics
	Live() []*bucket.Bucket   // for /metrics
	Ends() registry.EndCounts // for /metrics
	// TxLock isolates the Redis protocol's transactions: a request holds
	// it shared (registry.Shared) while it reads or changes buckets.
	TxLock() *sync.RWMutex
}

// EventSource is what the API needs of kv's event manager; *events.Manager
// is one.
type EventSource interface {
	Subscribe(opts events.SubscribeOptions, fn func(events.Event)) (*events.Subscription, error)
	Stats() events.Stats
}

// Config configures a [Server]. Registry and Events are required; every
// other field's zero value means its default. The limits, SSEBuffer,
// ShutdownTimeout and the SSE durations only make sense positive: a
// negative value means the default too.
type Config struct {
	// Addr is the TCP address Serve listens on; "" means DefaultAddr
	// (127.0.0.1:8080, loopback only).
	Addr string
	// Listener, when set, is served by the first Serve instead of
	// listening on Addr (a daemon opens it first to report a busy port);
	// a Serve that suture restarts listens again on its address,
	// as a plain TCP or Unix listener (after a listener of another kind,
	// TLS say, it fails for good rather than serve without it).
	Listener net.Listener
	// Registry is the tree's registry.
	Registry Registry
	// Events is the tree's event manager: the source of /v1/events and of
	// the event series of /metrics.
	Events EventSource
	// Metrics is where the API reports its requests and connections, and
	// what /metrics serves. Share one with the other front ends. Nil means
	// a new one built on Registry and Events, reporting for HTTP alone.
	Metrics *metrics.Metrics
	// Ready answers /readyz: nil means ready; an error means not ready
	// (503), and says why. A nil Ready is always ready.
	Ready func() error
	// Save serves POST /v1/save: it writes a checkpoint of the data
	// directory and returns its directory and time. Nil (kv in memory
	// only) answers 503.
	Save func() (dir string, at time.Time, err error)
	// Password, when not empty, is required on every request but /healthz
	// as "Authorization: Bearer <password>". One that a header cannot carry
	// (see [CheckPassword]) makes Serve fail, not to be restarted.
	Password string
	// MaxBodyBytes bounds a request body; 0 means DefaultMaxBodyBytes
	// (1 MiB). A longer body gets 413.
	MaxBodyBytes int64
	// MaxHeaderBytes bounds the request line and headers; 0 means
	// DefaultMaxHeaderBytes (64 KiB). Past it, net/http replies 431.
	MaxHeaderBytes int
	// MaxConns bounds the connections open at once; 0 means
	// DefaultMaxConns (1024). Past it, new connections wait in the listen
	// backlog until one closes. Event streams hold one each.
	MaxConns int
	// MaxStreams bounds the /v1/events streams open at once, so that
	// streams, which never end on their own, cannot take every
	// connection from the other requests (/healthz, /readyz, /metrics, a
	// liveness probe). 0 means half of MaxConns, rounded down: with
	// MaxConns 1, no stream, so that the one connection stays for the
	// other requests. Past it, a new stream gets 503 too_many_streams.
	MaxStreams int
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are
	// http.Server's; 0 means 5s, 30s, 30s and 2m, negative means none. /v1/events clears the
	// read and write deadlines of its connection and bounds each of its
	// writes with SSEWriteTimeout instead.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// ShutdownTimeout bounds the graceful stop (http.Server.Shutdown) once
	// Serve's context ends; past it, open connections are closed. 0 means
	// DefaultShutdownTimeout (10s).
	ShutdownTimeout time.Duration
	// SSEBuffer is how many events may wait for one /v1/events client;
	// an event that finds the queue full cuts the stream. 0 means
	// DefaultSSEBuffer (256).
	SSEBuffer int
	// SSEWriteTimeout bounds each write to a /v1/events client; a client
	// that does not take it in time is cut. 0 means DefaultSSEWriteTimeout
	// (10s).
	SSEWriteTimeout time.Duration
	// SSEHeartbeat is how often an idle stream gets a comment line, to keep
	// proxies from closing it. 0 means DefaultSSEHeartbeat (15s).
	SSEHeartbeat time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	setDefault(&cfg.Addr, DefaultAddr)
	setPositive(&cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	setPositive(&cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setPositive(&cfg.MaxConns, DefaultMaxConns)
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = cfg.MaxConns / 2 // 0 for 1: streams are refused
	}
	// http.Server's timeouts: zero is the default, negative means none
	// (http.Server's own reading of a non-positive value).
	setDefault(&cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&cfg.ReadTimeout, DefaultReadTimeout)
	setDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setPositive(&cfg.ShutdownTimeout, DefaultShutdownTimeout)
	setPositive(&cfg.SSEBuffer, DefaultSSEBuffer)
	setPositive(&cfg.SSEWriteTimeout, DefaultSSEWriteTimeout)
	setPositive(&cfg.SSEHeartbeat, DefaultSSEHeartbeat)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ready == nil {
		cfg.Ready = func() error { return nil }
	}
	return cfg
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// setPositive sets a field that only makes sense positive: zero or less
// means the default.
func setPositive[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// stoppingKey is the request context key of a channel closed when the
// server serving the request begins to shut down.
type stoppingKey struct{}

// stoppingChan returns the channel under stoppingKey, or nil for a handler
// run outside ServeListener (see Server.hostStopping).
func stoppingChan(r *http.Request) <-chan struct{} {
	ch, _ := r.Context().Value(stoppingKey{}).(chan struct{})
	return ch
}

// hostStopping returns a channel closed when the http.Server running r
// begins to shut down: for a host that serves Handler on its own server,
// whose Shutdown, which cancels no request, would otherwise wait for every
// event stream until its deadline. It returns nil (never closed) when r
// carries no *http.Server. A stream that begins after its server's
// Shutdown has begun is not ended by it.
func (s *Server) hostStopping(r *http.Request) <-chan struct{} {
	hs, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return nil
	}
	s.hostsMu.Lock()
	defer s.hostsMu.Unlock()
	if ch, ok := s.hosts[hs]; ok {
		return ch
	}
	if s.hosts == nil {
		s.hosts = make(map[*http.Server]chan struct{})
	}
	ch := make(chan struct{})
	hs.RegisterOnShutdown(func() {
		close(ch)
		s.hostsMu.Lock()
		delete(s.hosts, hs) // the server is done with: not kept for ever
		s.hostsMu.Unlock()
	})
	s.hosts[hs] = ch
	return ch
}

// Server is the HTTP API, a suture.Service. Create one with [New]; its
// routes are registered then, so a duplicate fails at construction.
type Server struct {
	cfg     Config
	metrics *metrics.Metrics
	mux     *http.ServeMux
	// byPattern is each route's handler by its pattern, for fallback.
	byPattern map[string]http.Handler
	// metricsHandler serves /metrics from metrics' registry.
	metricsHandler http.Handler
	handler        http.Handler // mux behind authentication and JSON errors
	listen         *relisten.Point

	// hosts holds, for each host http.Server that has run an event
	// stream through Handler, the channel its Shutdown closes (see
	// hostStopping).
	hostsMu sync.Mutex
	hosts   map[*http.Server]chan struct{}

	streams atomic.Int64 // /v1/events streams open (MaxStreams)

	// testHookSSE, when set, runs before each event is written to a
	// stream (tests use it to stall a stream).
	testHookSSE func()
	// testHookLookup, when set, runs with each bucket a request has
	// looked up, before it uses it.
	testHookLookup func(*bucket.Bucket)
}

// New returns a server for cfg. It panics if cfg.Registry or cfg.Events is
// nil, since no request could be served.
func New(cfg Config) *Server {
	if cfg.Registry == nil || cfg.Events == nil {
		panic("httpapi: New needs Config.Registry and Config.Events")
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		metrics:   cfg.Metrics,
		mux:       http.NewServeMux(),
		byPattern: make(map[string]http.Handler),
		listen:    relisten.New(cfg.Listener, cfg.Addr, cfg.Logger, "http api"),
	}
	if s.metrics == nil {
		s.metrics = metrics.New(metrics.Config{
			Tree:   cfg.Registry,
			Events: cfg.Events,
			Logger: cfg.Logger,
		})
	}
	s.metricsHandler = s.metrics.Handler()
	for _, rt := range routes() {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rt.handler(s, w, r) })
		if rt.command != "" {
			h = s.observe(rt.command, h)
		}
		s.mux.Handle(rt.method+" "+rt.path, h)
		s.byPattern[rt.method+" "+rt.path] = h
	}
	s.handler = s.protect(s.authenticate(http.HandlerFunc(s.route)))
	return s
}

// String names the service in suture's logs.
func (s *Server) String() string { return "kv http api" }

// Handler returns the API as an http.Handler (authentication included), for
// tests and for hosts that run their own http.Server. That server's
// Shutdown ends the event streams, which would otherwise hold it.
func (s *Server) Handler() http.Handler { return s.handler }

// Metrics returns the collectors the server reports to and serves.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Close closes the listener given in Config.Listener if no Serve has
// taken it: for a server that will not be served (its tree stopped before
// it ran, or never runs). A Serve under way is stopped by its context,
// not by Close.
func (s *Server) Close() error { return s.listen.Close() }

// Addr returns the address of the listener being served, or nil when none
// is.
func (s *Server) Addr() net.Addr { return s.listen.Addr() }

// Serve listens (on Config.Listener the first time, else on Config.Addr
// or the address of the previous listener) and serves until ctx ends, then
// shuts down gracefully (see ServeListener). A failure to listen, or of
// the listener, is returned for suture to retry.
func (s *Server) Serve(ctx context.Context) error {
	if err := CheckPassword(s.cfg.Password); err != nil {
		s.listen.Close()
		s.cfg.Logger.Error("http api: cannot serve; not restarting", "err", err)
		return fmt.Errorf("%w: %w", err, suture.ErrDoNotRestart)
	}
	ln, err := s.listen.Listen(ctx)
	if err != nil {
		return fmt.Errorf("httpapi: %w", err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves HTTP on ln until ctx ends, then stops: it calls
// http.Server.Shutdown with ShutdownTimeout as deadline, which ends the
// event streams at once and lets other requests finish, closes what is
// still open after it, waits for every handler to return and returns
// ctx's error. A server that fails otherwise returns the wrapped error. It
// takes ownership of ln.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	if err := CheckPassword(s.cfg.Password); err != nil {
		ln.Close()
		return fmt.Errorf("%w: %w", err, suture.ErrDoNotRestart)
	}
	defer s.listen.Serving(ln)()
	log := s.cfg.Logger.With("addr", ln.Addr().String())

	var handlers handlerGroup
	stopping := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopping) }) }
	defer stop()
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !handlers.enter() {
				writeError(w, http.StatusServiceUnavailable, "unavailable", "the server is stopping")
				return
			}
			defer handlers.leave()
			s.handler.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// Requests do not inherit ctx's cancellation, so that Shutdown lets
		// them finish; event streams are told to end through stopping.
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.WithoutCancel(ctx), stoppingKey{}, stopping)
		},
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.metrics.ObserveClients(protocol, 1)
			case http.StateClosed, http.StateHijacked:
				s.metrics.ObserveClients(protocol, -1)
			}
		},
	}
	hs.RegisterOnShutdown(stop)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(newLimitListener(ln, s.cfg.MaxConns)) }()
	log.Info("http api listening")

	var failed error
	select {
	case failed = <-served: // failed on its own: its requests stop as at a stop
		log.Error("http api failed; stopping its requests", "error", failed)
	case <-ctx.Done():
	}
	// Shutdown ends the event streams at once (through stopping), lets
	// other requests finish, and closes idle connections; it is needed
	// after a failure too, or an open stream would hold closeAndWait.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("http api: graceful stop timed out; closing connections", "error", err)
		hs.Close()
	}
	if failed == nil {
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http api: serve", "error", err)
		}
	}
	handlers.closeAndWait()
	if failed != nil {
		return fmt.Errorf("httpapi: serve: %w", failed)
	}
	log.Info("http api stopped")
	return ctx.Err()
}

// handlerGroup counts running handlers; once closed it admits no more, so
// that waiting for the count to reach zero cannot race with a late start.
type handlerGroup struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (g *handlerGroup) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *handlerGroup) leave() { g.wg.Done() }

func (g *handlerGroup) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}
