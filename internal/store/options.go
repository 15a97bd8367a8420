package store

import (
	"fmt"
	"log/slog"
	"time"
)

// Fsync is a durability policy, with the meanings of Redis's appendfsync.
type Fsync int

const (
	// FsyncEverySec returns from a write once the WAL holding it has been
	// written to the OS, and a background goroutine fsyncs the WAL once a
	// second: a process kill loses no acknowledged write (the OS holds the
	// written pages); a power cut or an OS crash loses at most about a
	// second of them. It is the default.
	FsyncEverySec Fsync = iota
	// FsyncAlways returns from a write only once the WAL holding it is
	// fsynced. Concurrent writers share one fsync (group commit).
	FsyncAlways
	// FsyncNo returns from a write once the WAL holding it has been
	// written to the OS, and never fsyncs it: the OS writes it back when it
	// chooses. A process kill loses nothing; a power cut may lose more than
	// a second.
	FsyncNo
)

// String returns the policy's flag spelling: always, everysec or no.
func (f Fsync) String() string {
	switch f {
	case FsyncAlways:
		return "always"
	case FsyncEverySec:
		return "everysec"
	case FsyncNo:
		return "no"
	}
	return fmt.Sprintf("Fsync(%d)", int(f))
}

// ParseFsync parses always, everysec or no, as the --fsync flag spells them.
func ParseFsync(s string) (Fsync, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "everysec":
		return FsyncEverySec, nil
	case "no":
		return FsyncNo, nil
	}
	return 0, fmt.Errorf("store: unknown fsync policy %q (want always, everysec or no)", s)
}

// Options configures [Open]. The zero value is ready to use.
type Options struct {
	// Fsync is the durability policy; the zero value is FsyncEverySec.
	Fsync Fsync
	// Logger receives the store's logs (recovery, damage, faults) and
	// pebble's own messages at Debug level. Nil discards them.
	Logger *slog.Logger
	// Faults, when not nil, sits below the storage engine and can make its
	// file writes and syncs fail on demand: for tests of full disks and I/O
	// errors, in this package or through the daemon.
	Faults *Faults
	// RetryInterval is how long after a failed write the store waits before
	// it tries to recover (reopen its files) on the next write; 0 means 1
	// second.
	RetryInterval time.Duration
	// MaxOpenFiles bounds the files the engine keeps open (pebble's
	// MaxOpenFiles, a soft limit); 0 means pebble's default, 1000.
	MaxOpenFiles int

	syncEvery time.Duration // everysec's background sync period; 0 means 1 second
	// plainFirstWAL (tests) keeps a new store's first WAL as pebble makes
	// it, without sync chunks (see Open).
	plainFirstWAL bool
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = time.Second
	}
	if o.syncEvery <= 0 {
		o.syncEvery = time.Second
	}
}
