package registry

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
)

// A COPY reads its source: a use of it, like a lookup's. A bucket used
// only as a COPY's source between two passes stays in memory, and the
// copies keep reading it from memory, not from the disk.
func TestUnloadIdleKeepsACopiedSource(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	reg, _, _ := newUnloadingTree(t, st, time.Hour) // passes run by hand
	ctx := context.Background()
	src, err := reg.Create(ctx, "template")
	require.NoError(t, err)
	require.NoError(t, src.Put("k", []byte("v")))
	reg.unloadIdleOnce(nil) // clears the new bucket's mark

	done, err := reg.Copy(ctx, "template", "copy1", true)
	require.NoError(t, err)
	require.True(t, done)
	loads := st.loads.Load()
	reg.unloadIdleOnce(nil)
	select {
	case <-src.Done():
		t.Fatalf("the COPY's source was unloaded though a COPY read it since the last pass: %v", src.Err())
	default:
	}
	done, err = reg.Copy(ctx, "template", "copy2", true)
	require.NoError(t, err)
	require.True(t, done)
	assert.Equal(t, loads, st.loads.Load(), "the second COPY read its source from memory")
}

// exitGate, once armed, holds each Exited back until open is closed.
type exitGate struct {
	Publisher
	armed atomic.Bool
	open  chan struct{}
}

func (p *exitGate) Publish(e events.Event) {
	if _, ok := e.(events.Exited); ok && p.armed.Load() {
		<-p.open
	}
	p.Publisher.Publish(e)
}

// The next pass comes a whole period after the last one ended, not after
// it began: a pass that waits long for its batches to be forgotten (tens
// of thousands of buckets, subscribers to feed) must not be followed at
// once by the next, which would end the buckets it visits soon after the
// last pass cleared their marks, used less than a period before.
func TestUnloadIdlePeriodCountsFromThePassEnd(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	var pub *exitGate
	asked := make(chan chan time.Time, 4)
	reg, _, _ := unloadingTree(t, st, time.Minute, func(ev *events.Manager) Publisher {
		pub = &exitGate{Publisher: ev, open: make(chan struct{})}
		return pub
	}, func(reg *Registry) {
		reg.testUnloadAfter = func(d time.Duration) <-chan time.Time {
			assert.Equal(t, time.Minute, d)
			c := make(chan time.Time, 1)
			asked <- c
			return c
		}
	})
	next := func() chan time.Time {
		t.Helper()
		select {
		case c := <-asked:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("the unloader asked for no period")
			return nil
		}
	}
	c := next()
	var bs []*bucket.Bucket
	for i := range deleteBatch + 1 {
		b, err := reg.Create(context.Background(), fmt.Sprintf("b%d", i))
		require.NoError(t, err)
		bs = append(bs, b)
	}
	c <- time.Now() // the first pass clears the new buckets' marks
	c = next()
	pub.armed.Store(true)
	c <- time.Now() // the second ends them, and waits for its first batch
	require.Eventually(t, func() bool {
		n := 0
		for _, b := range bs {
			if ended(b) {
				n++
			}
		}
		return n >= deleteBatch
	}, 10*time.Second, time.Millisecond)
	assert.Empty(t, asked, "no period is counted while the pass runs")
	close(pub.open)
	c = next() // the pass is over: a whole period from now
	require.Eventually(t, func() bool { return len(reg.Live()) == 0 }, 10*time.Second, time.Millisecond)
	_ = c
}
