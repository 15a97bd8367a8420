package resp

import (
	"strings"
)

// clientKill serves CLIENT KILL, as Redis 7 does. The old form, CLIENT
// KILL addr, closes the client at addr (ip:port) and answers OK, or "No
// such client"; the new form, CLIENT KILL filter value [filter value ...]
// with the filters ID, TYPE, ADDR, LADDR, USER and SKIPME (yes by
// default: the caller is spared), closes every client that matches them
// all and answers how many. A client that kills itself is closed once its
// reply is written.
func (s *Server) clientKill(c *conn, args [][]byte) {
	var (
		id            int64 // 0: any
		typ           = -1  // -1: any; else 0 normal, 1 pubsub, 2 master or replica
		addr, laddr   string
		byAddr, byLoc bool
		skipMe        = true
	)
	oldForm := len(args) == 3
	if oldForm {
		addr, byAddr, skipMe = string(args[2]), true, false
	} else {
		for i := 2; i < len(args); i += 2 {
			if i+1 >= len(args) {
				c.syntaxErr()
				return
			}
			v := args[i+1]
			switch strings.ToLower(string(args[i])) {
			case "id":
				n, ok := parseInt(v)
				if !ok || n < 1 {
					c.err("ERR client-id should be greater than 0")
					return
				}
				id = n
			case "type":
				switch strings.ToLower(string(v)) {
				case "normal":
					typ = 0
				case "pubsub":
					typ = 1
				case "master", "replica", "slave":
					typ = 2 // kv has none
				default:
					c.err("ERR Unknown client type '" + clip(v) + "'")
					return
				}
			case "addr":
				addr, byAddr = string(v), true
			case "laddr":
				laddr, byLoc = string(v), true
			case "user":
				if string(v) != "default" { // kv's one user
					c.err("ERR No such user '" + clip(v) + "'")
					return
				}
			case "skipme":
				switch {
				case equalFold(v, "yes"):
					skipMe = true
				case equalFold(v, "no"):
					skipMe = false
				default:
					c.syntaxErr()
					return
				}
			default:
				c.syntaxErr()
				return
			}
		}
	}

	killed := 0
	for _, o := range s.clients() {
		switch {
		case o == c && skipMe,
			o.killed.Load(), // killed already, about to be closed
			id != 0 && o.id != id,
			typ == 2,
			typ >= 0 && (o.subs.Load() > 0) != (typ == 1),
			byAddr && o.addr != addr,
			byLoc && o.laddr != laddr:
			continue
		}
		killed++
		if o == c {
			c.quit = true // once the reply is written, as QUIT
			continue
		}
		s.kill(o)
	}
	switch {
	case !oldForm:
		c.integer(int64(killed))
	case killed == 0:
		c.err("ERR No such client")
	default:
		c.ok()
	}
}

// kill closes another client's connection, from the goroutine of the
// command that asks for it: its commands under way finish, and it reads
// and writes no more. The event loop closes one of its own once the
// socket's shutdown wakes it; a client that the loop is handing to a
// goroutine of its own meanwhile is closed by the handoff (killed).
func (s *Server) kill(o *conn) {
	o.killed.Store(true)
	s.mu.Lock()
	nc, home := o.nc, o.home
	s.mu.Unlock()
	if nc != nil {
		_ = nc.Close()
		return
	}
	home.kill(o)
}
