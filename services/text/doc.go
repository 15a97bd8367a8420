// Package text is kv's line-protocol front end: the KVServer of the Elixir
// guide (chapter "Task and gen_tcp") as a suture.Service.
//
// # The protocol
//
// A client sends lines; each line is one command and gets one reply. Tokens
// are separated by runs of white space (Unicode's, but for the
// non-breaking spaces, which the guide's String.split/1 keeps inside
// tokens) and verbs are case-sensitive:
//
//	CREATE bucket        -> OK
//	PUT bucket key value -> OK
//	GET bucket key       -> the value, then OK (an empty line when the key is absent)
//	DELETE bucket key    -> OK (also when the key is absent)
//
// A command on a bucket that does not exist gets NOT FOUND. An unknown verb,
// a known verb with the wrong number of arguments, or an empty line gets
// UNKNOWN COMMAND. Anything else that goes wrong gets ERROR: an invalid
// bucket name, a registry that has stopped, a value stored by another
// protocol that holds "\r" or "\n" (GET cannot carry it on one line), a line
// that is too long. Every reply line ends in "\r\n"; requests may end in
// "\n" or "\r\n". A connection serves any number of commands, and a client
// may pipeline them. Values cannot hold white space, since they are tokens.
//
// [Parse] is the parser, a pure function; [Server] runs it on connections.
//
// # Limits
//
// A line may hold up to Config.MaxLineBytes bytes (64 KiB by default), not
// counting its "\n". A longer line gets ERROR; the server reads the rest of
// it up to its "\n" without keeping it, and the connection stays usable:
// the next line is the next command. Bytes after the last "\n" when the
// client closes are dropped.
//
// At most Config.MaxConns connections (1024) are served at once; one more
// gets ERROR and is closed. A connection idle for Config.IdleTimeout (5
// minutes) between lines, or that does not take its replies for
// Config.WriteTimeout (30 seconds), is closed.
//
// # Authentication
//
// With Config.Password set, a connection starts unauthenticated: every line
// but AUTH gets ERROR. "AUTH password" with the right password gets OK and
// unlocks the connection; a wrong password gets ERROR and the connection is
// closed. The comparison takes the same time whatever the password. AUTH on
// a server without a password gets ERROR.
//
// A line whose first word is "POST" or "Host:", in any case, closes the
// connection without a reply: it belongs to an HTTP request, which a web
// page can make a browser send to this port, with command lines in its
// body (cross-protocol scripting; Redis closes such connections too).
//
// # Metrics
//
// With Config.Observer set (a *metrics.Metrics), each line is reported with
// protocol "text" and command create, get, put, delete, auth, unknown (a
// line that does not parse), too_long or http (a line closed as above); a
// reply other than OK or a value
// (NOT FOUND, UNKNOWN COMMAND, ERROR) counts as failed. Connections are
// reported as they open and close.
//
// # Connections
//
// Each connection runs on its own goroutine. A panic while serving one
// (which would be a bug) is logged with its stack and closes that
// connection alone. Stopping the server (its context ends) closes the
// listener; each connection then reads no more, runs the command in flight
// and the whole lines it had already read, writes their replies and
// closes: its side first, then, after dropping (for up to 100 ms) what the
// client sent behind, the socket, so that the client gets its replies and
// the end of the stream rather than a reset (a wrong password's close does
// the same). Commands run on a context that the stop does not cancel, so that
// they are carried out rather than failed, until Config.ShutdownTimeout (5
// seconds): the connections still busy then are closed, and their
// commands' context cancelled. The stop returns once every connection's
// goroutine has.
//
// Each command reads or changes its bucket under the registry's TxLock,
// shared (a PUT's or DELETE's wait for the disk comes after), so that it
// never lands between the commands of a Redis transaction.
package text
