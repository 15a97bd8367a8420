package registry

import "math/rand/v2"

// randomWindow is how many names, from where a map's iteration begins,
// RandomName picks among. Go's iteration begins at a random slot, so its
// first name is that of the slot after a run of empty ones, as likely as
// the run is long (up to 10 times its share, measured); one of the next
// randomWindow names, picked evenly, evens those runs out (within 2 times
// at 20,000 names, about as fair as Redis's).
const randomWindow = 32

// RandomName returns the name of a bucket picked at random among those
// Names returns, about evenly, and false when there is none. It costs
// O(randomWindow), except with a store whose names could not be listed at
// New, where it reads them all.
//
// It does not walk the scan order from a random cursor: names alike (k0,
// k1...) have FNV-1a hashes packed close together, and the first name
// after a random cursor is then nearly always the one after the widest
// gap (k8 in 1,000 picks of 1,000 among k0..k9).
func (r *Registry) RandomName() (name string, ok bool, err error) {
	r.mu.RLock()
	switch {
	case r.store == nil:
		defer r.mu.RUnlock()
		name, ok = randomKey(r.names)
		return name, ok, nil
	case r.stored != nil:
		defer r.mu.RUnlock()
		name, ok = randomKey(r.stored)
		return name, ok, nil
	}
	r.mu.RUnlock()
	names, err := r.NamesErr()
	if err != nil {
		return "", false, err
	}
	if len(names) == 0 {
		return "", false, nil
	}
	return names[rand.IntN(len(names))], true, nil
}

// randomKey returns one of m's keys, about evenly (see randomWindow).
func randomKey[V any](m map[string]V) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	i, j := 0, rand.IntN(min(randomWindow, len(m)))
	for k := range m {
		if i == j {
			return k, true
		}
		i++
	}
	return "", false // not reached: m has more than j keys
}
