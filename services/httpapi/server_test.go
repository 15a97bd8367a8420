package httpapi

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServeOnAddr(t *testing.T) {
	root := tree(t)
	srv := New(Config{Addr: "127.0.0.1:0", Registry: root.Registry(), Events: root.Events()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	require.Eventually(t, func() bool { return srv.Addr() != nil }, 5*time.Second, time.Millisecond)

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	a := &api{t: t, root: root, srv: srv, base: "http://" + srv.Addr().String(), client: client}
	require.Equal(t, http.StatusOK, a.do("GET", "/healthz", nil).status)
	s := a.events()

	// Another server cannot take the address: an error for suture to retry.
	busy := New(Config{Addr: srv.Addr().String(), Registry: root.Registry(), Events: root.Events()})
	require.Error(t, busy.Serve(ctx))

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Nil(t, srv.Addr())
	_, _, err := s.next()
	require.Error(t, err, "the stream ended with the server")
}
