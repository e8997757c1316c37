// Package backoff is the one rule socksd's accept loops follow after a
// failed Accept (EMFILE, ENFILE, ECONNABORTED): wait 5 ms, doubling up to
// 1 s, as net/http's Server does, so running out of descriptors neither
// turns a loop into a busy loop nor ends it.
package backoff

import "time"

// Bounds of the accept-error wait.
const (
	Min = 5 * time.Millisecond
	Max = time.Second
)

// Accept is the wait of one accept loop. The zero value is ready; Reset
// it after a successful Accept.
type Accept struct{ d time.Duration }

// Next returns the wait after one more failed Accept: Min, then doubling
// up to Max.
func (a *Accept) Next() time.Duration {
	if a.d == 0 {
		a.d = Min
	} else if a.d *= 2; a.d > Max {
		a.d = Max
	}
	return a.d
}

// Reset starts the next run of failures at Min again.
func (a *Accept) Reset() { a.d = 0 }

// Sleep waits d unless done closes first, and reports whether the whole
// wait passed (false: the listener is closing).
func Sleep(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
