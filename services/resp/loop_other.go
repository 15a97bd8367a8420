//go:build !linux

package resp

import "context"

// loop is the event loop of Linux (see loop_linux.go). Elsewhere there is
// none: every client has a goroutine of its own.
type loop struct{}

func startLoop(context.Context, *Server) (*loop, error) { return nil, nil }

func (*loop) add(*conn) bool   { return false }
func (*loop) clients() int     { return 0 }
func (*loop) stop()            {}
func (*loop) wait()            {}
func (*loop) write(*conn) bool { return true }
func (*loop) kill(*conn)       {}
func (*loop) letGo()           {}

// multiplexing names how the server waits for its clients, for INFO.
func (s *Server) multiplexing() string { return "goroutines" }
