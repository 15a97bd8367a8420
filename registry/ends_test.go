package registry

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

// Ends counts each end once, by kind, across a crash of the registry and
// up to the tree's stop.
func TestEndsCountsEachEndOnceByKind(t *testing.T) {
	tr := newTree(t)
	create := func(name string) *bucket.Bucket {
		b, err := tr.reg.Create(ctx, name)
		require.NoError(t, err)
		return b
	}
	assert.Equal(t, EndCounts{}, tr.reg.Ends())

	create("deleted")
	require.NoError(t, tr.reg.Delete(ctx, "deleted"))
	require.ErrorIs(t, tr.reg.Delete(ctx, "deleted"), ErrNotFound, "deleting it again ends nothing")
	failed := create("failed")
	failed.Stop(errors.New("stopped on purpose"))
	failed.Stop(nil) // ended already: no second end
	tr.rec.waitExit(t, failed.ID())
	crashed := create("crashed")
	require.Error(t, crashed.Update(func(*bucket.Tx) error { panic("boom") }))
	tr.rec.waitExit(t, crashed.ID())
	assert.Equal(t, EndCounts{Normal: 1, Error: 1, Panic: 1}, tr.reg.Ends())

	for i := range 3 {
		create(fmt.Sprintf("survivor%d", i))
	}
	tr.reg.box.send(notice{crash: true})
	require.Eventually(t, func() bool { return tr.reg.runs.Load() == 2 }, waitFor, tick,
		"suture restarts the crashed registry")
	create("deleted after the crash")
	require.NoError(t, tr.reg.Delete(ctx, "deleted after the crash"))
	assert.Equal(t, EndCounts{Normal: 2, Error: 1, Panic: 1}, tr.reg.Ends(), "kept across the restart")

	tr.stop()
	assert.Equal(t, EndCounts{Normal: 2, Error: 1, Panic: 1, Shutdown: 3}, tr.reg.Ends())
}

// A subscriber that falls behind loses Exited events; Ends loses none.
func TestEndsLosesNoneWhenSubscribersFallBehind(t *testing.T) {
	tr := newTree(t)
	release := make(chan struct{})
	sub, err := tr.ev.Subscribe(events.SubscribeOptions{Mailbox: 16, Name: "stuck"}, func(events.Event) { <-release })
	require.NoError(t, err)
	t.Cleanup(func() { // before the tree's stop, which waits for the handler
		close(release)
		sub.Close()
		<-sub.Done()
	})

	const n = 2000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("b%04d", i)
		_, err := tr.reg.Create(ctx, names[i])
		require.NoError(t, err)
	}
	for _, name := range names {
		require.NoError(t, tr.reg.Delete(ctx, name))
	}
	assert.Positive(t, sub.Dropped(), "the stuck subscriber lost events")
	assert.Equal(t, EndCounts{Normal: n}, tr.reg.Ends())
}
