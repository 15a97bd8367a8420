package resp

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/redcon"
)

// recordConn is a net.Conn that keeps what is written to it.
type recordConn struct {
	discardConn
	out *bytes.Buffer
}

func (r recordConn) Write(b []byte) (int, error) { return r.out.Write(b) }

// echoArgs is a command table of one command, rec, whose reply is its
// arguments as it received them: what the parser made of the request.
func echoArgs(s *Server) {
	s.cmds = map[string]*command{"rec": {name: "rec", arity: -1, fn: func(_ context.Context, c *conn, args [][]byte) {
		c.out = redcon.AppendArray(c.out, len(args))
		for _, a := range args {
			c.out = redcon.AppendBulk(c.out, a)
		}
	}}}
}

// readInPieces feeds data to a new connection of s in pieces of the given
// sizes (the rest in one, then as the read buffer takes it), as reads from
// a socket would bring it, and returns everything the connection answered,
// and whether it was closed for a protocol error. bufSize, when not 0, is
// the size of the connection's read buffer to start with: a small one
// makes it compact and grow under small requests.
func readInPieces(t *testing.T, ctx context.Context, s *Server, data []byte, sizes []int, bufSize int) (string, bool) {
	var out bytes.Buffer
	c := newConn(s, recordConn{out: &out})
	if bufSize > 0 {
		c.buf = make([]byte, bufSize)
	}
	defer c.close()
	for len(data) > 0 {
		n := len(data)
		if len(sizes) > 0 {
			n, sizes = min(max(sizes[0], 1), n), sizes[1:]
		}
		for piece := data[:n]; len(piece) > 0; {
			if !c.makeRoom() {
				return out.String() + string(c.out), true
			}
			k := copy(c.buf[c.end:], piece)
			c.end += k
			piece = piece[k:]
			switch c.runBuffered(ctx) {
			case stepRead:
			case stepClose:
				return out.String() + string(c.out), true
			default:
				t.Fatalf("a connection without the event loop and without a socket stopped for another reason")
			}
		}
		data = data[n:]
	}
	return out.String() + string(c.out), false
}

// FuzzRequestInPieces checks that a request's parse does not depend on how
// its bytes arrive: the replies and the outcome (closed or not) of data
// read in one piece and in the pieces cuts gives, into a read buffer of
// bs%64+1 bytes to start with (bs 0: the usual size), are the same. The
// connection reads on an incomplete request from where it stopped (see
// partialMore), across the buffer's compactions and growths, rather than
// from its start; this holds it to the parse of the whole request.
func FuzzRequestInPieces(f *testing.F) {
	for _, seed := range []struct{ data, cuts string }{
		{"*2\r\n$3\r\nrec\r\n$5\r\nhello\r\n", "\x01\x01\x01\x01\x01\x01\x01\x01\x01"},
		{"*3\r\n$3\r\nrec\r\n$0\r\n\r\n$2\r\nab\r\n*1\r\n$3\r\nrec\r\n", "\x05\x03\x07\x02"},
		{"*2\r\n$3\r\nrec\r\n$5\r\nhel", "\x0a\x02"},
		{"*2\r\n$3\r\nrec\r\n$x\r\nhello\r\n", "\x0f"},
		{"*2\r\n$3\r\nrec\r\n$5\r\nhelloXY", "\x11\x03"},
		{"*3\r\n$3\r\nrec\r\n$-1\r\n$1\r\na\r\n", "\x10\x01"},
		{"*2\r\n$3\r\nrec\r\n+OK\r\n", "\x0e\x01"},
		{"*1\r\n$3\r\nrec\n", "\x01\x01\x01\x01\x01"},
		{"*-1\r\n*1\r\n$3\r\nrec\r\n", "\x02\x02\x02"},
		{"rec a b\r\n*2\r\n$3\r\nrec\r\n$+1\r\nx\r\n", "\x03\x09\x06"},
		{"*2\r\n$3\r\nrec\r\n$01\r\nx\r\n", "\x12"},
		{"*2\r\n$3\r\nrec\r\n$99999999999999999999\r\n", "\x13"},
		{"*2\r\n$3\r\nPOST\r\n$1\r\nx\r\n", "\x04"},
	} {
		f.Add([]byte(seed.data), []byte(seed.cuts), uint8(0))
		f.Add([]byte(seed.data), []byte(seed.cuts), uint8(3))
	}
	s, ctx := commandLayer(f, Config{})
	echoArgs(s)
	f.Fuzz(func(t *testing.T, data, cuts []byte, bs uint8) {
		if len(data) > 1<<14 {
			return // larger requests meet the buffer's own limits, which differ by arrival
		}
		sizes := make([]int, len(cuts))
		for i, b := range cuts {
			sizes[i] = int(b)
		}
		bufSize := 0
		if bs > 0 {
			bufSize = int(bs%64) + 1
		}
		whole, wholeClosed := readInPieces(t, ctx, s, bytes.Clone(data), nil, 0)
		pieces, piecesClosed := readInPieces(t, ctx, s, bytes.Clone(data), sizes, bufSize)
		require.Equal(t, whole, pieces, "replies, in one piece and in pieces %v, buffer %d", sizes, bufSize)
		require.Equal(t, wholeClosed, piecesClosed, "closed, in one piece and in pieces %v, buffer %d", sizes, bufSize)
	})
}

var _ net.Conn = recordConn{}
