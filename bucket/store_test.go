package bucket

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetReportsNewKeys(t *testing.T) {
	b := New("s", 1)
	added, err := b.Set("k", []byte("1"))
	require.NoError(t, err)
	assert.True(t, added)
	added, err = b.Set("k", []byte("2"))
	require.NoError(t, err)
	assert.False(t, added)
	v, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "2", string(v))

	b.Stop(nil)
	_, err = b.Set("k", []byte("3"))
	assert.ErrorIs(t, err, ErrEnded)
}

func TestSetCopiesTheValue(t *testing.T) {
	b := New("s", 1)
	in := []byte("abc")
	_, err := b.Set("k", in)
	require.NoError(t, err)
	in[0] = 'X'
	v, err := b.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "abc", string(v))
}

func TestTakeEndsAndReturnsThePairs(t *testing.T) {
	b := New("t", 1)
	require.NoError(t, b.Put("a", []byte("1")))
	require.NoError(t, b.Put("b", []byte("2")))
	reason := errors.New("renamed")
	data, err := b.Take(reason)
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"a": []byte("1"), "b": []byte("2")}, data)
	select {
	case <-b.Done():
	default:
		t.Fatal("Take did not end the bucket")
	}
	assert.Equal(t, reason, b.Err())
	_, err = b.Take(nil)
	assert.ErrorIs(t, err, ErrEnded)
	_, err = b.Get("a")
	assert.ErrorIs(t, err, ErrEnded)
}

func TestTakeOfAnEmptyBucket(t *testing.T) {
	b := New("e", 1)
	data, err := b.Take(nil)
	require.NoError(t, err)
	assert.NotNil(t, data)
	assert.Empty(t, data)
}

// TakeMoving hands the pairs to move and then ends the bucket; if move
// fails, nothing was written: the bucket goes on, pairs and all, and a
// later TakeMoving can take them.
func TestTakeMovingThatFailsLeavesTheBucket(t *testing.T) {
	b := New("m", 1)
	require.NoError(t, b.Put("a", []byte("1")))
	failed := errors.New("move failed")
	_, err := b.TakeMoving(nil, func(pairs map[string][]byte) error {
		assert.Equal(t, map[string][]byte{"a": []byte("1")}, pairs)
		return failed
	})
	require.ErrorIs(t, err, failed)
	select {
	case <-b.Done():
		t.Fatal("a failed move ended the bucket")
	default:
	}
	v, err := b.Get("a")
	require.NoError(t, err)
	assert.Equal(t, []byte("1"), v)

	reason := errors.New("renamed")
	data, err := b.TakeMoving(reason, func(map[string][]byte) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"a": []byte("1")}, data)
	<-b.Done()
	assert.Equal(t, reason, b.Err())
}
