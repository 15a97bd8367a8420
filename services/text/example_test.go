package text_test

import (
	"bufio"
	"context"
	"fmt"
	"net"

	"github.com/kvproject/kv/services"
	"github.com/kvproject/kv/services/text"
)

// A tree, the line protocol on a loopback port, and the guide's first
// exchange over a raw connection.
func Example() {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	rootDone := root.ServeBackground(ctx)

	srv := text.New(text.Config{Registry: root.Registry()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.ServeListener(ctx, ln) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	r := bufio.NewReader(conn)
	for _, line := range []string{"CREATE shopping", "PUT shopping milk 1", "GET shopping milk", "GET nowhere milk"} {
		fmt.Fprintf(conn, "%s\r\n", line)
		reply, _ := r.ReadString('\n')
		fmt.Printf("%-20s -> %q\n", line, reply)
		if reply == "1\r\n" {
			reply, _ = r.ReadString('\n')
			fmt.Printf("%-20s -> %q\n", "", reply)
		}
	}
	conn.Close()
	cancel()
	<-srvDone
	<-rootDone
	// Output:
	// CREATE shopping      -> "OK\r\n"
	// PUT shopping milk 1  -> "OK\r\n"
	// GET shopping milk    -> "1\r\n"
	//                      -> "OK\r\n"
	// GET nowhere milk     -> "NOT FOUND\r\n"
}
