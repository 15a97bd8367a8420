package text

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/relisten"
)

// Defaults of the Config fields left zero.
const (
	DefaultAddr         = "127.0.0.1:4040"
	DefaultMaxLineBytes = 64 << 10
	DefaultMaxConns     = 1024
	DefaultIdleTimeout  = 5 * time.Minute
	DefaultWriteTimeout = 30 * time.Second
)

// protocol is this front end's protocol label in kv's metrics.
const protocol = "text"

// Registry is what the server needs of kv's registry; *registry.Registry is
// one.
type Registry interface {
	Create(ctx context.Context, name string) (*bucket.Bucket, error)
	// LookupCurrent finds the live bucket named name, following one that
	// has just ended to what the name means now.
	LookupCurrent(ctx context.Context, name string) (*bucket.Bucket, bool, error)
}

// Observer receives the server's metrics; *metrics.Metrics is one.
type Observer interface {
	ObserveCommand(protocol, command string, elapsed time.Duration, failed bool)
	ObserveClients(protocol string, delta int)
}

// Config configures a [Server]. Registry is required; every other field's
// zero value means its default.
type Config struct {
	// Addr is the TCP address Serve listens on; "" means DefaultAddr
	// (127.0.0.1:4040, the guide's port, loopback only).
	Addr string
	// Listener, when set, is served by the first Serve instead of
	// listening on Addr (a daemon opens it first to report a busy port);
	// a Serve that suture restarts listens again on its address.
	Listener net.Listener
	// Registry is the tree's registry.
	Registry Registry
	// Password, when not empty, must be given with AUTH before any other
	// command. It may not contain white space (a token cannot).
	Password string
	// MaxLineBytes is the longest line accepted, not counting its "\n" (a
	// "\r" before it counts); 0 means DefaultMaxLineBytes (64 KiB). A longer
	// line gets ERROR, is discarded up to its "\n", and the connection
	// stays usable.
	MaxLineBytes int
	// MaxConns bounds the connections served at once; 0 means
	// DefaultMaxConns (1024). A connection past it gets ERROR and is closed.
	MaxConns int
	// IdleTimeout closes a connection that sends no complete line for that
	// long; 0 means DefaultIdleTimeout (5 minutes), negative means never.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection that does not take its replies for
	// that long; 0 means DefaultWriteTimeout (30 seconds), negative means
	// never.
	WriteTimeout time.Duration
	// Observer, when set, receives per-command and per-connection metrics
	// (protocol "text").
	Observer Observer
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger

	// testHookLookup, when set, runs with each bucket a command has looked
	// up, before it uses it.
	testHookLookup func(*bucket.Bucket)
}

// withDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// check reports a configuration that can never serve.
func (cfg Config) check() error {
	if cfg.Registry == nil {
		return errors.New("text: Config.Registry is nil")
	}
	return CheckPassword(cfg.Password)
}

// CheckPassword returns an error if password cannot be given with the line
// protocol's AUTH: if it contains white space, which ends a token.
func CheckPassword(password string) error {
	if strings.ContainsFunc(password, isSpace) {
		return errors.New("text: the password contains white space, which the line protocol's AUTH cannot carry")
	}
	return nil
}

// Server is the line-protocol server, a suture.Service. Create one with
// [New]. Suture may run its Serve again after a failure; each run has its
// own listener and connections.
type Server struct {
	cfg    Config
	listen *relisten.Point
}

// New returns a server for cfg. It does not listen until served.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg.withDefaults()}
	s.listen = relisten.New(cfg.Listener, s.cfg.Addr)
	return s
}

// String names the service in suture's logs.
func (s *Server) String() string { return "kv text server" }

// Addr returns the address of the listener being served, or nil when none
// is.
func (s *Server) Addr() net.Addr { return s.listen.Addr() }

// Serve listens (on Config.Listener the first time, else on Config.Addr
// or the address of the previous listener) and serves until ctx ends; then
// it closes the listener and every connection, waits for their goroutines
// and returns ctx's error. A configuration that can never work is reported
// with an error wrapping suture.ErrDoNotRestart; a failure to listen, or of
// the listener, is returned for suture to retry.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.cfg.check(); err != nil {
		s.listen.Close()
		s.cfg.Logger.Error("text: cannot serve; not restarting", "err", err)
		return fmt.Errorf("%w: %w", err, suture.ErrDoNotRestart)
	}
	ln, err := s.listen.Listen(ctx)
	if err != nil {
		return fmt.Errorf("text: %w", err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves connections accepted from ln until ctx ends or ln
// fails, then closes ln and every connection, waits for their goroutines
// and returns: ctx's error after a stop, or the wrapped accept error. It
// takes ownership of ln. Tests use it with a listener on 127.0.0.1:0.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	if err := s.cfg.check(); err != nil {
		ln.Close()
		return fmt.Errorf("%w: %w", err, suture.ErrDoNotRestart)
	}
	defer s.listen.Serving(ln)()
	log := s.cfg.Logger.With("addr", ln.Addr().String())
	log.Info("text server listening")

	r := &run{srv: s, log: log, conns: make(map[net.Conn]struct{})}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	err := r.accept(ctx, ln)
	ln.Close()
	r.closeAll()
	r.wg.Wait()
	if ctx.Err() != nil {
		log.Info("text server stopped")
		return ctx.Err()
	}
	log.Error("text server failed", "error", err)
	return err
}

// run is one Serve: its connections and their goroutines.
type run struct {
	srv *Server
	log *slog.Logger
	wg  sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (r *run) accept(ctx context.Context, ln net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait and retry,
				// as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				r.log.Warn("text server: accept failed; retrying", "error", err, "in", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				}
				continue
			}
			return fmt.Errorf("text: accept: %w", err)
		}
		backoff = 0
		if !r.track(ctx, nc) {
			nc.Close()
			continue
		}
	}
}

// isTemporary reports an accept error worth retrying.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track registers nc and starts its goroutine; it reports false once the
// run is closing.
func (r *run) track(ctx context.Context, nc net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	full := len(r.conns) >= r.srv.cfg.MaxConns
	r.conns[nc] = struct{}{}
	r.wg.Add(1)
	if full {
		go r.refuse(nc)
	} else {
		go r.serveConn(ctx, nc)
	}
	return true
}

func (r *run) untrack(nc net.Conn) {
	r.mu.Lock()
	delete(r.conns, nc)
	r.mu.Unlock()
	nc.Close()
	r.wg.Done()
}

// closeAll closes every connection; their goroutines then end.
func (r *run) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for nc := range r.conns {
		nc.Close()
	}
}

// refuse tells a connection past MaxConns why it is closed.
func (r *run) refuse(nc net.Conn) {
	defer r.untrack(nc)
	r.log.Warn("text server: too many connections; refusing one",
		"remote", nc.RemoteAddr().String(), "max", r.srv.cfg.MaxConns)
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	nc.Write([]byte(replyError))
}
