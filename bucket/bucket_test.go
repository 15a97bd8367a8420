package bucket

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewBucketIsEmpty(t *testing.T) {
	b := New("shopping", 1)
	_, err := b.Get("milk")
	assert.ErrorIs(t, err, ErrNotFound)
	n, err := b.Len()
	require.NoError(t, err)
	assert.Zero(t, n)
	keys, err := b.Keys()
	require.NoError(t, err)
	assert.Empty(t, keys)
	assert.Equal(t, "shopping", b.Name())
	assert.Equal(t, uint64(1), b.ID())
}

func TestPutGetDelete(t *testing.T) {
	b := New("shopping", 1)
	require.NoError(t, b.Put("milk", []byte("3")))
	v, err := b.Get("milk")
	require.NoError(t, err)
	assert.Equal(t, []byte("3"), v)

	require.NoError(t, b.Put("milk", []byte("4")))
	old, err := b.Delete("milk")
	require.NoError(t, err)
	assert.Equal(t, []byte("4"), old, "Delete returns the old value")
	_, err = b.Delete("milk")
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = b.Get("milk")
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestValuesAreBinarySafe(t *testing.T) {
	b := New("bin", 1)
	cases := map[string][]byte{
		"":         []byte("empty key"),
		"\x00\xff": {0, 1, 2, 0xff, '\r', '\n'},
		"empty":    {},
		"spaces":   []byte("  a b  "),
	}
	for k, v := range cases {
		require.NoError(t, b.Put(k, v))
	}
	for k, want := range cases {
		got, err := b.Get(k)
		require.NoError(t, err, "key %q", k)
		assert.Equal(t, want, got, "key %q", k)
		assert.NotNil(t, got, "an empty value is a value, not an absence")
	}
}

func TestNoCallerAliasesAStoredValue(t *testing.T) {
	b := New("alias", 1)
	in := []byte("abc")
	require.NoError(t, b.Put("k", in))
	in[0] = 'X' // the caller keeps its slice
	got, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "abc", string(got))
	got[0] = 'Y' // and the copy it got back
	again, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "abc", string(again))

	buf := make([]byte, 0, 16)
	buf, err = b.AppendValue(buf, "k")
	require.NoError(t, err)
	buf[0] = 'Z'
	again, _ = b.Get("k")
	assert.Equal(t, "abc", string(again))

	require.NoError(t, b.View(func(tx *Tx) error {
		v, err := tx.Get("k")
		require.NoError(t, err)
		v[0] = 'W'
		return tx.ForEach(func(_ string, v []byte) error { v[0] = 'V'; return nil })
	}))
	again, _ = b.Get("k")
	assert.Equal(t, "abc", string(again))
}

func TestAppendValue(t *testing.T) {
	b := New("a", 1)
	require.NoError(t, b.Put("k", []byte("world")))
	out, err := b.AppendValue([]byte("hello "), "k")
	require.NoError(t, err)
	assert.Equal(t, "hello world", string(out))
	out, err = b.AppendValue([]byte("x"), "missing")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, "x", string(out))

	// Into a buffer with room, it allocates nothing.
	dst := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := b.AppendValue(dst, "k"); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

func TestKeysAndLen(t *testing.T) {
	b := New("k", 1)
	for _, k := range []string{"c", "a", "b"} {
		require.NoError(t, b.Put(k, []byte(k)))
	}
	keys, err := b.Keys()
	require.NoError(t, err)
	sort.Strings(keys)
	assert.Equal(t, []string{"a", "b", "c"}, keys)
	n, err := b.Len()
	require.NoError(t, err)
	assert.Equal(t, 3, n)
}

func TestUpdateIsAtomicReadModifyWrite(t *testing.T) {
	b := New("counter", 1)
	require.NoError(t, b.Put("n", []byte{0}))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				require.NoError(t, b.Update(func(tx *Tx) error {
					v, err := tx.Get("n")
					if err != nil {
						return err
					}
					return tx.Put("n", []byte{v[0] + 1})
				}))
			}
		})
	}
	wg.Wait()
	v, err := b.Get("n")
	require.NoError(t, err)
	assert.Equal(t, byte(800%256), v[0])
}

