package resp

import (
	"strconv"
	"testing"
	"time"
)

// nopObserver counts nothing; it measures the Observer call's own cost.
type nopObserver struct{}

func (nopObserver) ObserveCommand(string, string, time.Duration, bool) {}
func (nopObserver) ObserveClients(string, int)                         {}

// BenchmarkDispatch measures one command through the command layer (lookup,
// checks, handler, reply encoding), without the socket.
func BenchmarkDispatch(b *testing.B) {
	for _, obs := range []struct {
		name string
		o    Observer
	}{{"", nil}, {"observed/", nopObserver{}}} {
		s, ctx := commandLayer(b, Config{Observer: obs.o})
		c := newConn(s, discardConn{})
		fields := make([][]byte, 1000)
		for i := range fields {
			fields[i] = []byte("f:" + strconv.Itoa(i))
		}
		for _, f := range fields {
			c.exec(ctx, [][]byte{[]byte("HSET"), []byte("h"), f, []byte("v")})
		}
		run := func(name string, args func(i int) [][]byte) {
			b.Run(obs.name+name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					c.out = c.out[:0]
					c.exec(ctx, args(i))
					i++
				}
			})
		}
		ping := [][]byte{[]byte("PING")}
		run("PING", func(int) [][]byte { return ping })
		hget := [][]byte{[]byte("HGET"), []byte("h"), nil}
		run("HGET", func(i int) [][]byte { hget[2] = fields[i%len(fields)]; return hget })
		hset := [][]byte{[]byte("HSET"), []byte("h"), nil, []byte("value")}
		run("HSET-existing", func(i int) [][]byte { hset[2] = fields[i%len(fields)]; return hset })
		miss := [][]byte{[]byte("hget"), []byte("nope"), []byte("f")}
		run("HGET-missing", func(int) [][]byte { return miss })
	}
}
