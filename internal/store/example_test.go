package store_test

import (
	"fmt"
	"log"
	"os"
	"sync"

	"github.com/kvproject/kv/internal/store"
)

// A bucket applies a write to the store and to its memory under its write
// lock, and waits for durability after releasing it, so that concurrent
// writers share one fsync.
func ExampleStore_ApplyNoWait() {
	dir, err := os.MkdirTemp("", "kv-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(dir, store.Options{Fsync: store.FsyncAlways})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	var mu sync.Mutex // the bucket's write lock
	data := map[string][]byte{}

	mu.Lock()
	w, err := s.ApplyNoWait("users", store.Put("ada", []byte("lovelace")))
	if err != nil {
		mu.Unlock()
		log.Fatal(err) // not written: memory is left unchanged
	}
	data["ada"] = []byte("lovelace")
	mu.Unlock()
	if err := w.Wait(); err != nil {
		log.Fatal(err) // not durable: reload the bucket from the store
	}

	pairs, found, err := s.Load("users")
	fmt.Println(string(pairs["ada"]), found, err)
	// Output: lovelace true <nil>
}

// Recovery at start-up: one pass over the store rebuilds every bucket,
// empty ones included.
func ExampleStore_LoadAll() {
	dir, err := os.MkdirTemp("", "kv-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	_ = s.Apply("a", store.Put("k", []byte("v")))
	_ = s.CreateBucket("empty")
	_ = s.Close()

	s, err = store.Open(dir, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	_ = s.LoadAll(func(name string, pairs map[string][]byte) error {
		fmt.Println(name, len(pairs))
		return nil
	})
	// Output:
	// a 1
	// empty 0
}
