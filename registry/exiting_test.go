package registry

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

// A bucket made under a name whose last bucket is out of the tables, its
// Exited being published (the loop's forget, between the two), is
// announced after that Exited: a Create of the name, or a rename onto it,
// that comes in that window does not publish its Created first. Before
// the fix, both published the new bucket's Created while the old one's
// Exited was held, and a subscriber saw the name created, then gone,
// while it was live.
func TestANewBucketIsAnnouncedAfterTheExitedOfItsNamesLastOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(r *Registry) error
	}{
		{"create", func(r *Registry) error { _, err := r.Create(context.Background(), "y"); return err }},
		{"rename onto it", func(r *Registry) error { return r.Rename(context.Background(), "x", "y") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := newGate(func(ev events.Event) bool {
				e, ok := ev.(events.Exited)
				return ok && e.Bucket == "y"
			})
			calledCreated := make(chan struct{}, 1)
			tr := newTreeWith(t, func(m *events.Manager) Publisher {
				gate.wrap(m)
				return &spyPublisher{Publisher: gate, created: "y", called: calledCreated}
			}, nil)
			r := tr.reg
			_, err := r.Create(ctx, "x")
			require.NoError(t, err)
			old, err := r.Create(ctx, "y")
			require.NoError(t, err)
			<-calledCreated // old's own Created, published before Create returned
			_ = old.Update(func(*bucket.Tx) error { panic("boom") })
			<-gate.held // out of the tables, its Exited held
			opened := false
			open := func() {
				if !opened {
					opened = true
					close(gate.open)
				}
			}
			defer open()

			made := make(chan error, 1)
			go func() { made <- tc.make(r) }()
			// Either the new bucket's Created is published now (the bug), or
			// its start waits for the old one's Exited.
			require.Eventually(t, func() bool {
				select {
				case <-calledCreated:
					return true
				default:
				}
				r.mu.RLock()
				defer r.mu.RUnlock()
				return r.waiters[old.ID()] != nil
			}, waitFor, tick)
			open()
			require.NoError(t, <-made)

			var exitedAt, createdAt = -1, -1
			require.Eventually(t, func() bool {
				exitedAt, createdAt = -1, -1
				for i, ev := range tr.rec.events() {
					switch e := ev.(type) {
					case events.Exited:
						if e.ID == old.ID() {
							exitedAt = i
						}
					case events.Created:
						if e.Bucket == "y" && e.ID != old.ID() {
							createdAt = i
						}
					}
				}
				return exitedAt >= 0 && createdAt >= 0
			}, waitFor, tick)
			assert.Less(t, exitedAt, createdAt, "the old y's Exited comes before the new y's Created")
		})
	}
}

// spyPublisher signals called when a Created of the bucket named created
// is published.
type spyPublisher struct {
	Publisher
	created string
	called  chan struct{}
}

func (s *spyPublisher) Publish(ev events.Event) {
	if e, ok := ev.(events.Created); ok && e.Bucket == s.created {
		select {
		case s.called <- struct{}{}:
		default:
		}
	}
	s.Publisher.Publish(ev)
}
