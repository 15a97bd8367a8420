package bucket

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// Version changes with every write that changes the pairs, in memory and
// in a store, and with nothing else: not a read, not a delete of a missing
// key, not an Update that wrote nothing, failed, panicked or whose write
// the store refused.
func TestVersion(t *testing.T) {
	faults := &store.Faults{}
	st := openStore(t, faults)
	for _, kind := range []struct {
		name string
		new  func() *Bucket
	}{
		{"memory", func() *Bucket { return New("m", 1) }},
		{"store", func() *Bucket { return Restore("d", 1, nil, st) }},
	} {
		t.Run(kind.name, func(t *testing.T) {
			b := kind.new()
			require.NoError(t, b.Put("k", []byte("0")))
			for _, tc := range []struct {
				name    string
				op      func() error
				changed bool
			}{
				{"Put", func() error { return b.Put("k", []byte("1")) }, true},
				{"Put of the same value", func() error { return b.Put("k", []byte("1")) }, true},
				{"Set", func() error { _, err := b.Set("n", []byte("1")); return err }, true},
				{"SetNoWait", func() error {
					_, p, err := b.SetNoWait("n", []byte("2"))
					if err != nil {
						return err
					}
					return p.Wait()
				}, true},
				{"Delete", func() error { _, err := b.Delete("n"); return err }, true},
				{"DeleteNoWait", func() error {
					require.NoError(t, b.Put("d", []byte("1")))
					before, err := b.Version()
					require.NoError(t, err)
					old, p, err := b.DeleteNoWait("d")
					require.NoError(t, err)
					assert.Equal(t, "1", string(old))
					after, err := b.Version()
					require.NoError(t, err)
					assert.Equal(t, before+1, after)
					require.NoError(t, p.Wait())
					_, err = b.Get("d")
					assert.ErrorIs(t, err, ErrNotFound)
					_, p, err = b.DeleteNoWait("d")
					assert.ErrorIs(t, err, ErrNotFound)
					assert.True(t, p.IsZero())
					return nil
				}, true},
				{"Delete of a missing key", func() error { _, err := b.Delete("n"); assert.ErrorIs(t, err, ErrNotFound); return nil }, false},
				{"Get", func() error { _, err := b.Get("k"); return err }, false},
				{"View", func() error { return b.View(func(tx *Tx) error { return nil }) }, false},
				{"Update that writes", func() error { return b.Update(func(tx *Tx) error { return tx.Put("u", []byte("1")) }) }, true},
				{"Update that writes nothing", func() error { return b.Update(func(tx *Tx) error { tx.Has("k"); return nil }) }, false},
				{"Update that fails", func() error {
					err := b.Update(func(tx *Tx) error { _ = tx.Put("u", []byte("2")); return errors.New("no") })
					assert.EqualError(t, err, "no")
					return nil
				}, false},
			} {
				before, err := b.Version()
				require.NoError(t, err)
				require.NoError(t, tc.op(), tc.name)
				after, err := b.Version()
				require.NoError(t, err)
				assert.Equal(t, tc.changed, after != before, tc.name)
			}
			b.Stop(nil)
			_, err := b.Version()
			assert.ErrorIs(t, err, ErrEnded)
		})
	}

	// A write the store fails is not a change that a watcher could miss:
	// either the version stands (nothing was written) or the bucket ended.
	b := Restore("refused", 1, nil, st)
	require.NoError(t, b.Put("k", []byte("0")))
	before, err := b.Version()
	require.NoError(t, err)
	faults.FailWrites(syscall.ENOSPC)
	assert.Error(t, b.Update(func(tx *Tx) error { return tx.Put("k", []byte("1")) }))
	faults.Clear()
	if after, err := b.Version(); err == nil {
		assert.Equal(t, before, after)
	} else {
		assert.ErrorIs(t, err, ErrEnded)
	}
	loadT(t, st, "refused") // the store has recovered: it can close
}

// Commit waits for a write that the store holds (a transaction's, see
// store.Store.Hold) without waiting for the hold to end: the holder's own
// goroutine may call it.
func TestPendingCommitUnderAHold(t *testing.T) {
	st := openStore(t, nil)
	b := Restore("b", 1, nil, st)
	release := st.Hold()
	defer release()
	_, p, err := b.SetNoWait("k", []byte("v"))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- p.Commit() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Commit waited for the hold")
	}
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, loadT(t, st, "b"))
	assert.NoError(t, Pending{}.Commit(), "nothing to wait for")
}
