package text

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzSocket sends arbitrary bytes to a real listener: line framing, long
// lines, the AUTH state, the HTTP-request guard and the replies. The
// server must answer and close when the client does, never hang or crash,
// and keep serving other clients. Two servers: without a password, and
// with one (the input may or may not authenticate).
func FuzzSocket(f *testing.F) {
	open := start(f, Config{MaxLineBytes: 256, IdleTimeout: 10 * time.Second})
	locked := start(f, Config{MaxLineBytes: 256, IdleTimeout: 10 * time.Second, Password: "pw"})
	for _, ex := range guideExchange {
		f.Add([]byte(ex.send), false)
	}
	for _, s := range []string{
		"CREATE b\nPUT b k v\nGET b k\nDELETE b k\n", "AUTH pw\r\nCREATE b\r\n", "AUTH nope\r\nCREATE b\r\n",
		strings.Repeat("x", 300) + "\r\nCREATE b\r\n", strings.Repeat("y", 1000), "PUT b k\r\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\n\r\nCREATE b\r\n", "GET b\x00k\r\n", "\r\n\n\r\n", "CREATE \xff\xfe\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, withPassword bool) {
		srv := open
		if withPassword {
			srv = locked
		}
		nc, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		go func() {
			_, _ = nc.Write(data)
			_ = nc.(*net.TCPConn).CloseWrite()
		}()
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, nc); err != nil {
			t.Fatalf("the server neither answered nor closed: %v", err)
		}
		// Another client is served as usual.
		other, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		_ = other.SetDeadline(time.Now().Add(10 * time.Second))
		req, want := "CREATE ctl\r\n", "OK\r\n"
		if withPassword {
			req, want = "AUTH pw\r\nCREATE ctl\r\n", "OK\r\nOK\r\n"
		}
		if _, err := io.WriteString(other, req); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(other, buf); err != nil || string(buf) != want {
			t.Fatalf("after the input: %q, %v", buf, err)
		}
	})
}
