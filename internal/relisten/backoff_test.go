package relisten

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// acceptErr is err as Accept returns it.
func acceptErr(err error) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", err)}
}

func TestPasses(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"out of descriptors", acceptErr(syscall.EMFILE), true},
		{"system out of descriptors", acceptErr(syscall.ENFILE), true},
		{"interrupted", acceptErr(syscall.EINTR), true},
		{"a deadline", acceptErr(os.ErrDeadlineExceeded), true},
		{"closed", acceptErr(net.ErrClosed), false},
		{"bad descriptor", acceptErr(syscall.EBADF), false},
		{"anything else", errors.New("listener broke"), false},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, Passes(tc.err)) })
	}
}

func TestBackoffDoublesAndStartsAfreshAfterReset(t *testing.T) {
	var b Backoff
	ctx := context.Background()
	var got []time.Duration
	for range 3 {
		retry, waited := b.Wait(ctx, acceptErr(syscall.EMFILE))
		require.True(t, retry)
		got = append(got, waited)
	}
	assert.Equal(t, []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}, got)
	b.Reset()
	_, waited := b.Wait(ctx, acceptErr(syscall.EMFILE))
	assert.Equal(t, 5*time.Millisecond, waited)

	retry, _ := b.Wait(ctx, acceptErr(net.ErrClosed))
	assert.False(t, retry, "a closed listener is not waited out")
}

func TestBackoffEndsWithItsContext(t *testing.T) {
	b := Backoff{delay: time.Hour} // the next wait would be long
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	retry, _ := b.Wait(ctx, acceptErr(syscall.EMFILE))
	assert.False(t, retry)
}