func TestUpdateErrorRollsBack(t *testing.T) {
	b := New("tx", 1)
	require.NoError(t, b.Put("keep", []byte("1")))
	require.NoError(t, b.Put("gone", []byte("2")))
	errBoom := errors.New("boom")
	err := b.Update(func(tx *Tx) error {
		require.NoError(t, tx.Put("keep", []byte("changed")))
		require.NoError(t, tx.Put("new", []byte("3")))
		old, err := tx.Delete("gone")
		require.NoError(t, err)
		assert.Equal(t, "2", string(old))
		assert.Equal(t, 2, tx.Len(), "a transaction sees its own writes")
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	got := snapshot(t, b)
	assert.Equal(t, map[string]string{"keep": "1", "gone": "2"}, got)
}

func TestViewIsReadOnly(t *testing.T) {
	b := New("ro", 1)
	err := b.View(func(tx *Tx) error { return tx.Put("k", nil) })
	assert.ErrorIs(t, err, ErrReadOnly)
	err = b.View(func(tx *Tx) error { _, err := tx.Delete("k"); return err })
	assert.ErrorIs(t, err, ErrReadOnly)
}

func TestTxUnusableAfterItsFunction(t *testing.T) {
	b := New("late", 1)
	var kept *Tx
	require.NoError(t, b.Update(func(tx *Tx) error { kept = tx; return nil }))
	assert.ErrorIs(t, kept.Put("k", nil), ErrTxClosed)
	_, err := kept.Get("k")
	assert.ErrorIs(t, err, ErrTxClosed)
	assert.ErrorIs(t, kept.ForEach(func(string, []byte) error { return nil }), ErrTxClosed)
	assert.False(t, kept.Has("k"))
	assert.Zero(t, kept.Len())
}

func TestPanicInUpdateEndsOnlyThatBucket(t *testing.T) {
	b := New("crash", 1)
	other := New("other", 2)
	require.NoError(t, b.Put("k", []byte("v")))
	require.NoError(t, other.Put("k", []byte("v")))

	err := b.Update(func(tx *Tx) error {
		_ = tx.Put("k", []byte("half-written"))
		panic("user function failed")
	})
	var perr *PanicError
	require.ErrorAs(t, err, &perr)
	assert.ErrorIs(t, err, ErrEnded)
	assert.Equal(t, "user function failed", perr.Value)
	assert.Contains(t, string(perr.Stack), "TestPanicInUpdateEndsOnlyThatBucket")

	<-b.Done()
	require.ErrorAs(t, b.Err(), &perr)
	_, err = b.Get("k")
	assert.ErrorIs(t, err, ErrEnded)

	v, err := other.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
}

func TestPanicInViewCrashesTheBucket(t *testing.T) {
	b := New("crash", 1)
	err := b.View(func(*Tx) error { panic("reader failed") })
	var perr *PanicError
	require.ErrorAs(t, err, &perr)
	<-b.Done()
	assert.ErrorAs(t, b.Err(), &perr)
}

// Every operation on an ended bucket says so: never a silent success, never
// a hang, never a panic.
func TestOperationsOnEndedBucket(t *testing.T) {
	reasons := map[string]error{
		"normal":    nil,
		"error":     errors.New("stopped by the test"),
		"cancelled": context.Canceled,
	}
	for name, reason := range reasons {
		t.Run(name, func(t *testing.T) {
			b := New("ended", 1)
			require.NoError(t, b.Put("k", []byte("v")))
			assert.True(t, b.Stop(reason))
			assert.False(t, b.Stop(errors.New("second")), "a bucket ends once")
			<-b.Done()
			assert.Equal(t, reason, b.Err())

			ops := map[string]func() error{
				"Get":         func() error { _, err := b.Get("k"); return err },
				"AppendValue": func() error { _, err := b.AppendValue(nil, "k"); return err },
				"Put":         func() error { return b.Put("k", []byte("lost?")) },
				"Delete":      func() error { _, err := b.Delete("k"); return err },
				"Len":         func() error { _, err := b.Len(); return err },
				"Keys":        func() error { _, err := b.Keys(); return err },
				"View":        func() error { return b.View(func(*Tx) error { return nil }) },
				"Update":      func() error { return b.Update(func(*Tx) error { return nil }) },
			}
			for op, f := range ops {
				assert.ErrorIs(t, f(), ErrEnded, op)
			}
		})
	}
}

func snapshot(t *testing.T, b *Bucket) map[string]string {
	t.Helper()
	got := map[string]string{}
	require.NoError(t, b.View(func(tx *Tx) error {
		return tx.ForEach(func(k string, v []byte) error { got[k] = string(v); return nil })
	}))
	return got
}

// A function that calls runtime.Goexit (t.FailNow does) must not leave the
// bucket locked, nor its writes half done.
func TestGoexitInsideUpdateReleasesTheBucket(t *testing.T) {
	b := New("goexit", 1)
	require.NoError(t, b.Put("k", []byte("before")))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Update(func(tx *Tx) error {
			_ = tx.Put("k", []byte("half"))
			runtime.Goexit()
			return nil
		})
	}()
	<-done
	v, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "before", string(v))
	done = make(chan struct{})
	go func() {
		defer close(done)
		_ = b.View(func(*Tx) error { runtime.Goexit(); return nil })
	}()
	<-done
	require.NoError(t, b.Put("k", []byte("after")))
}

func TestEndKind(t *testing.T) {
	cases := []struct {
		reason error
		want   string
	}{
		{nil, EndNormal},
		{errors.New("stopped"), EndError},
		{&PanicError{Value: "x"}, EndPanic},
		{&crashError{bucket: "b", panic: &PanicError{Value: "x"}}, EndPanic},
		{context.Canceled, EndShutdown},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), EndShutdown},
		{ErrIdle, EndIdle},
		{fmt.Errorf("wrapped: %w", ErrIdle), EndIdle},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, EndKind(tc.reason), "%v", tc.reason)
	}
}

