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
		return b.setDurable(key, value)
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
	b.data[key] = v
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

// setDurable is Set for a durable bucket: the write reaches the store under
// the lock, then memory; the lock is released before waiting for the disk,
// so that concurrent writers share one sync.
func (b *Bucket) setDurable(key string, value []byte) (added bool, err error) {
	v := clone(value) // outside the lock
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return false, ErrEnded
	}
	w, err := b.record(store.Put(key, v))
	if err != nil {
		b.mu.Unlock()
		return false, err
	}
	if b.data == nil {
		b.data = make(map[string][]byte)
	}
	_, existed := b.data[key]
	b.data[key] = v
	b.mu.Unlock()
	if err := b.settle(w); err != nil {
		return false, err
	}
	return !existed, nil
}
