package services_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/services"
)

// A host that cancels its context with a cause of its own stops the tree as
// a shutdown: every bucket ends with context.Canceled (EndShutdown), not
// with the host's cause, which would class the stop as an error.
func TestHostCauseIsAShutdown(t *testing.T) {
	root := services.New(services.Config{})
	exited := make(chan events.Exited, 16)
	sub, err := root.Events().Subscribe(events.SubscribeOptions{Mailbox: 64}, func(ev events.Event) {
		if ex, ok := ev.(events.Exited); ok {
			exited <- ex
		}
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancelCause(context.Background())
	errc := root.ServeBackground(ctx)
	for _, n := range []string{"a", "b"} {
		_, err := root.Registry().Create(ctx, n)
		require.NoError(t, err)
	}
	cancel(errors.New("host: reload"))
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(waitFor):
		t.Fatal("the root did not stop")
	}
	<-sub.Done()
	close(exited)
	n := 0
	for ex := range exited {
		n++
		assert.Equal(t, bucket.EndShutdown, bucket.EndKind(ex.Reason), "bucket %q: %v", ex.Bucket, ex.Reason)
	}
	assert.Equal(t, 2, n)
}
