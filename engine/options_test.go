package engine

import (
	"strings"
	"testing"
)

// --workers is bounded on both sides: a slip such as --workers 100000000
// is a usage error naming the flag and its range, not minutes spent
// starting goroutines before the first image.
func TestValidateWorkers(t *testing.T) {
	for w, ok := range map[int]bool{-1: false, 0: true, 1: true, MaxWorkers: true, MaxWorkers + 1: false, 100000000: false} {
		err := BatchOptions{BatchSize: 8, Workers: w}.Validate()
		if (err == nil) != ok {
			t.Errorf("--workers %d: err %v, want ok %v", w, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--workers") {
			t.Errorf("--workers %d: %v does not name the flag", w, err)
		}
	}
}
