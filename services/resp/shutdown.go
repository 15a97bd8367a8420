package resp

import (
	"context"
	"errors"
	"strings"
)

// errNoSaveInMemory is why SHUTDOWN SAVE cannot save without a store.
var errNoSaveInMemory = errors.New("kv runs in memory only: there is no data directory to write a checkpoint to")

// shutdownCmd serves SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT], as Redis
// 7 does: the host stops (Config.Shutdown), and the client that asked is
// closed without a reply, which clients take for success (redis-cli exits
// 0; go-redis's Shutdown returns nil on the end of the connection).
//
// SAVE writes a checkpoint first, as SAVE does; if it fails, the server
// goes on and the client is told "Errors trying to SHUTDOWN. Check logs."
// unless FORCE says to stop anyway. Without SAVE nothing is written
// beyond what the stop does (kv has no save points; the durable store is
// closed cleanly, as Redis fsyncs its AOF), and NOSAVE is the same. NOW is
// accepted: kv has no replicas to wait for. ABORT cancels a shutdown that
// waits for replicas, which kv never has, so it is answered as Redis
// answers it when none waits.
func (s *Server) shutdownCmd(_ context.Context, c *conn, args [][]byte) {
	var save, nosave, now, force, abort bool
	for _, a := range args[1:] {
		switch strings.ToLower(string(a)) {
		case "save":
			save = true
		case "nosave":
			nosave = true
		case "now":
			now = true
		case "force":
			force = true
		case "abort":
			abort = true
		default:
			c.err("ERR syntax error")
			return
		}
	}
	if abort && (save || nosave || now || force) || save && nosave {
		c.err("ERR syntax error")
		return
	}
	if abort {
		c.err("ERR No shutdown in progress.")
		return
	}
	if s.cfg.Shutdown == nil {
		c.err("ERR SHUTDOWN is off: the program that runs this server does not let its clients stop it")
		return
	}
	if save {
		err := errNoSaveInMemory
		dir := ""
		if s.cfg.Backups != nil {
			dir, err = s.checkpoint()
			s.saved(err)
		}
		switch {
		case err != nil && !force:
			s.log.Error("resp: SHUTDOWN SAVE: the checkpoint failed; not stopping (FORCE stops anyway)",
				"client", c.addr, "err", err)
			c.err("ERR Errors trying to SHUTDOWN. Check logs.")
			return
		case err != nil:
			s.log.Warn("resp: SHUTDOWN SAVE FORCE: the checkpoint failed; stopping anyway", "client", c.addr, "err", err)
		default:
			s.log.Info("resp: SHUTDOWN SAVE: checkpoint written", "dir", dir, "client", c.addr)
		}
	}
	s.log.Warn("resp: SHUTDOWN: a client asked the server to stop", "client", c.addr, "id", c.id)
	c.quit = true // closed with no reply, as Redis's exit closes it
	s.cfg.Shutdown()
}
