package relisten

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"
	"go.uber.org/goleak"

	"github.com/kvproject/kv/internal/testlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFirstTheGivenListenerThenTheSameAddressAgain(t *testing.T) {
	given, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := New(given, "ignored:1", nil, "")
	assert.Nil(t, p.Addr())

	ln, err := p.Listen(context.Background())
	require.NoError(t, err)
	assert.Same(t, given, ln)
	done := p.Serving(ln)
	assert.Equal(t, given.Addr(), p.Addr())
	ln.Close()
	done()
	assert.Nil(t, p.Addr())

	again, err := p.Listen(context.Background())
	require.NoError(t, err, "a restarted front end listens on the same address")
	defer again.Close()
	assert.Equal(t, given.Addr().String(), again.Addr().String())
}

func TestListenOnAddrAndReportErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	_, err = New(nil, busy.Addr().String(), nil, "").Listen(context.Background())
	require.ErrorContains(t, err, "listen on "+busy.Addr().String())

	p := New(nil, "127.0.0.1:0", nil, "")
	ln, err := p.Listen(context.Background())
	require.NoError(t, err)
	defer ln.Close()
	defer p.Serving(ln)()
	assert.Equal(t, ln.Addr(), p.Addr())
}

func TestCloseClosesAnUntakenListener(t *testing.T) {
	given, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := New(given, "", nil, "")
	require.NoError(t, p.Close())
	_, err = given.Accept()
	assert.Error(t, err, "closed")
	assert.NoError(t, p.Close(), "nothing left to close")
}

// A host may give a front end a listener on a Unix socket: the Serve that
// suture restarts listens again on that socket, not on TCP at its path.
func TestListenAgainOnTheSameNetwork(t *testing.T) {
	dir, err := os.MkdirTemp("", "rl") // short: socket paths are limited
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	given, err := net.Listen("unix", filepath.Join(dir, "kv.sock"))
	if err != nil {
		t.Skipf("no Unix sockets here: %v", err)
	}
	p := New(given, "", nil, "")
	ln, err := p.Listen(context.Background())
	require.NoError(t, err)
	done := p.Serving(ln)
	require.NoError(t, ln.Close())
	done()

	again, err := p.Listen(context.Background())
	require.NoError(t, err, "a restarted front end listens on the same socket")
	defer again.Close()
	assert.Equal(t, "unix", again.Addr().Network())
	assert.Equal(t, given.Addr().String(), again.Addr().String())
}

// wrapper is a listener kv cannot open again, as a TLS listener is.
type wrapper struct{ net.Listener }

// A listener of another kind than TCP's or a Unix socket's (TLS, say)
// cannot be opened again from its address: a restart must not listen
// plain, serving the clients without the wrapper, but fail for good.
func TestNeverListenAgainWithoutTheWrapper(t *testing.T) {
	for name, given := range map[string]bool{"given to New": true, "served": false} {
		t.Run(name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			w := wrapper{inner}
			var logs testlog.Buffer
			p := New(nil, "127.0.0.1:0", logs.Logger(slog.LevelInfo), "front")
			if given {
				p = New(w, "", logs.Logger(slog.LevelInfo), "front")
			}
			ln, err := p.Listen(context.Background())
			require.NoError(t, err)
			if given {
				require.Equal(t, w, ln)
			} else {
				ln.Close()
				ln = w
			}
			done := p.Serving(ln)
			ln.Close()
			done()

			again, err := p.Listen(context.Background())
			if err == nil {
				again.Close()
			}
			require.ErrorIs(t, err, suture.ErrDoNotRestart)
			assert.Contains(t, err.Error(), "relisten.wrapper")
			// Suture drops the front end without a word: the log says why.
			assert.Contains(t, logs.String(), "level=ERROR msg=\"front: cannot listen again; not restarting\"")
		})
	}
}

// replaceable is a wrapper that says a plain listener may replace it.
type replaceable struct{ net.Listener }

func (replaceable) ReplaceableByPlain() {}

func TestListenAgainAfterAReplaceableWrapper(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := New(replaceable{inner}, "", nil, "")
	ln, err := p.Listen(context.Background())
	require.NoError(t, err)
	done := p.Serving(ln)
	ln.Close()
	done()
	again, err := p.Listen(context.Background())
	require.NoError(t, err)
	defer again.Close()
	assert.Equal(t, inner.Addr().String(), again.Addr().String())
}
