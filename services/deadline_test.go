package services_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/services"
)

// deadlineCtx is a context whose deadline the test reaches at will:
// expire closes Done, and Err then says context.DeadlineExceeded, as a
// context.WithDeadline's does once its time has come.
type deadlineCtx struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newDeadlineCtx() *deadlineCtx {
	return &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *deadlineCtx) expire()                     { c.once.Do(func() { close(c.done) }) }
func (c *deadlineCtx) Done() <-chan struct{}       { return c.done }
func (c *deadlineCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *deadlineCtx) Value(key any) any           { return c.Context.Value(key) }
func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// A root stopped by its context's deadline reports that deadline as every
// bucket's end, as its Serve does: the context's error at shutdown, not
// the context.Canceled of the contexts the root makes for its children. A
// host that cancels with a cause of its own stops the tree as a shutdown
// too: every bucket ends with context.Canceled (EndShutdown), not with the
// host's cause, which would class the stop as an error.
func TestShutdownIsEveryBucketsEnd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		durable bool
		host    error // the host's cause; nil: its deadline
		want    error
	}{
		{"deadline, in memory", false, nil, context.DeadlineExceeded},
		{"deadline, durable", true, nil, context.DeadlineExceeded},
		{"host's cause", false, errors.New("host: reload"), context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := services.Config{}
			if tc.durable {
				data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
				require.NoError(t, err)
				defer func() { require.NoError(t, data.Close()) }()
				cfg.DataDir = data
			}
			root := services.New(cfg)
			exited := make(chan events.Exited, 16)
			sub, err := root.Events().Subscribe(events.SubscribeOptions{Mailbox: 64}, func(ev events.Event) {
				if ex, ok := ev.(events.Exited); ok {
					exited <- ex
				}
			})
			require.NoError(t, err)
			var ctx context.Context
			var stop func()
			if tc.host == nil {
				d := newDeadlineCtx()
				ctx, stop = d, d.expire
			} else {
				c, cancel := context.WithCancelCause(context.Background())
				ctx, stop = c, func() { cancel(tc.host) }
			}
			errc := root.ServeBackground(ctx)
			for _, n := range []string{"a", "b", "c"} {
				b, err := root.Registry().Create(ctx, n)
				require.NoError(t, err)
				require.NoError(t, b.Put("k", []byte("v")))
			}
			stop()
			select {
			case err := <-errc:
				assert.ErrorIs(t, err, tc.want)
			case <-time.After(waitFor):
				t.Fatal("the root did not stop")
			}
			<-sub.Done()
			close(exited)
			n := 0
			for ex := range exited {
				n++
				assert.ErrorIs(t, ex.Reason, tc.want, "bucket %q", ex.Bucket)
				assert.Equal(t, bucket.EndShutdown, bucket.EndKind(ex.Reason), "bucket %q: %v", ex.Bucket, ex.Reason)
			}
			assert.Equal(t, 3, n)
		})
	}
}
