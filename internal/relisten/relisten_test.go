package relisten

import (
	"context"
	"net"
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
