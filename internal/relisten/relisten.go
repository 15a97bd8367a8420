// Package relisten is how kv's network front ends find their listener.
// They are suture services, so they may be served again after a failure:
// the first Serve uses the listener its caller opened (so that a busy port
// is a startup error, and tests can listen on 127.0.0.1:0), and every later
// Serve listens again on the address the previous one served. It can
// only listen again as a plain TCP or Unix listener would: a Serve after
// one given another kind of listener (TLS, say) fails for good rather
// than listen without the wrapper.
package relisten

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/thejerf/suture/v4"
)

// Point remembers where one front end listens. Create one with [New]; it
// is safe for concurrent use.
type Point struct {
	mu      sync.Mutex
	pending net.Listener // given to the first Listen
	network string       // the network of addr: "tcp", or the given listener's
	addr    string       // where a later Listen listens
	// wrapped is the type of the last listener given or served when it is
	// not one Listen can open again (a TLS listener, say); "" when it is.
	wrapped string
	serving net.Addr // the address being served, nil when none

	log     *slog.Logger // says why Listen refuses for good
	service string       // the front end's name, for that log
}

// New returns a Point whose first Listen returns ln, or, when ln is nil,
// listens on addr over TCP. A refusal to listen again for good (see
// Listen) is logged at Error to log, nil to discard, as service's.
func New(ln net.Listener, addr string, log *slog.Logger, service string) *Point {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Point{pending: ln, network: "tcp", addr: addr, log: log, service: service}
	if ln != nil {
		p.record(ln)
	}
	return p
}

// record notes ln as the listener a later Listen replaces. The caller
// holds p.mu, or p is new.
func (p *Point) record(ln net.Listener) {
	a := ln.Addr()
	p.network, p.addr, p.wrapped = a.Network(), a.String(), ""
	switch ln.(type) {
	case *net.TCPListener, *net.UnixListener, Replaceable:
	default:
		p.wrapped = fmt.Sprintf("%T", ln)
	}
}

// Replaceable is a listener wrapper that a plain listener on its address
// may replace: one that adds nothing its clients rely on (the tests' fault
// injectors).
type Replaceable interface {
	net.Listener
	ReplaceableByPlain()
}

// Listen returns the listener given to New the first time it is called,
// and after that a new listener on the last address served, on its
// network (TCP, or a Unix socket's). If the last listener given or served
// was of another kind (a TLS listener, say), Listen cannot open one like
// it, and returns an error wrapping suture.ErrDoNotRestart: the front end
// stays down rather than serve its clients without the wrapper. Suture
// drops such a service without a word, so Listen logs why.
func (p *Point) Listen(ctx context.Context) (net.Listener, error) {
	p.mu.Lock()
	ln, network, addr, wrapped := p.pending, p.network, p.addr, p.wrapped
	p.pending = nil
	p.mu.Unlock()
	if ln != nil {
		return ln, nil
	}
	if wrapped != "" {
		err := fmt.Errorf("cannot listen again on %s: the listener served there was a %s, which only its maker can open again; serve a new front end with a new one: %w",
			addr, wrapped, suture.ErrDoNotRestart)
		p.log.Error(p.service+": cannot listen again; not restarting", "err", err)
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serving records that ln is being served, and that a later Listen should
// use its network and address. The returned func records that it no
// longer is.
func (p *Point) Serving(ln net.Listener) (done func()) {
	a := ln.Addr()
	p.mu.Lock()
	p.record(ln)
	p.serving = a
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		if p.serving == a {
			p.serving = nil
		}
		p.mu.Unlock()
	}
}

// Addr returns the address being served, or nil when none is.
func (p *Point) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serving
}

// Close closes a listener given to New that no Listen has taken.
func (p *Point) Close() error {
	p.mu.Lock()
	ln := p.pending
	p.pending = nil
	p.mu.Unlock()
	if ln == nil {
		return nil
	}
	return ln.Close()
}
