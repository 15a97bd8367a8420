package resp

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// Backups is what SAVE, BGSAVE and LASTSAVE need: the daemon's durable
// store. Without one those commands are refused.
type Backups interface {
	// Save writes a consistent checkpoint of every acknowledged write and
	// returns where.
	Save() (dir string, err error)
	// LastSave returns the time of the last successful Save, or the zero
	// time if there was none.
	LastSave() time.Time
}

// SaveStats is what a Backups may report too, when others than this
// server save through it (kv's HTTP API, POST /v1/save): INFO's
// Persistence section then gives its figures, for every save, rather than
// those of this server's SAVE and BGSAVE alone. saves counts the saves
// that succeeded; lastFailed says whether the last one to end failed;
// running, whether one is under way.
type SaveStats interface {
	SaveStats() (saves int64, lastFailed, running bool)
}

// save serves SAVE: a checkpoint, written before the reply.
func (s *Server) save(_ context.Context, c *conn, _ [][]byte) {
	if s.cfg.Backups == nil {
		c.err("ERR SAVE needs durable storage: kv runs in memory only")
		return
	}
	if !s.saving.CompareAndSwap(false, true) {
		c.err("ERR Background save already in progress")
		return
	}
	defer s.saving.Store(false)
	dir, err := s.checkpoint()
	s.saved(err)
	if err != nil {
		s.log.Error("resp: SAVE failed", "err", err)
		c.err("ERR " + err.Error())
		return
	}
	s.log.Info("resp: SAVE", "dir", dir, "client", c.addr)
	c.ok()
}

// bgsave serves BGSAVE [SCHEDULE]: the checkpoint is written after the
// reply, on a goroutine the server waits for when it stops. SCHEDULE,
// which asks Redis to save once another child process is done, changes
// nothing here: kv has no such process.
func (s *Server) bgsave(_ context.Context, c *conn, args [][]byte) {
	if len(args) > 2 || len(args) == 2 && !strings.EqualFold(string(args[1]), "schedule") {
		c.err("ERR syntax error")
		return
	}
	if s.cfg.Backups == nil {
		c.err("ERR BGSAVE needs durable storage: kv runs in memory only")
		return
	}
	if !s.saving.CompareAndSwap(false, true) {
		c.err("ERR Background save already in progress")
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer s.saving.Store(false)
		dir, err := s.checkpoint()
		s.saved(err)
		if err != nil {
			s.log.Error("resp: BGSAVE failed", "err", err)
			return
		}
		s.log.Info("resp: BGSAVE done", "dir", dir)
	}()
	c.simple("Background saving started")
}

// checkpoint writes a checkpoint through Backups.Save, a panic in it
// turned into its error: a checkpoint that panics fails that save alone,
// as a failed one does (BGSAVE's runs on a goroutine of its own, where a
// panic would end the process).
func (s *Server) checkpoint() (dir string, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("resp: the checkpoint panicked", "panic", r, "stack", string(debug.Stack()))
			dir, err = "", fmt.Errorf("the checkpoint panicked: %v", r)
		}
	}()
	return s.cfg.Backups.Save()
}

// saved records a SAVE's or BGSAVE's outcome for INFO, as Redis's
// rdb_last_bgsave_status, which a script that polls LASTSAVE after a
// BGSAVE reads to tell a failure from a save still running.
func (s *Server) saved(err error) {
	if err == nil {
		s.saves.Add(1)
	}
	s.saveFailed.Store(err != nil)
}

// lastsave serves LASTSAVE: the Unix time of the last checkpoint, 0 if none.
func (s *Server) lastsave(_ context.Context, c *conn, _ [][]byte) {
	if s.cfg.Backups == nil {
		c.integer(0)
		return
	}
	t := s.cfg.Backups.LastSave()
	if t.IsZero() {
		c.integer(0)
		return
	}
	c.integer(t.Unix())
}
