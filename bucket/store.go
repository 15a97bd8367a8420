package bucket

// This file holds two operations the Redis front end needs and that the
// rest of the API cannot express without a race: a Put that says whether
// the key is new (HSET's reply), and ending a bucket while taking its pairs
// (RENAME), so that no write can land between the copy and the end.

// Set stores a copy of value under key, like Put, and reports whether key
// was absent before. It returns ErrEnded on an ended bucket.
func (b *Bucket) Set(key string, value []byte) (added bool, err error) {
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
