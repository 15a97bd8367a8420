package services_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/services"
)

// A host adds kv's root to its own suture tree and uses the registry
// in-process.
func Example_embedding() {
	kv := services.New(services.Config{})
	// The host waits for kv's stop (suture's default waits 10 s a child).
	host := suture.New("host", suture.Spec{Timeout: kv.StopTimeout()})
	host.Add(kv)

	ctx, cancel := context.WithCancel(context.Background())
	done := host.ServeBackground(ctx)
	defer func() { cancel(); <-done }() // stopping the host stops kv and every bucket

	shopping, err := kv.Registry().Create(ctx, "shopping")
	if err != nil {
		fmt.Println("create:", err)
		return
	}
	if err := shopping.Put("milk", []byte("3")); err != nil {
		fmt.Println("put:", err)
		return
	}
	milk, err := shopping.Get("milk")
	fmt.Printf("milk=%s err=%v\n", milk, err)
	// Output: milk=3 err=<nil>
}

// Subscribers receive each bucket's Created and Exited, in order.
func Example_subscribe() {
	kv := services.New(services.Config{})
	received := make(chan events.Event, 16)
	sub, err := kv.Events().Subscribe(events.SubscribeOptions{Name: "example"}, func(ev events.Event) {
		received <- ev
	})
	if err != nil {
		fmt.Println("subscribe:", err)
		return
	}
	defer sub.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := kv.ServeBackground(ctx)
	defer func() { cancel(); <-done }()
	if _, err := kv.Registry().Create(ctx, "shopping"); err != nil {
		fmt.Println("create:", err)
		return
	}
	if err := kv.Registry().Delete(ctx, "shopping"); err != nil {
		fmt.Println("delete:", err)
		return
	}
	fmt.Println(<-received)
	fmt.Println(<-received)
	// Output:
	// #1 created "shopping" (id 1)
	// #2 exited "shopping" (id 1): normal
}

// An atomic read-modify-write runs in the bucket's context, like the
// Agent's get_and_update.
func Example_update() {
	kv := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := kv.ServeBackground(ctx)
	defer func() { cancel(); <-done }()

	b, err := kv.Registry().Create(ctx, "counters")
	if err != nil {
		fmt.Println("create:", err)
		return
	}
	for range 3 {
		err := b.Update(func(tx *bucket.Tx) error {
			n := byte('0')
			if v, err := tx.Get("visits"); err == nil {
				n = v[0]
			}
			return tx.Put("visits", []byte{n + 1})
		})
		if err != nil {
			fmt.Println("update:", err)
			return
		}
	}
	v, _ := b.Get("visits")
	fmt.Printf("visits=%s\n", v)
	// Output: visits=3
}

// A host keeps its buckets on disk: the data outlives the tree, and comes
// back in the next one built on the same directory.
func Example_durable() {
	dir, err := os.MkdirTemp("", "kv-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	run := func(use func(ctx context.Context, kv *services.Root) error) (err error) {
		data, err := services.OpenDataDir(dir, services.DataDirOptions{Fsync: services.FsyncAlways})
		if err != nil {
			return err
		}
		kv := services.New(services.Config{DataDir: data})
		ctx, cancel := context.WithCancel(context.Background())
		done := kv.ServeBackground(ctx)
		err = use(ctx, kv)
		cancel()
		if stopped := <-done; !errors.Is(stopped, context.Canceled) {
			err = errors.Join(err, stopped)
		}
		return errors.Join(err, data.Close()) // once the tree has stopped
	}

	err = run(func(ctx context.Context, kv *services.Root) error {
		shopping, err := kv.Registry().Create(ctx, "shopping")
		if err != nil {
			return err
		}
		return shopping.Put("milk", []byte("3")) // on disk once Put returns
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = run(func(ctx context.Context, kv *services.Root) error {
		shopping, err := kv.Registry().Create(ctx, "shopping") // loaded from disk
		if err != nil {
			return err
		}
		milk, err := shopping.Get("milk")
		fmt.Printf("after a restart: milk=%s err=%v\n", milk, err)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: after a restart: milk=3 err=<nil>
}
