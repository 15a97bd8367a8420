//go:build !unix

package resp

import "time"

// cpuTimes cannot tell the process's CPU time here: INFO's CPU section
// is then empty.
func cpuTimes() (sys, user time.Duration, ok bool) { return 0, 0, false }
