package main

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kvproject/kv/internal/store"
)

// checkpointName parses the name Save gives a checkpoint in
// <data-dir>/checkpoints: <unix seconds>, or <unix seconds>-<n> (n from 2)
// for a later one of the same second, in decimal without leading zeros.
// ok is false for any other name.
func checkpointName(name string) (secs, n uint64, ok bool) {
	s, suffix, two := strings.Cut(name, "-")
	secs, ok = decimal(s, 63)
	if !ok {
		return 0, 0, false
	}
	n = 1
	if two {
		if n, ok = decimal(suffix, 31); !ok || n < 2 {
			return 0, 0, false
		}
	}
	return secs, n, true
}

// checkpointDirName is the name Save gives the n-th checkpoint of second
// secs, which checkpointName parses.
func checkpointDirName(secs, n uint64) string {
	name := strconv.FormatUint(secs, 10)
	if n > 1 {
		name += "-" + strconv.FormatUint(n, 10)
	}
	return name
}

// decimal parses s as strconv.FormatUint writes a number of at most bits
// bits: digits alone, no leading zero.
func decimal(s string, bits int) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, bits)
	return v, err == nil && strconv.FormatUint(v, 10) == s
}

// prune deletes the oldest checkpoints in base beyond the keep newest
// (--keep-checkpoints): only the directories named as Save names them that
// hold a checkpoint's time (store.CheckpointTime), and never one that a
// store holds (a daemon started from it); what it cannot
// delete is logged and left. The caller holds c.mu: no Save adds one
// meanwhile.
func (c *checkpoints) prune(base string, keep int) {
	ents, err := os.ReadDir(base)
	if err != nil {
		c.log.Warn("kv: cannot list the checkpoints to keep the newest", "dir", base, "err", err)
		return
	}
	type saved struct {
		name    string
		secs, n uint64
	}
	var all []saved
	for _, e := range ents {
		secs, n, ok := checkpointName(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		// A name of digits alone says little (an operator's backup
		// named after a date, 20240101, has one): only a directory that
		// Save completed, which holds its time, is a checkpoint.
		if _, err := store.CheckpointTime(filepath.Join(base, e.Name())); err != nil {
			continue
		}
		all = append(all, saved{e.Name(), secs, n})
	}
	if len(all) <= keep {
		return
	}
	slices.SortFunc(all, func(a, b saved) int {
		return cmp.Or(cmp.Compare(a.secs, b.secs), cmp.Compare(a.n, b.n))
	})
	for _, s := range all[:len(all)-keep] {
		dir := filepath.Join(base, s.name)
		if err := store.InUse(dir); errors.Is(err, store.ErrLocked) {
			c.log.Warn("kv: an old checkpoint is in use by a store; kept", "dir", dir)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			c.log.Warn("kv: cannot delete an old checkpoint", "dir", dir, "err", err)
			continue
		}
		c.log.Info("kv: deleted an old checkpoint", "dir", dir, "keep_checkpoints", keep)
	}
}
