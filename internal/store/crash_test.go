package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// crashRounds is how many kill -9 rounds a crash test runs: 3, or
// KV_STORE_CRASH_ROUNDS.
func crashRounds(t *testing.T) int {
	if v := os.Getenv("KV_STORE_CRASH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		return n
	}
	return 3
}

// crashRound runs one child that writes until it is killed with SIGKILL at a
// random moment (after a random number of acknowledged writes), and returns
// the writes it acknowledged.
func crashRound(t *testing.T, dir string, policy Fsync, round string) map[[2]int]bool {
	t.Helper()
	cmd := childCmd(t, "crash", dir, policy.String(), round)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "child did not start")
	require.Equal(t, "ready", sc.Text())

	killAfter := 50 + rand.IntN(1500)
	var seen atomic.Int64
	acked := make(map[[2]int]bool)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		require.Len(t, f, 2, "bad line %q", sc.Text())
		g, _ := strconv.Atoi(f[0])
		i, _ := strconv.Atoi(f[1])
		acked[[2]int{g, i}] = true
		if seen.Add(1) == int64(killAfter) {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		}
	}
	err = cmd.Wait()
	require.Error(t, err, "the child must die by the kill")
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child ended with %v", err)
	return acked
}

// verifyCrash reopens dir and checks every acknowledged write of every round
// so far (want) and that nothing else is there. It returns how many
// acknowledged writes are missing.
func verifyCrash(t *testing.T, dir string, want map[string]map[[2]int]bool) (missing int) {
	t.Helper()
	logs := &logBuffer{}
	s := openT(t, dir, Options{Logger: logs.logger()})
	defer s.Close()
	all := loadAll(t, s)
	present := 0
	for round, acked := range want {
		for gi := range acked {
			b, k, v := crashKey(round, gi[0], gi[1])
			got, ok := all[b][k]
			if !ok {
				missing++
				continue
			}
			assert.Equal(t, string(v), string(got), "value of acknowledged %s", k)
		}
	}
	// Nothing that was never written: every stored pair is some writer's
	// i-th write, with its value, in its bucket, and at most one past that
	// writer's last acknowledged write (each writer has one write in flight).
	for b, pairs := range all {
		for k, v := range pairs {
			present++
			var round string
			var g, i int
			parts := strings.Split(k, "/")
			require.Len(t, parts, 3, "stray key %q in %q", k, b)
			round = parts[0]
			g, _ = strconv.Atoi(parts[1])
			i, _ = strconv.Atoi(parts[2])
			wb, wk, wv := crashKey(round, g, i)
			require.Equal(t, wb, b, "key %q in the wrong bucket", k)
			require.Equal(t, wk, k)
			require.Equal(t, string(wv), string(v), "value of %q", k)
			acked, ok := want[round]
			require.True(t, ok, "key %q of an unknown round", k)
			last := -1
			for gi := range acked {
				if gi[0] == g {
					last = max(last, gi[1])
				}
			}
			assert.LessOrEqual(t, i, last+1, "key %q was never written", k)
		}
	}
	t.Logf("reopened: %d pairs, %d acknowledged writes missing", present, missing)
	return missing
}

func runCrashTest(t *testing.T, policy Fsync) (acked, missing int) {
	dir := t.TempDir()
	want := make(map[string]map[[2]int]bool)
	for r := range crashRounds(t) {
		round := fmt.Sprint("r", r)
		got := crashRound(t, dir, policy, round)
		want[round] = got
		acked += len(got)
		m := verifyCrash(t, dir, want)
		missing += m
		// Writes lost in this round are no longer expected.
		if m > 0 {
			s := openT(t, dir, Options{})
			all := loadAll(t, s)
			require.NoError(t, s.Close())
			for gi := range got {
				b, k, _ := crashKey(round, gi[0], gi[1])
				if _, ok := all[b][k]; !ok {
					delete(got, gi)
				}
			}
		}
	}
	return acked, missing
}

// TestCrashAlways is the kill -9 test: with FsyncAlways every acknowledged
// write survives, with its value, and nothing else appears.
func TestCrashAlways(t *testing.T) {
	acked, missing := runCrashTest(t, FsyncAlways)
	t.Logf("fsync=always: %d acknowledged writes over %d rounds, %d lost", acked, crashRounds(t), missing)
	assert.Zero(t, missing)
}

// TestCrashEverySecAndNo measures the loss window of FsyncEverySec and
// FsyncNo under kill -9: a process kill, not a power cut. Every acknowledged
// write has reached the OS, which keeps it: none is lost. (Only a power cut
// or an OS crash loses the writes not yet synced: up to about a second
// under everysec; this test cannot cut the power.)
func TestCrashEverySecAndNo(t *testing.T) {
	for _, policy := range []Fsync{FsyncEverySec, FsyncNo} {
		t.Run(policy.String(), func(t *testing.T) {
			acked, missing := runCrashTest(t, policy)
			t.Logf("fsync=%s: %d acknowledged writes over %d rounds, %d lost to kill -9", policy, acked, crashRounds(t), missing)
			assert.Zero(t, missing)
		})
	}
}
