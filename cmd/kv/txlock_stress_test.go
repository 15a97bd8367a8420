package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestTxLockStress drives every front end at once against the registry's
// TxLock: Redis transactions (WATCH, MULTI, EXEC with HSET, HINCRBY, DEL,
// RENAME, FLUSHALL inside), plain Redis commands, DEBUG CRASH-BUCKET,
// SUBSCRIBE hand-offs, BGSAVE, line-protocol and HTTP clients, in memory
// and durable (--fsync always), on the event loop and on goroutines. It
// fails if the clients stop making progress (a deadlock: it dumps the
// goroutines) or if the daemon does not stop in time. It runs on demand:
// KV_STRESS=1 (15 seconds per configuration; KV_STRESS_SECONDS=n).
func TestTxLockStress(t *testing.T) {
	if os.Getenv("KV_STRESS") == "" {
		t.Skip("set KV_STRESS=1 to run the transactions' lock stress test")
	}
	secs, _ := strconv.Atoi(os.Getenv("KV_STRESS_SECONDS"))
	if secs <= 0 {
		secs = 15
	}
	for _, durable := range []bool{false, true} {
		for _, goroutines := range []bool{false, true} {
			name := fmt.Sprintf("durable=%v/goroutines=%v", durable, goroutines)
			t.Run(name, func(t *testing.T) {
				args := []string{"--text-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
					"--enable-debug-command", "--shutdown-timeout", "10s"}
				if durable {
					args = append(args, "--in-memory=false", "--data-dir", t.TempDir(), "--fsync", "always")
				}
				if goroutines {
					args = append(args, "--resp-goroutine-per-client")
				}
				stressOnce(t, time.Duration(secs)*time.Second, args)
			})
		}
	}
}

