package events

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README: "a bounded mailbox (1,024 events by default)". A subscriber
// whose options leave Mailbox at 0 holds exactly DefaultMailbox events
// waiting behind the one its handler is stuck on; the rest are dropped and
// counted, per subscription and in the manager's Stats.
func TestDefaultMailboxHolds1024Events(t *testing.T) {
	require.Equal(t, 1024, DefaultMailbox, "the README states 1,024")
	m := New(Options{})
	serve(t, m)
	got := make(chan Event, 1)
	release := make(chan struct{})
	sub, err := m.Subscribe(SubscribeOptions{Name: "stuck"}, func(ev Event) {
		select {
		case got <- ev:
		default:
		}
		<-release
	})
	require.NoError(t, err)

	m.Publish(Created{Bucket: "first", ID: 1})
	first := <-got // the handler holds it: the mailbox is empty
	assert.Equal(t, uint64(1), first.Sequence())
	const lost = 5
	for i := range DefaultMailbox + lost {
		m.Publish(Created{Bucket: "x", ID: uint64(i + 2)})
	}
	assert.Equal(t, uint64(lost), sub.Dropped())
	assert.Equal(t, uint64(lost), m.Stats().Dropped)

	close(release)
	sub.Close()
	<-sub.Done()
}
