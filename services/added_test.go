package services_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/services"
	"github.com/kvproject/kv/services/text"
)

// ServeBackground's doc: "it returns once the supervisor runs: Add, Remove
// and RemoveAndWait work at once", so a host may Add its front ends after
// ServeBackground. When the root was refused its DataDir, a front end added
// then is never run, nor closed: its listener stays open.
func TestAddAfterARefusedServeClosesTheListener(t *testing.T) {
	data := busyDataDir(t)
	second := services.New(services.Config{DataDir: data})
	errc := second.ServeBackground(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	second.Add(text.New(text.Config{Listener: ln, Registry: second.Registry()}))
	require.ErrorIs(t, <-errc, services.ErrDataDirInUse)
	requireClosed(t, ln, "the listener of a front end the refused root will never run")
}

// terminator ends the supervisor tree it runs in.
type terminator struct{}

func (terminator) Serve(context.Context) error { return suture.ErrTerminateSupervisorTree }

// A root whose supervisor ends on its own (a child asked it to) will never
// run a front end added afterwards: it is closed at once.
func TestAddAfterTheRootEndedOnItsOwnClosesTheListener(t *testing.T) {
	root := services.New(services.Config{})
	root.Supervisor.Add(terminator{})
	require.ErrorIs(t, <-root.ServeBackground(context.Background()), suture.ErrTerminateSupervisorTree)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	root.Add(text.New(text.Config{Listener: ln, Registry: root.Registry()}))
	requireClosed(t, ln)
}

// busyDataDir returns a data directory that another root serves on until
// the test ends.
func busyDataDir(t *testing.T) *services.DataDir {
	t.Helper()
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{})
	require.NoError(t, err)
	first := services.New(services.Config{DataDir: data})
	ctx, cancel := context.WithCancel(context.Background())
	done := first.ServeBackground(ctx)
	t.Cleanup(func() {
		cancel()
		<-done
		require.NoError(t, data.Close())
	})
	return data
}

// requireClosed fails unless ln has been closed (Accept says so, rather
// than time out).
func requireClosed(t *testing.T, ln net.Listener, msgAndArgs ...any) {
	t.Helper()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second)) // fails once closed
	_, err := ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed, msgAndArgs...)
}

// A subscription made before Serve (New's doc: such a subscriber receives
// every event) ends when the root is refused its DataDir: the refused root
// will never serve its event manager, so nothing else would ever close it,
// and its goroutine would be left running with Done never closed.
func TestRefusedRootEndsItsSubscriptions(t *testing.T) {
	data := busyDataDir(t)
	for name, serve := range map[string]func(*services.Root) error{
		"Serve":           func(r *services.Root) error { return r.Serve(context.Background()) },
		"ServeBackground": func(r *services.Root) error { return <-r.ServeBackground(context.Background()) },
	} {
		t.Run(name, func(t *testing.T) {
			second := services.New(services.Config{DataDir: data, StopTimeout: time.Second})
			sub, err := second.Events().Subscribe(events.SubscribeOptions{}, func(events.Event) {})
			require.NoError(t, err)
			defer sub.Close()
			require.ErrorIs(t, serve(second), services.ErrDataDirInUse)
			select {
			case <-sub.Done():
			case <-time.After(waitFor):
				t.Fatal("the refused root left its subscription open")
			}
			require.ErrorIs(t, sub.Err(), events.ErrStopped)
			_, err = second.Events().Subscribe(events.SubscribeOptions{}, func(events.Event) {})
			require.ErrorIs(t, err, events.ErrStopped)
		})
	}
}