// StopIdle ends a bucket only once a whole period (between two calls)
// has passed without MarkUsed, and never one whose lock is held.
func TestStopIdle(t *testing.T) {
	t.Run("new, then unused", func(t *testing.T) {
		b := New("b", 1)
		require.NoError(t, b.Put("k", []byte("v")))
		assert.False(t, b.StopIdle(ErrIdle), "a new bucket is marked used")
		assert.True(t, b.StopIdle(ErrIdle), "unused for a whole period")
		assert.ErrorIs(t, b.Err(), ErrIdle)
		assert.Equal(t, EndIdle, EndKind(b.Err()))
		_, err := b.Get("k")
		assert.True(t, EndedBefore(err), "a later operation is told to look the name up again: %v", err)
		assert.False(t, b.StopIdle(ErrIdle), "ended once")
	})
	t.Run("used in each period", func(t *testing.T) {
		b := New("b", 1)
		for range 3 {
			assert.False(t, b.StopIdle(ErrIdle))
			b.MarkUsed()
		}
		assert.False(t, b.StopIdle(ErrIdle))
		assert.True(t, b.StopIdle(ErrIdle))
	})
	t.Run("held", func(t *testing.T) {
		b := New("b", 1)
		assert.False(t, b.StopIdle(ErrIdle))
		inView, release := make(chan struct{}), make(chan struct{})
		done := make(chan error)
		go func() {
			done <- b.View(func(*Tx) error {
				close(inView)
				<-release
				return nil
			})
		}()
		<-inView
		assert.False(t, b.StopIdle(ErrIdle), "its lock is held: in use")
		close(release)
		require.NoError(t, <-done)
		assert.False(t, b.StopIdle(ErrIdle), "marked used when it was held")
		assert.True(t, b.StopIdle(ErrIdle))
	})
}

func TestValueLen(t *testing.T) {
	b := New("b", 1)
	require.NoError(t, b.Put("k", []byte("four")))
	n, err := b.ValueLen("k")
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	_, err = b.ValueLen("missing")
	assert.ErrorIs(t, err, ErrNotFound)
	b.Stop(nil)
	_, err = b.ValueLen("k")
	assert.ErrorIs(t, err, ErrEnded)
}

func TestEndedBefore(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{ErrNotFound, false},
		{ErrEnded, true},
		{fmt.Errorf("lookup: %w", ErrEnded), true},
		{fmt.Errorf("%w: %w", ErrEnded, &PanicError{Value: "boom"}), false}, // the operation's own panic
	} {
		assert.Equal(t, tc.want, EndedBefore(tc.err), "%v", tc.err)
	}
}

// A nil function is the caller's mistake, not a crash of the bucket: View,
// Update, UpdateNoWait and Tx.ForEach refuse it with an error, and the
// bucket and its pairs stay (a nil function used to be called, panic, and
// end the bucket with a *PanicError, its pairs lost).
func TestNilFunctionIsRefusedAndDoesNotCrashTheBucket(t *testing.T) {
	b := New("nil", 1)
	require.NoError(t, b.Put("k", []byte("v")))

	err := b.Update(nil)
	assert.ErrorIs(t, err, errNilFunc)
	assert.NotErrorIs(t, err, ErrEnded)
	err = b.View(nil)
	assert.ErrorIs(t, err, errNilFunc)
	p, err := b.UpdateNoWait(nil)
	assert.ErrorIs(t, err, errNilFunc)
	assert.True(t, p.IsZero())
	require.NoError(t, b.View(func(tx *Tx) error {
		assert.ErrorIs(t, tx.ForEach(nil), errNilFunc)
		return nil
	}))

	select {
	case <-b.Done():
		t.Fatalf("the bucket ended: %v", b.Err())
	default:
	}
	v, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
}

// Bytes counts a bucket's pairs and the bytes of their keys and values,
// all of them or a sample scaled to the whole, copying nothing.
func TestBucketBytes(t *testing.T) {
	b := New("b", 1)
	pairs, bytes, err := b.Bytes(0)
	require.NoError(t, err)
	assert.Zero(t, pairs)
	assert.Zero(t, bytes)
	require.NoError(t, b.Put("a", []byte("xx")))
	require.NoError(t, b.Put("bb", []byte("y")))
	require.NoError(t, b.Put("ccc", []byte("")))
	for _, samples := range []int{0, 1, 2, 3, 100} {
		pairs, bytes, err := b.Bytes(samples)
		require.NoError(t, err)
		assert.Equal(t, 3, pairs, "samples %d", samples)
		assert.Equal(t, int64(9), bytes, "samples %d: every pair has 3 bytes", samples)
	}
	require.NoError(t, b.Put("dddd", []byte("0123456789")))
	_, bytes, err = b.Bytes(0)
	require.NoError(t, err)
	assert.Equal(t, int64(23), bytes)
	b.Stop(nil)
	_, _, err = b.Bytes(0)
	require.ErrorIs(t, err, ErrEnded)
}
