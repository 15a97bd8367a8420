// Package relisten is how kv's network front ends find their listener.
// They are suture services, so they may be served again after a failure:
// the first Serve uses the listener its caller opened (so that a busy port
// is a startup error, and tests can listen on 127.0.0.1:0), and every later
// Serve listens again on the address the previous one served.
package relisten

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// Point remembers where one front end listens. Create one with [New]; it
// is safe for concurrent use.
type Point struct {
	mu      sync.Mutex
	pending net.Listener // given to the first Listen
	network string       // the network of addr: "tcp", or the given listener's
	addr    string       // where a later Listen listens
	serving net.Addr     // the address being served, nil when none
}

// New returns a Point whose first Listen returns ln, or, when ln is nil,
// listens on addr over TCP.
func New(ln net.Listener, addr string) *Point {
	network := "tcp"
	if ln != nil {
		network, addr = ln.Addr().Network(), ln.Addr().String()
	}
	return &Point{pending: ln, network: network, addr: addr}
}

// Listen returns the listener given to New the first time it is called,
// and after that a new listener on the last address served, on its
// network (TCP, or a Unix socket's).
func (p *Point) Listen(ctx context.Context) (net.Listener, error) {
	p.mu.Lock()
	ln, network, addr := p.pending, p.network, p.addr
	p.pending = nil
	p.mu.Unlock()
	if ln != nil {
		return ln, nil
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
	p.network, p.addr, p.serving = a.Network(), a.String(), a
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