func stressOnce(t *testing.T, d time.Duration, args []string) {
	l, stop := serveAll(t, args...)
	ctx, cancel := context.WithCancel(context.Background()) // the workers'
	defer cancel()
	phase := time.NewTimer(d)
	defer phase.Stop()
	var progress atomic.Int64
	var ops [6]atomic.Int64
	var execs atomic.Int64
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	key := func() string { return keys[rand.IntN(len(keys))] }
	newRedis := func() *redis.Client {
		return redis.NewClient(&redis.Options{Addr: l.resp.String(), MaxRetries: -1, PoolSize: 2,
			ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second})
	}
	fatal := make(chan error, 64)
	var stopping atomic.Bool // the daemon stops under the clients: their errors are expected
	report := func(err error) {
		if stopping.Load() {
			return
		}
		select {
		case fatal <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	worker := func(kind int, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := fn(); err != nil {
					report(err)
					return
				}
				progress.Add(1)
				ops[kind].Add(1)
			}
		}()
	}
	// Redis transactions.
	for range 3 {
		rc := newRedis()
		defer rc.Close()
		worker(0, func() error {
			k, k2 := key(), key()
			err := rc.Watch(context.Background(), func(tx *redis.Tx) error {
				_, err := tx.TxPipelined(context.Background(), func(p redis.Pipeliner) error {
					p.HSet(context.Background(), k, "f", "v")
					p.HIncrBy(context.Background(), k, "n", 1)
					switch rand.IntN(20) {
					case 0:
						p.FlushAll(context.Background())
					case 1, 2, 3:
						p.Rename(context.Background(), k, k2)
					case 4, 5, 6:
						p.Del(context.Background(), k2)
					}
					return nil
				})
				if err == nil {
					execs.Add(1)
				}
				return err
			}, k, k2)
			if err != nil && !errors.Is(err, redis.TxFailedErr) && !isReplyErr(err) {
				return fmt.Errorf("transaction: %w", err)
			}
			return nil
		})
	}
	// Plain Redis commands.
	for range 2 {
		rc := newRedis()
		defer rc.Close()
		worker(1, func() error {
			bg := context.Background()
			var err error
			switch rand.IntN(12) {
			case 0:
				err = rc.Do(bg, "DEBUG", "CRASH-BUCKET", key()).Err()
			case 1:
				err = rc.Del(bg, key()).Err()
			case 2:
				err = rc.Rename(bg, key(), key()).Err()
			case 3:
				err = rc.Keys(bg, "*").Err()
			case 4:
				err = rc.Do(bg, "BGSAVE").Err()
			case 5, 6:
				err = rc.HGetAll(bg, key()).Err()
			default:
				err = rc.HIncrBy(bg, key(), "m", 1).Err()
			}
			if err != nil && err != redis.Nil && !isReplyErr(err) {
				return fmt.Errorf("redis: %w", err)
			}
			return nil
		})
	}
	// A pipelining Redis client (the event loop's flushAt path).
	{
		rc := newRedis()
		defer rc.Close()
		worker(2, func() error {
			bg := context.Background()
			_, err := rc.Pipelined(bg, func(p redis.Pipeliner) error {
				for i := range 200 {
					p.HSet(bg, key(), "p"+strconv.Itoa(i), strings.Repeat("x", 100))
				}
				p.Del(bg, key())
				return nil
			})
			if err != nil && !isReplyErr(err) {
				return fmt.Errorf("pipeline: %w", err)
			}
			return nil
		})
	}
	// SUBSCRIBE hand-offs.
	{
		worker(3, func() error {
			rc := newRedis()
			defer rc.Close()
			bg := context.Background()
			ps := rc.Subscribe(bg, "kv:created")
			if _, err := ps.ReceiveTimeout(bg, 30*time.Second); err != nil {
				ps.Close()
				return fmt.Errorf("subscribe: %w", err)
			}
			return ps.Close()
		})
	}
	// The line protocol.
	for range 2 {
		worker(4, func() error {
			nc, err := net.DialTimeout("tcp", l.text.String(), 10*time.Second)
			if err != nil {
				return err
			}
			defer nc.Close()
			rd := bufio.NewReader(nc)
			for range 50 {
				k := key()
				var cmd string
				lines := 1
				switch rand.IntN(4) {
				case 0:
					cmd = "CREATE " + k
				case 1:
					cmd = "PUT " + k + " t v"
				case 2:
					cmd, lines = "GET "+k+" t", 0 // value then status, or status alone
				default:
					cmd = "DELETE " + k + " t"
				}
				_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
				if _, err := io.WriteString(nc, cmd+"\r\n"); err != nil {
					return fmt.Errorf("text: %w", err)
				}
				if lines == 0 {
					// GET: a value line then OK, or a status alone.
					first, err := rd.ReadString('\n')
					if err != nil {
						return fmt.Errorf("text %s: %w", cmd, err)
					}
					if s := strings.TrimSpace(first); s == "v" || s == "" {
						if _, err := rd.ReadString('\n'); err != nil {
							return fmt.Errorf("text %s: %w", cmd, err)
						}
					}
				} else if _, err := rd.ReadString('\n'); err != nil {
					return fmt.Errorf("text %s: %w", cmd, err)
				}
				progress.Add(1)
			}
			return nil
		})
	}
	// HTTP.
	hc := &http.Client{Timeout: 60 * time.Second}
	for range 2 {
		worker(5, func() error {
			k := key()
			base := "http://" + l.http.String() + "/v1/buckets/" + k
			var req *http.Request
			switch rand.IntN(5) {
			case 0:
				req, _ = http.NewRequest(http.MethodPut, base, nil)
			case 1:
				req, _ = http.NewRequest(http.MethodDelete, base, nil)
			case 2:
				req, _ = http.NewRequest(http.MethodPut, base+"/keys/h", strings.NewReader("v"))
			case 3:
				req, _ = http.NewRequest(http.MethodDelete, base+"/keys/h", nil)
			default:
				req, _ = http.NewRequest(http.MethodGet, base+"/keys/h", nil)
			}
			res, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("http %s %s: %w", req.Method, req.URL, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return nil
		})
	}

	// The watchdog: progress every few seconds, or a dump.
	last, lastAt := int64(-1), time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var failed error
loop:
	for {
		select {
		case err := <-fatal:
			failed = err
			break loop
		case <-phase.C:
			break loop
		case now := <-tick.C:
			if p := progress.Load(); p != last {
				last, lastAt = p, now
			} else if now.Sub(lastAt) > 15*time.Second {
				failed = errors.New("no progress for 15 s")
				break loop
			}
		}
	}
	if failed != nil {
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		t.Fatalf("stress: %v", failed)
	}
	// The daemon stops with every client still at work: EXECs waiting
	// for the lock, commands holding it.
	stopping.Store(true)
	began := time.Now()
	code := make(chan int, 1)
	go func() { code <- stop() }()
	select {
	case c := <-code:
		require.Equal(t, exitOK, c)
		t.Logf("stopped in %v", time.Since(began))
	case <-time.After(25 * time.Second):
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		t.Fatal("the daemon did not stop in time")
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	require.Eventually(t, func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}, 70*time.Second, 50*time.Millisecond, "workers did not finish")
	for i, n := range []string{"transactions", "redis", "pipeline", "subscribe", "text", "http"} {
		t.Logf("%s: %d ops", n, ops[i].Load())
	}
	t.Logf("EXEC that ran: %d", execs.Load())
}

// isReplyErr reports whether err is an error reply from the server (not a
// network error or a timeout).
func isReplyErr(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
