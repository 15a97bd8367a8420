package text

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/kvproject/kv/services"
)

// BenchmarkServerGet measures GET round trips over loopback, one
// connection, pipelined in batches of 64.
func BenchmarkServerGet(b *testing.B) {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	rootDone := root.ServeBackground(ctx)
	bk, err := root.Registry().Create(ctx, "b")
	if err != nil {
		b.Fatal(err)
	}
	if err := bk.Put("k", []byte("value")); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- New(Config{Registry: root.Registry()}).ServeListener(ctx, ln) }()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	req := strings.Repeat("GET b k\r\n", batch)
	reply := make([]byte, len("value\r\nOK\r\n")*batch)
	r := bufio.NewReader(nc)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		if _, err := io.WriteString(nc, req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, reply); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	nc.Close()
	cancel()
	<-srvDone
	<-rootDone
}
