package bucket

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README: "A bucket that has ended answers every operation with
// bucket.ErrEnded: never a silent success". Every operation of the
// exported API, in memory and on a store (whose writes take another path),
// and nothing reaches the store.
func TestEveryOperationOfAnEndedBucketSaysSo(t *testing.T) {
	for _, durable := range []bool{false, true} {
		name := "in memory"
		if durable {
			name = "durable"
		}
		t.Run(name, func(t *testing.T) {
			b := New("b", 1)
			if durable {
				st := openStore(t, nil)
				b = Restore("b", 1, nil, st)
				defer func() {
					assert.Equal(t, map[string][]byte{"k": []byte("v")}, loadT(t, st, "b"), "an ended bucket wrote to the store")
				}()
			}
			require.NoError(t, b.Put("k", []byte("v")))
			require.True(t, b.Stop(nil))

			ops := map[string]func() error{
				"Get":         func() error { _, err := b.Get("k"); return err },
				"AppendValue": func() error { _, err := b.AppendValue(nil, "k"); return err },
				"ValueLen":    func() error { _, err := b.ValueLen("k"); return err },
				"Bytes":       func() error { _, _, err := b.Bytes(0); return err },
				"Len":         func() error { _, err := b.Len(); return err },
				"Keys":        func() error { _, err := b.Keys(); return err },
				"Version":     func() error { _, err := b.Version(); return err },
				"View":        func() error { return b.View(func(*Tx) error { return nil }) },
				"Put":         func() error { return b.Put("k", []byte("lost?")) },
				"Set":         func() error { _, err := b.Set("n", []byte("lost?")); return err },
				"SetNoWait": func() error {
					_, p, err := b.SetNoWait("n", []byte("lost?"))
					assert.NoError(t, p.Wait(), "a zero Pending")
					return err
				},
				"Delete": func() error { _, err := b.Delete("k"); return err },
				"DeleteNoWait": func() error {
					_, p, err := b.DeleteNoWait("k")
					assert.NoError(t, p.Wait(), "a zero Pending")
					return err
				},
				"Update": func() error {
					return b.Update(func(tx *Tx) error { return tx.Put("n", []byte("lost?")) })
				},
				"UpdateNoWait": func() error {
					p, err := b.UpdateNoWait(func(tx *Tx) error { return tx.Put("n", []byte("lost?")) })
					assert.NoError(t, p.Wait(), "a zero Pending")
					return err
				},
				"Take": func() error { _, err := b.Take(errors.New("again")); return err },
				"TakeMoving": func() error {
					_, err := b.TakeMoving(errors.New("again"), func(map[string][]byte) error {
						t.Error("TakeMoving moved the pairs of an ended bucket")
						return nil
					})
					return err
				},
			}
			for op, f := range ops {
				assert.ErrorIs(t, f(), ErrEnded, op)
			}
			assert.NoError(t, b.Err(), "the first end's reason stays")
		})
	}
}
