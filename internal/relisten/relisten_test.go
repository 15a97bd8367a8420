package relisten

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFirstTheGivenListenerThenTheSameAddressAgain(t *testing.T) {
	given, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := New(given, "ignored:1")
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
	_, err = New(nil, busy.Addr().String()).Listen(context.Background())
	require.ErrorContains(t, err, "listen on "+busy.Addr().String())

	p := New(nil, "127.0.0.1:0")
	ln, err := p.Listen(context.Background())
	require.NoError(t, err)
	defer ln.Close()
	defer p.Serving(ln)()
	assert.Equal(t, ln.Addr(), p.Addr())
}

func TestCloseClosesAnUntakenListener(t *testing.T) {
	given, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := New(given, "")
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
	p := New(given, "")
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
