package main

import (
	"os"
	"os/exec"
	"testing"
)

// The README has the lock check work "on Linux, macOS and the BSDs": kv
// builds for each (FreeBSD's and DragonFly's syscall.Rlimit has int64
// fields, where the others' are uint64: kv did not build there).
//
// On demand (KV_CROSS_VET=1): each system's standard library and
// dependencies are compiled first, about 3 minutes a system on a cold
// build cache, 15 minutes for the six, which CI cannot afford on every
// run.
func TestBuildsOnTheSystemsTheREADMENames(t *testing.T) {
	if os.Getenv("KV_CROSS_VET") == "" {
		t.Skip("set KV_CROSS_VET=1 to type-check kv for every system the README names")
	}
	for _, goos := range []string{"linux", "darwin", "freebsd", "netbsd", "openbsd", "dragonfly"} {
		t.Run(goos, func(t *testing.T) {
			vet := exec.Command("go", "vet", ".", "../../internal/store")
			vet.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64")
			if out, err := vet.CombinedOutput(); err != nil {
				t.Fatalf("GOOS=%s go vet: %v\n%s", goos, err, out)
			}
		})
	}
}
