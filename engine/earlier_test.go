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
		err := b.earlierFailed(false)
		if err == nil {
			t.Fatalf("%+v: no error", c)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, plural(c.failed, "input")+" failed in an earlier run into out (see out/errors; ") {
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

// The errors of a batch run count inputs in words that agree with the
// count: "1 input", "3 inputs"; "the only input" where all the inputs
// are one.
func TestBatchErrorsCountInputs(t *testing.T) {
	first := func() string { return "a.jpg: bad" }
	for _, c := range []struct {
		counts Counts
		fail   bool
		failed int64 // skipped inputs that failed in an earlier run
		want   string
	}{
		{Counts{Failed: 1}, false, 0, "the only input processed failed (errors in out/errors): a.jpg: bad"},
		{Counts{Failed: 3, Skipped: 2}, false, 0, "all 3 inputs failed (errors in out/errors); first: a.jpg: bad"},
		{Counts{Failed: 3, Duplicates: 2}, false, 0, "nothing was written: 1 input failed, not counting 2 duplicate ids (errors in out/errors): a.jpg: bad"},
		{Counts{Failed: 4, Duplicates: 1}, false, 0, "nothing was written: 3 inputs failed, not counting 1 duplicate id (errors in out/errors); first: a.jpg: bad"},
		{Counts{Failed: 2, Duplicates: 2}, false, 0, ""},
		{Counts{Written: 2, Failed: 1}, true, 0, "1 input failed (see out/errors)"},
		{Counts{Written: 2, Failed: 2}, true, 0, "2 inputs failed (see out/errors)"},
		{Counts{Skipped: 1}, false, 1, "the only input failed in an earlier run into out (see out/errors; "},
		{Counts{Skipped: 3}, false, 3, "all 3 inputs failed in an earlier run into out (see out/errors; "},
		{Counts{Written: 1, Skipped: 3}, true, 1, "1 input failed in an earlier run into out (see out/errors; "},
		{Counts{Written: 1, Skipped: 3}, true, 2, "2 inputs failed in an earlier run into out (see out/errors; "},
	} {
		b := &Batch{Options: FileOptions{Output: "out", FailOnError: c.fail}, Inputs: &Inputs{}}
		b.Inputs.skippedFailed.Store(c.failed)
		err := b.outcome(c.counts, first)
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v, want no error", c.counts, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v, fail on error %v, %d failed earlier: %v, want %q…", c.counts, c.fail, c.failed, err, c.want)
		}
	}
}
