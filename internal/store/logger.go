package store

import "fmt"

// pebbleLogger sends pebble's messages to the store's logger. Pebble calls
// Fatalf when it cannot go on (a failed commit or MANIFEST write) and
// expects the process to exit; the store instead records a fault, which
// fences the files and makes every write fail until the store has reopened
// the engine.
type pebbleLogger struct{ s *Store }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.s.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.s.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.s.fatals.Add(1)
	l.s.log.Error("pebble: fatal: " + msg)
	l.s.fs.fail("", fmt.Errorf("pebble: %s", msg))
}
