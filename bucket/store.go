package bucket

import "github.com/kvproject/kv/internal/store"

// This file holds two operations the Redis front end needs and that the
// rest of the API cannot express without a race: a Put that says whether
// the key is new (HSET's reply), and ending a bucket while taking its pairs
// (RENAME), so that no write can land between the copy and the end.

// Set stores a copy of value under key, like Put, and reports whether key
// was absent before. It returns ErrEnded on an ended bucket.
func (b *Bucket) Set(key string, value []byte) (added bool, err error) {
	if b.store != nil {
		added, p, err := b.setDurable(key, value)
		if err != nil {
			return false, err
		}
		return added, p.Wait()
	}
	v := clone(value) // outside the lock
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return false, ErrEnded
	}
	if b.data == nil {
		b.data = make(map[string][]byte)
	}
	_, existed := b.data[key]
	if !existed {
		b.keyAdded(key)
	}
	b.data[key] = v
	b.version++
	return !existed, nil
}

// Take ends the bucket with reason, as Stop does, and returns the pairs it
// held at that instant; the map and its values are the caller's. It returns
// ErrEnded, and no pairs, when the bucket had already ended.
func (b *Bucket) Take(reason error) (map[string][]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return nil, ErrEnded
	}
	data := b.data // stored values were never handed out
	b.endLocked(reason)
	if data == nil {
		data = make(map[string][]byte)
	}
	return data, nil
}

// TakeMoving is Take for a caller that records the pairs elsewhere in the
// bucket's store (a RENAME's move, see store.Store.Move): it calls move
// with the pairs under the bucket's write lock, before the bucket ends, so
// that the move is queued after every write of the bucket and before any
// of them can be undone. A write still on its way to the disk then meets
// the move's fate or an earlier one (the store loses every write from the
// first failed one on): the move cannot make durable a write whose writer
// is told it failed. If move fails, nothing was written: the bucket does
// not end, and the error is returned. move must not use the bucket.
func (b *Bucket) TakeMoving(reason error, move func(pairs map[string][]byte) error) (map[string][]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return nil, ErrEnded
	}
	data := b.data // stored values were never handed out
	if data == nil {
		data = make(map[string][]byte)
	}
	if err := move(data); err != nil {
		return nil, err
	}
	b.endLocked(reason)
	return data, nil
}

// SetNoWait is Set that returns as soon as the write is made in memory and
// recorded in the store, with a Pending for its durability: the caller must
// call its Wait, and treat the write as failed if Wait fails, before it
// acknowledges the write to anyone. Readers may see the write before it is
// durable, as they may with Set. For an in-memory bucket it is Set, with a
// zero Pending.
func (b *Bucket) SetNoWait(key string, value []byte) (added bool, p Pending, err error) {
	if b.store != nil {
		return b.setDurable(key, value)
	}
	added, err = b.Set(key, value)
	return added, Pending{}, err
}

// setDurable is SetNoWait for a durable bucket: the write reaches the store
// under the lock, then memory; the lock is released before anyone waits for
// the disk, so that concurrent writers share one sync.
func (b *Bucket) setDurable(key string, value []byte) (added bool, p Pending, err error) {
	v := clone(value) // outside the lock
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return false, Pending{}, ErrEnded
	}
	pw, err := b.record(store.Put(key, v))
	if err != nil {
		b.mu.Unlock()
		return false, Pending{}, err
	}
	if b.data == nil {
		b.data = make(map[string][]byte)
	}
	_, existed := b.data[key]
	if !existed {
		b.keyAdded(key)
	}
	b.data[key] = v
	b.version++
	b.mu.Unlock()
	return !existed, Pending{pw}, nil
}
