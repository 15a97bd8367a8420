package resp

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/registry"
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
			c.do(ctx, [][]byte{[]byte("HSET"), []byte("h"), f, []byte("v")})
		}
		run := func(name string, args func(i int) [][]byte) {
			b.Run(obs.name+name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					c.out = c.out[:0]
					c.do(ctx, args(i))
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

// BenchmarkHScanStep measures one HSCAN step (COUNT 10) over a hash of
// 100,000 fields: with the bucket's scan index kept between steps (no
// field added), and with a field added and another deleted before each
// step (the index takes the new keys in, and is rebuilt now and then),
// against two baselines in the same run: what
// HSCAN did before the index (one pass over the hash keeping only the page,
// registry.ScanSelector) and before that (copying every pair and sorting
// every key at each step).
func BenchmarkHScanStep(b *testing.B) {
	s, ctx := commandLayer(b, Config{})
	c := newConn(s, discardConn{})
	const n = 100000
	for i := range n {
		c.do(ctx, [][]byte{[]byte("HSET"), []byte("big"), []byte("field:" + strconv.Itoa(i)), []byte("value")})
	}
	c.out = c.out[:0]
	bk, _ := s.reg.Lookup("big")
	hscan := func(b *testing.B, before func(i int)) {
		b.ReportAllocs()
		args := [][]byte{[]byte("HSCAN"), []byte("big"), nil, []byte("COUNT"), []byte("10")}
		cursor := uint64(0)
		i := 0
		for b.Loop() {
			before(i)
			i++
			args[2] = strconv.AppendUint(args[2][:0], cursor, 10)
			c.out = c.out[:0]
			c.do(ctx, args)
			cursor = hscanNext(b, c.out)
		}
	}
	b.Run("index", func(b *testing.B) { hscan(b, func(int) {}) })
	b.Run("index-churn", func(b *testing.B) {
		last := -1
		hscan(b, func(i int) {
			last = i
			if err := bk.Put("added:"+strconv.Itoa(i), []byte("v")); err != nil {
				b.Fatal(err)
			}
			if i > 0 {
				if _, err := bk.Delete("added:" + strconv.Itoa(i-1)); err != nil {
					b.Fatal(err)
				}
			}
		})
		if last >= 0 {
			_, _ = bk.Delete("added:" + strconv.Itoa(last))
		}
	})
	b.Run("selector", func(b *testing.B) {
		b.ReportAllocs()
		cursor := uint64(0)
		for b.Loop() {
			_ = bk.View(func(tx *bucket.Tx) error {
				sel := registry.NewScanSelector(cursor, 10)
				_ = tx.ForEach(func(k string, _ []byte) error {
					sel.Offer(k)
					return nil
				})
				var page []string
				page, cursor = sel.Page()
				for _, k := range page {
					_, _ = tx.Get(k)
				}
				return nil
			})
		}
	})
	b.Run("copy-and-sort", func(b *testing.B) {
		b.ReportAllocs()
		cursor := uint64(0)
		for b.Loop() {
			type item struct {
				h uint64
				k string
				v []byte
			}
			var rest []item
			_ = bk.View(func(tx *bucket.Tx) error {
				return tx.ForEach(func(k string, v []byte) error {
					if h := registry.ScanHash(k); h >= cursor {
						rest = append(rest, item{h, k, bytes.Clone(v)})
					}
					return nil
				})
			})
			slices.SortFunc(rest, func(a, b item) int { return cmp.Compare(a.h, b.h) })
			cursor = 0
			if len(rest) > 10 {
				cursor = rest[9].h + 1
			}
		}
	})
}

// hscanNext reads the cursor out of an HSCAN reply.
func hscanNext(b *testing.B, reply []byte) uint64 {
	// *2\r\n$<len>\r\n<cursor>\r\n...
	parts := bytes.SplitN(reply, []byte("\r\n"), 4)
	if len(parts) < 3 {
		b.Fatalf("bad HSCAN reply %q", reply)
	}
	n, err := strconv.ParseUint(string(parts[2]), 10, 64)
	if err != nil {
		b.Fatalf("bad HSCAN cursor in %q", reply)
	}
	return n
}

// BenchmarkWholeHashReads measures HGETALL and HKEYS, which list a hash in
// cursor order (its sorted scan index), on hashes of 10 and 100 fields,
// serial and parallel, against their baseline in the same run: one pass
// over the map in Go's random order, as they did before they had an order.
func BenchmarkWholeHashReads(b *testing.B) {
	s, ctx := commandLayer(b, Config{})
	for _, n := range []int{10, 100} {
		c := newConn(s, discardConn{})
		key := []byte("h" + strconv.Itoa(n))
		for i := range n {
			c.do(ctx, [][]byte{[]byte("HSET"), key, []byte("field:" + strconv.Itoa(i)), []byte("value")})
		}
		bk, _ := s.reg.Lookup(string(key))
		for _, cmd := range []string{"HGETALL", "HKEYS"} {
			b.Run(fmt.Sprintf("%s/%d/ordered", cmd, n), func(b *testing.B) {
				b.ReportAllocs()
				args := [][]byte{[]byte(cmd), key}
				b.RunParallel(func(pb *testing.PB) {
					c := newConn(s, discardConn{})
					for pb.Next() {
						c.out = c.out[:0]
						c.do(ctx, args)
					}
				})
			})
			b.Run(fmt.Sprintf("%s/%d/map-order", cmd, n), func(b *testing.B) {
				b.ReportAllocs()
				withValues := cmd == "HGETALL"
				b.RunParallel(func(pb *testing.PB) {
					c := newConn(s, discardConn{})
					for pb.Next() {
						c.out = c.out[:0]
						var keys []string
						var values [][]byte
						_ = bk.View(func(tx *bucket.Tx) error {
							return tx.ForEach(func(k string, v []byte) error {
								keys = append(keys, k)
								if withValues {
									values = append(values, v)
								}
								return nil
							})
						})
						c.array(len(keys) + len(values))
						for i, k := range keys {
							c.bulkString(k)
							if withValues {
								c.bulk(values[i])
							}
						}
					}
				})
			})
		}
	}
}
