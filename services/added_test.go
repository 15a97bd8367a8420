package services_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/services"
	"github.com/kvproject/kv/services/text"
)

// ServeBackground's doc: "it returns once the supervisor runs: Add, Remove
// and RemoveAndWait work at once", so a host may Add its front ends after
// ServeBackground. When the root was refused its DataDir, a front end added
// then is never run, nor closed: its listener stays open.
func TestAddAfterARefusedServeClosesTheListener(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
	require.NoError(t, err)
	defer func() { require.NoError(t, data.Close()) }()
	first := services.New(services.Config{DataDir: data})
	ctx, cancel := context.WithCancel(context.Background())
	done := first.ServeBackground(ctx)
	defer func() { cancel(); <-done }()

	second := services.New(services.Config{DataDir: data})
	errc := second.ServeBackground(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	second.Add(text.New(text.Config{Listener: ln, Registry: second.Registry()}))
	require.ErrorIs(t, <-errc, services.ErrDataDirInUse)
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second))
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed, "the listener of a front end the refused root will never run")
}
