package text

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
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
	// DefaultShutdownTimeout bounds how long a stop waits for the
	// connections to finish the lines they had sent.
	DefaultShutdownTimeout = 5 * time.Second
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
	// TxLock isolates the Redis protocol's transactions: a command holds
	// it shared (registry.Shared) while it reads or changes buckets.
	TxLock() *sync.RWMutex
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
	// a Serve that suture restarts listens again on its address,
	// as a plain TCP or Unix listener (after a listener of another kind,
	// TLS say, it fails for good rather than serve without it).
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
	// ShutdownTimeout bounds how long a stop waits for each connection to
	// finish the lines it had sent and to take their replies; the
	// connections still busy then are closed, and their commands' contexts
	// cancelled. 0 means DefaultShutdownTimeout (5 seconds).
	ShutdownTimeout time.Duration
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
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
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
	s.listen = relisten.New(cfg.Listener, s.cfg.Addr, s.cfg.Logger, "text")
	return s
}

// String names the service in suture's logs.
func (s *Server) String() string { return "kv text server" }

// Close closes the listener given in Config.Listener if no Serve has
// taken it: for a server that will not be served (its tree stopped before
// it ran). A Serve under way is stopped by its context, not by Close.
func (s *Server) Close() error { return s.listen.Close() }

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
// fails, then closes ln, stops every connection (see [run.stop]), waits
// for their goroutines and returns: ctx's error after a stop, or the
// wrapped accept error. It takes ownership of ln. Tests use it with a
// listener on 127.0.0.1:0.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	if err := s.cfg.check(); err != nil {
		ln.Close()
		return fmt.Errorf("%w: %w", err, suture.ErrDoNotRestart)
	}
	defer s.listen.Serving(ln)()
	log := s.cfg.Logger.With("addr", ln.Addr().String())
	log.Info("text server listening")

	// Commands run on a context of their own, which outlives ctx until
	// the stop gives up on them, so that the lines a client sent before
	// the stop are carried out, and answered, rather than failed.
	cmdCtx, cancelCmds := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCmds()
	r := &run{srv: s, log: log, cmdCtx: cmdCtx, conns: make(map[net.Conn]struct{})}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	err := r.accept(ctx, ln)
	ln.Close()
	r.stop(cancelCmds)
	if ctx.Err() != nil {
		log.Info("text server stopped")
		return ctx.Err()
	}
	log.Error("text server failed", "error", err)
	return err
}

// run is one Serve: its connections and their goroutines.
type run struct {
	srv    *Server
	log    *slog.Logger
	cmdCtx context.Context // the context of the commands; see ServeListener
	wg     sync.WaitGroup
	// stopping is set once the run stops: a connection then reads no more
	// from its socket, and ends once it has answered the lines it holds.
	stopping atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{} // every connection, served or being refused
	// served counts the connections being served: those that MaxConns
	// bounds. A refused one, while it is drained, holds no slot.
	served int
	closed bool // no connection is tracked any more
}

func (r *run) accept(ctx context.Context, ln net.Listener) error {
	var backoff relisten.Backoff
	for {
		nc, err := ln.Accept()
		if err != nil {
			// Out of file descriptors and the like: wait and retry, as
			// net/http does (see relisten.Backoff); Wait gives up at once
			// once ctx has ended (the stop closed the listener).
			if retry, waited := backoff.Wait(ctx, err); retry {
				r.log.Warn("text server: accept failed; retried", "error", err, "after", waited)
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("text: accept: %w", err)
		}
		backoff.Reset()
		if !r.track(nc) {
			nc.Close()
			continue
		}
	}
}

// track registers nc and starts its goroutine; it reports false once the
// run is closing.
func (r *run) track(nc net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[nc] = struct{}{}
	r.wg.Add(1)
	if r.served >= r.srv.cfg.MaxConns {
		go r.refuse(nc)
	} else {
		r.served++
		go r.serveConn(r.cmdCtx, nc)
	}
	return true
}

// untrack forgets nc, closes it and ends its goroutine's count; served
// says whether it held one of the MaxConns slots.
func (r *run) untrack(nc net.Conn, served bool) {
	r.mu.Lock()
	delete(r.conns, nc)
	if served {
		r.served--
	}
	r.mu.Unlock()
	nc.Close()
	r.wg.Done()
}

// stop lets every connection answer the lines it has read, then end: a
// connection reads no more from its socket, its command in flight and the
// whole lines already buffered run (as the Redis protocol server lets a
// client finish what it sent), and their replies are written. Those still
// busy after ShutdownTimeout are closed and their commands' context
// cancelled (cancel). stop returns once every connection's goroutine has.
func (r *run) stop(cancel context.CancelFunc) {
	r.mu.Lock()
	r.closed = true
	r.stopping.Store(true)
	for nc := range r.conns {
		// Wakes a connection waiting for a line. One that sets its idle
		// deadline after this sees stopping, and sets this one again.
		_ = nc.SetReadDeadline(time.Unix(1, 0))
	}
	r.mu.Unlock()

	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	t := time.NewTimer(r.srv.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	cancel()
	r.mu.Lock()
	n := len(r.conns)
	for nc := range r.conns {
		nc.Close()
	}
	r.mu.Unlock()
	r.log.Warn("text server: connections did not finish in time; closed them",
		"connections", n, "waited", r.srv.cfg.ShutdownTimeout)
	<-done
}

// refuseDrain bounds what endGently reads and drops of what a connection
// the server closes had sent: up to refuseDrainBytes, for up to
// refuseDrainFor.
const refuseDrainBytes = 64 << 10

var refuseDrainFor = 100 * time.Millisecond // a variable for tests

// refuse tells a connection past MaxConns why it is closed.
func (r *run) refuse(nc net.Conn) {
	defer r.untrack(nc, false)
	r.log.Warn("text server: too many connections; refusing one",
		"remote", nc.RemoteAddr().String(), "max", r.srv.cfg.MaxConns)
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := nc.Write([]byte(replyError)); err != nil {
		return
	}
	endGently(nc)
}

// endGently prepares nc, whose replies are written, for its close by the
// server while the client may still be sending: it ends the server's side
// first, and drops what the client had sent (within bounds). A socket
// closed with unread data makes the kernel reset the connection, and the
// reset may throw the last replies away before the client reads them: a
// refusal's ERROR, a wrong password's, or the replies a stop let through.
func endGently(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		nc.SetReadDeadline(time.Now().Add(refuseDrainFor))
		io.CopyN(io.Discard, nc, refuseDrainBytes) // until the client's end, the bound or the deadline
	}
}
