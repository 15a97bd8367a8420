package services

import (
	"log/slog"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/registry"
)

// Config configures a tree. The zero value is ready to use.
type Config struct {
	// Logger receives the tree's logs, suture's events included (unless a
	// host tree replaces the root's event hook with its own, as suture does
	// on Add). Nil discards them.
	Logger *slog.Logger
	// StopTimeout bounds each stage of a stop: the buckets ending, the
	// registry publishing their Exited. 0 means 10 seconds.
	StopTimeout time.Duration
	// Store, when not nil, keeps every bucket durably (the daemon passes
	// its opened data directory); the tree does not close it. Nil keeps
	// buckets in memory only.
	Store registry.Store
}

// Root is a kv tree. It is a *suture.Supervisor (embedded), so it can be
// served on its own or added to a host's tree, and more services (network
// listeners) can be added to it; they start after the registry. Like any
// suture supervisor it is single-use: build a new Root for every start.
type Root struct {
	*suture.Supervisor

	events   *events.Manager
	buckets  *bucket.Supervisor
	registry *registry.Registry
	children []suture.Service
}

// New builds a fresh tree.
func New(cfg Config) *Root {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}

	ev := events.New(events.Options{Logger: log.With("service", "events"), HoldTimeout: 2 * timeout})
	buckets := bucket.NewSupervisor(bucket.SupervisorOptions{
		Logger:  log.With("service", "buckets"),
		Timeout: timeout,
	})
	reg := registry.New(registry.Config{
		Buckets:     buckets,
		Events:      ev,
		Logger:      log.With("service", "registry"),
		StopTimeout: timeout,
		Store:       cfg.Store,
	})

	sup := suture.New("kv", suture.Spec{
		// Stopping waits for the registry, which waits for the buckets:
		// leave room for both stages.
		Timeout: 2*timeout + time.Second,
		EventHook: func(e suture.Event) {
			log.Warn("supervisor: "+e.String(), "service", "kv")
		},
	})
	root := &Root{Supervisor: sup, events: ev, buckets: buckets, registry: reg}
	// The seed's order: the event manager, the bucket supervisor, then the
	// registry that uses both.
	root.children = []suture.Service{ev, buckets, reg}
	for _, c := range root.children {
		sup.Add(c)
	}
	return root
}

// Children returns kv's own children of the root, in the order they were
// added and start: the event manager, the bucket supervisor, the registry.
func (r *Root) Children() []suture.Service {
	return append([]suture.Service(nil), r.children...)
}

// Registry returns the tree's registry: create, look up and delete buckets.
func (r *Root) Registry() *registry.Registry { return r.registry }

// Events returns the tree's event manager: subscribe to Created and Exited.
func (r *Root) Events() *events.Manager { return r.events }

// Buckets returns the tree's bucket supervisor.
func (r *Root) Buckets() *bucket.Supervisor { return r.buckets }
