package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// The test binary re-executed with envChild set plays a child process:
//
//	lock <dir>                  try to Open dir, print "opened" or "error: ..."
//	check <dir>                 Check dir, print "checked" or "error: ..."
//	inuse-once <dir>            ask InUse, print "free" or "error: ..."
//	inuse <dir>                 ask InUse again and again until stdin closes
//	crash <dir> <policy> <round> write from several goroutines and print each
//	                            acknowledged write, until killed
const envChild = "KV_STORE_TEST_CHILD"

func runChild() bool {
	spec := os.Getenv(envChild)
	if spec == "" {
		return false
	}
	args := strings.Split(spec, "\x1f")
	switch args[0] {
	case "lock":
		s, err := Open(args[1], Options{})
		if err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(0)
		}
		fmt.Println("opened")
		_ = s.Close()
		os.Exit(0)
	case "check":
		if _, err := Check(args[1]); err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(0)
		}
		fmt.Println("checked")
		os.Exit(0)
	case "inuse-once":
		if err := InUse(args[1]); err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(0)
		}
		fmt.Println("free")
		os.Exit(0)
	case "inuse":
		// Ask InUse until stdin closes, as a second kv starting does.
		done := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
		fmt.Println("ready")
		for {
			select {
			case <-done:
				os.Exit(0)
			default:
			}
			_ = InUse(args[1])
		}
	case "crash":
		policy, err := ParseFsync(args[2])
		if err != nil {
			panic(err)
		}
		crashChild(args[1], policy, args[3])
	}
	panic("unknown child " + spec)
}

// childCmd returns a command that re-executes the test binary as a child.
func childCmd(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+strings.Join(args, "\x1f"))
	cmd.Stderr = os.Stderr
	return cmd
}

const crashWriters = 8

// crashKey is what writer g writes in its i-th write of a round: bucket,
// key and value, all derived from (round, g, i), so that the parent can tell
// a real write from anything else.
func crashKey(round string, g, i int) (bucket, key string, value []byte) {
	return fmt.Sprintf("b%d", g%3), fmt.Sprintf("%s/%d/%d", round, g, i), []byte(fmt.Sprintf("v%s/%d/%d", round, g, i))
}

func crashChild(dir string, policy Fsync, round string) {
	s, err := Open(dir, Options{Fsync: policy})
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	fmt.Println("ready")
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Go(func() {
			for i := 0; ; i++ {
				b, k, v := crashKey(round, g, i)
				if err := s.Apply(b, Put(k, v)); err != nil {
					fmt.Fprintf(os.Stderr, "child: %v\n", err)
					os.Exit(1)
				}
				// One write(2) per acknowledged write, so that the
				// parent has it even if we die right after.
				mu.Lock()
				fmt.Fprintf(out, "%d %d\n", g, i)
				_ = out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
