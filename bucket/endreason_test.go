package bucket

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A bucket stopped by its supervisor's context ends with the context's
// cause when that is a context error (a deadline, or a cancellation that
// says more), and with the context's error for any other cause, which
// would class a shutdown as an error (EndKind).
func TestStopCauseIsTheEndReasonOnlyWhenAContextError(t *testing.T) {
	wrapped := fmt.Errorf("draining: %w", context.Canceled)
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, context.Canceled},
		{"a deadline as the cause", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(context.Background())
			return ctx, func() { cancel(context.DeadlineExceeded) }
		}, context.DeadlineExceeded},
		{"a cancellation that says more", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(context.Background())
			return ctx, func() { cancel(wrapped) }
		}, wrapped},
		{"a cause of the host's own", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancelCause(context.Background())
			return ctx, func() { cancel(errors.New("host: reload")) }
		}, context.Canceled},
		{"a deadline", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Unix(0, 0))
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			cancel()
			got := endReason(ctx)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, EndShutdown, EndKind(got), "a shutdown, whatever the cause")
		})
	}
}
