package events

import "time"

const (
	waitFor = 10 * time.Second
	tick    = time.Millisecond
)
