package engine

import (
	"strings"
	"testing"
)

// The error of a rerun that skipped an earlier run's failures says what
// --retry-errors would do with each kind, as the summary does: a
// duplicate id's error row is dropped (its id keeps the first one's
// output), a bad input fails again, and a retryable one is processed
// again; a mix of duplicates and other failures names both.
func TestEarlierFailedHint(t *testing.T) {
	for _, c := range []struct {
		failed, dups, retryable int64
		want                    []string
		not                     string
	}{
		{1, 0, 0, []string{"the input itself is bad", "fails it again"}, "duplicate"},
		{2, 0, 2, []string{"rerun with --retry-errors to process those inputs again"}, "duplicate"},
		{1, 1, 0, []string{"a duplicate id keeps the output of the first member or row", "--retry-errors drops its error row"}, "bad"},
		{2, 1, 0, []string{"--retry-errors drops its error row", "of the others, the input itself is bad"}, "they are bad inputs"},
		{3, 1, 2, []string{"--retry-errors drops its error row", "of the others, once their cause is fixed"}, "processes them again"},
	} {
		b := &Batch{Options: FileOptions{Output: "out"}, Inputs: &Inputs{}}
		b.Inputs.skippedFailed.Store(c.failed)
		b.Inputs.skippedDuplicates.Store(c.dups)
		b.Inputs.skippedRetryable.Store(c.retryable)
		err := b.earlierFailed("")
		if err == nil {
			t.Fatalf("%+v: no error", c)
		}
		msg := err.Error()
		if !strings.Contains(msg, " input(s) failed in an earlier run into out (see out/errors; ") {
			t.Errorf("%+v: %q does not name the output and its errors", c, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("failed %d, duplicates %d, retryable %d: %q does not say %q", c.failed, c.dups, c.retryable, msg, w)
			}
		}
		if strings.Contains(msg, c.not) {
			t.Errorf("failed %d, duplicates %d, retryable %d: %q says %q", c.failed, c.dups, c.retryable, msg, c.not)
		}
	}
}
