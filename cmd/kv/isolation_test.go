package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Redis transaction is isolated from every front end, not only from
// other Redis clients: while transactions set a field to 0 and raise it
// to 199 one HINCRBY at a time, line-protocol and HTTP clients that read
// it see only a transaction's end (199) or their own write ("x"), and
// their writes of "x" never land between a transaction's commands (an
// HINCRBY after one would fail: "hash value is not an integer").
func TestTransactionsIsolatedAcrossFrontEnds(t *testing.T) {
	l, stop := serveAll(t, "--text-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: l.resp.String()})
	defer rc.Close()
	const steps = 199
	require.NoError(t, rc.HSet(ctx, "c", "n", steps).Err())

	done := make(chan struct{})
	var wg sync.WaitGroup
	seen := func(who, v string) error {
		if v != fmt.Sprint(steps) && v != "x" {
			return fmt.Errorf("%s read %q: a transaction half done", who, v)
		}
		return nil
	}
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { // the line protocol
		defer wg.Done()
		nc, err := net.Dial("tcp", l.text.String())
		if err != nil {
			errs <- err
			return
		}
		defer nc.Close()
		rd := bufio.NewReader(nc)
		errs <- untilDone(done, func() error {
			if _, err := io.WriteString(nc, "GET c n\r\nPUT c n x\r\n"); err != nil {
				return err
			}
			var lines [3]string
			for i := range lines {
				if lines[i], err = rd.ReadString('\n'); err != nil {
					return err
				}
			}
			return seen("line protocol", strings.TrimSpace(lines[0]))
		})
	}()
	go func() { // HTTP
		defer wg.Done()
		url := "http://" + l.http.String() + "/v1/buckets/c/keys/n"
		errs <- untilDone(done, func() error {
			res, err := http.Get(url)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				return err
			}
			if err := seen("HTTP", string(body)); err != nil {
				return err
			}
			req, err := http.NewRequest(http.MethodPut, url, strings.NewReader("x"))
			if err != nil {
				return err
			}
			if res, err = http.DefaultClient.Do(req); err != nil {
				return err
			}
			res.Body.Close()
			return nil
		})
	}()

	for range 40 {
		cmds, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, "c", "n", 0)
			for range steps {
				p.HIncrBy(ctx, "c", "n", 1)
			}
			return nil
		})
		require.NoError(t, err, "a write of another front end landed inside the transaction")
		require.Len(t, cmds, steps+1)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, exitOK, stop())
}

// HTTP's bucket list is isolated from transactions too: while
// transactions create two buckets together and delete them together, a
// list shows both or neither.
func TestBucketListIsolatedFromTransactions(t *testing.T) {
	l, stop := serveAll(t, "--http-addr", "127.0.0.1:0")
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: l.resp.String()})
	defer rc.Close()
	done := make(chan struct{})
	listed := make(chan error, 1)
	go func() {
		url := "http://" + l.http.String() + "/v1/buckets"
		lists := 0
		err := untilDone(done, func() error {
			res, err := http.Get(url)
			if err != nil {
				return err
			}
			var page struct {
				Buckets []struct{ Name string } `json:"buckets"`
			}
			err = json.NewDecoder(res.Body).Decode(&page)
			res.Body.Close()
			if err != nil {
				return err
			}
			lists++
			if n := len(page.Buckets); n != 0 && n != 2 {
				return fmt.Errorf("a list saw %d of the 2 buckets a transaction creates and deletes together", n)
			}
			return nil
		})
		if err == nil && lists == 0 {
			err = errors.New("no list ran")
		}
		listed <- err
	}()
	for range 100 {
		_, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, "a", "f", 1)
			p.HSet(ctx, "b", "f", 1)
			return nil
		})
		require.NoError(t, err)
		_, err = rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, "a")
			p.Del(ctx, "b")
			return nil
		})
		require.NoError(t, err)
	}
	close(done)
	require.NoError(t, <-listed)
	assert.Equal(t, exitOK, stop())
}

// untilDone runs round again and again until done is closed, and returns
// nil then, or round's error as soon as it fails.
func untilDone(done <-chan struct{}, round func() error) error {
	for {
		select {
		case <-done:
			return nil
		default:
		}
		if err := round(); err != nil {
			return err
		}
	}
}
