// Package testwait holds what tests share to wait for other goroutines.
package testwait

import (
	"testing"
	"time"
)

// Until polls cond (the state of other goroutines) every millisecond until
// it holds. The one-minute deadline only keeps a broken run from hanging
// the test: a test's outcome never depends on it.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
