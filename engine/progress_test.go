package engine

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maeembed/maeembed/pipeline"
	"github.com/maeembed/maeembed/sources"
)

// The bar (forced on a buffer, as on a terminal) shows done/total, the
// error count and a speed, and log lines during it land above it.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	var written atomic.Int64
	counts := func() Counts { return Counts{Written: written.Load(), Failed: 2, Skipped: 5} }
	prev := slog.Default()
	written.Store(13)
	p := StartProgress(&buf, true, 40, time.Now().Add(-time.Second), counts) // draws 20/40 at once
	slog.Warn("input failed", "id", "x.jpg")
	time.Sleep(2 * barEvery) // a redraw prints the log line above the bar
	written.Store(33)
	p.Stop()
	if slog.Default() != prev {
		t.Error("the logger was not restored after the bar")
	}
	out := buf.String()
	for _, want := range []string{"(20/40)", "(40/40)", "2 errors", "images/s", "msg=\"input failed\" id=x.jpg\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("bar output lacks %q:\n%q", want, out)
		}
	}
}

// Every frame of the bar shows one moment: its count and its "published"
// come from the same Counts, so published never exceeds the count (a frame
// drew the new description beside the previous tick's count: "(8/402) ...
// 10 published").
func TestProgressBarFrameConsistent(t *testing.T) {
	var buf bytes.Buffer
	var n atomic.Int64
	counts := func() Counts { v := n.Add(7); return Counts{Processed: v, Written: v} }
	p := StartProgress(&buf, true, 1000, time.Now().Add(-time.Second), counts)
	time.Sleep(5 * barEvery)
	p.Stop()
	frame := regexp.MustCompile(`\((\d+)/1000\).* (\d+) published`)
	frames := 0
	for _, f := range strings.Split(buf.String(), "\r") {
		m := frame.FindStringSubmatch(f)
		if m == nil {
			continue
		}
		frames++
		done, _ := strconv.Atoi(m[1])
		published, _ := strconv.Atoi(m[2])
		if published > done {
			t.Errorf("frame shows %d published of %d done: %q", published, done, f)
		}
	}
	if frames < 2 {
		t.Errorf("%d frames drawn, want several:\n%q", frames, buf.String())
	}
}

// Without a terminal the reporter writes no bar at all.
func TestProgressNoTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := StartProgress(&buf, false, 10, time.Now(), func() Counts { return Counts{Written: 3} })
	p.Stop()
	if buf.Len() != 0 {
		t.Errorf("wrote %q without a terminal", buf.String())
	}
	if IsTerminal(&buf) {
		t.Error("a buffer is not a terminal")
	}
	// The periodic line (every 10 s) says how far the run is.
	var logs bytes.Buffer
	prev := slog.Default()
	defer slog.SetDefault(prev)
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	p = StartProgress(nil, false, 10, time.Now().Add(-time.Second), func() Counts { return Counts{Written: 3, Failed: 1, Skipped: 4} })
	p.logLine()
	p.Stop()
	if !regexp.MustCompile(`msg=progress done=8 total=10 percent=80\.0 written=3 failed=1 skipped=4 images_per_s=[0-9.]+ eta=\d`).MatchString(logs.String()) {
		t.Errorf("progress line: %s", logs.String())
	}
	// Stream mode: no total.
	logs.Reset()
	p = StartProgress(nil, false, 0, time.Now(), func() Counts { return Counts{Written: 3} })
	p.logLine()
	p.Stop()
	if strings.Contains(logs.String(), "total=") || !strings.Contains(logs.String(), "done=3") {
		t.Errorf("progress line without a total: %s", logs.String())
	}
	// Mid-run, rows handed to the writers but not yet in a published part
	// show as unpublished, beside written=0.
	logs.Reset()
	p = StartProgress(nil, false, 0, time.Now(), func() Counts { return Counts{Processed: 108, Written: 0} })
	p.logLine()
	p.Stop()
	if !strings.Contains(logs.String(), "done=108 written=0") || !strings.Contains(logs.String(), "published=0 unpublished=108") {
		t.Errorf("mid-run progress line: %s", logs.String())
	}
}

// The summary names every stage with its busy time and utilisation.
func TestSummaryTable(t *testing.T) {
	var buf bytes.Buffer
	stats := []pipeline.StageStats{
		{Name: "read", Workers: 1, Items: 100, Busy: 100 * time.Millisecond},
		{Name: "preprocess", Workers: 2, Items: 98, Errors: 2, Busy: 4 * time.Second},
		{Name: "model", Workers: 1, Items: 13, Busy: 9 * time.Second},
	}
	WriteSummary(&buf, "embed", Counts{Written: 98, Failed: 2, Skipped: 7}, 10*time.Second, stats)
	out := buf.String()
	for _, re := range []string{
		`embed: 98 images written, 2 errors, 7 skipped`,
		`embed: 10\.00 s, 9\.80 images/s`,
		`(?m)^preprocess +2 +98 +2 +4\.00 +40\.82 +20%$`,
		`(?m)^model +1 +13 +0 +9\.00 +692\.31 +90%$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("summary does not match %s:\n%s", re, out)
		}
	}
}

// One of a kind is singular; a run that found everything done says so
// instead of a table of zeros; rows that were not published are named.
func TestSummaryWording(t *testing.T) {
	var buf bytes.Buffer
	WriteSummary(&buf, "embed", Counts{Written: 1, Failed: 1}, time.Second, nil)
	if !strings.Contains(buf.String(), "embed: 1 image written, 1 error, 0 skipped") {
		t.Errorf("singular summary:\n%s", buf.String())
	}
	buf.Reset()
	stats := []pipeline.StageStats{{Name: "read", Workers: 1}, {Name: "model", Workers: 1}}
	WriteSummary(&buf, "embed", Counts{Skipped: 12}, time.Second, stats)
	if out := buf.String(); !strings.Contains(out, "nothing to do: every input was already done") || strings.Contains(out, "stage") {
		t.Errorf("all-done summary:\n%s", out)
	}
	// A rerun that skips earlier errors counts them and says how to retry.
	buf.Reset()
	Summary(&buf, "embed", Counts{Skipped: 12}, RunInfo{Output: "out", SkippedFailed: 1, SkippedRetryable: 1}, stats, time.Second)
	if out := buf.String(); !strings.Contains(out, "every input was already done, 1 of them as errors") ||
		!strings.Contains(out, "1 of the skipped inputs is recorded as failed in "+filepath.Join("out", "errors")) || !strings.Contains(out, "--retry-errors") {
		t.Errorf("all-done summary with earlier errors:\n%s", out)
	}
	buf.Reset()
	WriteSummary(&buf, "embed", Counts{Written: 624, Lost: 96}, time.Second, stats)
	if out := buf.String(); !strings.Contains(out, "embed: 624 images written") || !strings.Contains(out, "96 images not published") {
		t.Errorf("summary with unpublished rows:\n%s", out)
	}
	// An npy set is published at the end only: its rerun starts over
	// rather than resuming (README, Resume).
	buf.Reset()
	Summary(&buf, "embed", Counts{Lost: 25}, RunInfo{PublishedAtEnd: true}, stats, time.Second)
	if out := buf.String(); !strings.Contains(out, "25 images not published (an npy set is published only when its run ends, so a rerun processes them again)") ||
		strings.Contains(out, "resume") {
		t.Errorf("summary with unpublished npy rows:\n%s", out)
	}
}

// The summary suggests --retry-errors only for errors a retry can fix
// (the budget, resources, I/O), and calls the others bad inputs.
func TestSummaryRetryHint(t *testing.T) {
	for _, c := range []struct {
		c         Counts
		info      RunInfo
		want, not string
	}{
		{Counts{Written: 1, Failed: 2}, RunInfo{}, "the inputs themselves are bad", "--retry-errors"},
		{Counts{Written: 1, Failed: 1}, RunInfo{}, "the input itself is bad", "--retry-errors"},
		{Counts{Written: 1, Failed: 2, Retryable: 2}, RunInfo{}, "rerun with --retry-errors to process those inputs again", "bad"},
		{Counts{Written: 1, Failed: 3, Retryable: 1, OverBudget: 1}, RunInfo{}, "1 is of a kind a retry can fix (memory budget, resources, I/O, a missing file): once its cause is fixed (e.g. a larger --memory-budget), rerun with --retry-errors to process it again; the others are bad inputs", "process  them"},
		// A larger --memory-budget is the example only when the budget
		// failed them, not for a full disk or a permission.
		{Counts{Written: 1, Failed: 2, Retryable: 2}, RunInfo{}, "once their cause is fixed (their error column says what failed), rerun with --retry-errors", "--memory-budget)"},
		{Counts{Written: 1, Failed: 3, Retryable: 2, OverBudget: 1}, RunInfo{}, "(e.g. a larger --memory-budget), rerun with --retry-errors", ""},
		{Counts{Skipped: 3}, RunInfo{SkippedFailed: 2, SkippedRetryable: 2}, "(their error column says what failed)", "--memory-budget)"},
		{Counts{Skipped: 3}, RunInfo{SkippedFailed: 2}, "the inputs themselves are bad", "--retry-errors"},
		{Counts{Written: 1, Failed: 2, Duplicates: 2}, RunInfo{}, "2 are duplicate ids (an input holds an id more than once", "bad"},
		{Counts{Written: 1, Failed: 3, Duplicates: 2}, RunInfo{}, "; of the others, the input itself is bad", "inputs themselves"},
		{Counts{Written: 1, Failed: 1, Duplicates: 1}, RunInfo{SharedIDs: []sources.SharedIDs{{Earlier: "a.parquet", Later: "b.parquet", Count: 1}}},
			"1 is a duplicate id (b.parquet repeats 1 id of a.parquet): ids are one namespace", "bad"},
		{Counts{Written: 1, Failed: 1, Duplicates: 1}, RunInfo{SharedIDs: []sources.SharedIDs{{Earlier: "s.tar", Later: "t/s.tar/x.png", Count: 1}}},
			"(rename or move the files", "--id-column"},
		// Repeats within one input (no pair shares ids): a tar's are not
		// fixed by --id-column, so the hint names what fixes each kind.
		{Counts{Written: 1, Failed: 1, Duplicates: 1}, RunInfo{}, "1 is a duplicate id (an input holds an id more than once: a tar member twice, or a Parquet id value twice): ids are one namespace across all inputs, and the first input, member or row with an id keeps it, so a retry does not embed these; to embed them, give the inputs ids that differ (a tar's members names of their own; a Parquet file an --id-column whose keys are unique", "differ across the inputs"},
		{Counts{Skipped: 3}, RunInfo{SkippedFailed: 2, SkippedRetryable: 1}, "the other is a bad input (e.g. a corrupt or truncated image)", ""},
	} {
		var buf bytes.Buffer
		c.info.Output = "out"
		Summary(&buf, "embed", c.c, c.info, nil, time.Second)
		out := buf.String()
		if !strings.Contains(out, c.want) || (c.not != "" && strings.Contains(out, c.not)) {
			t.Errorf("%+v %+v: want %q (and not %q) in\n%s", c.c, c.info, c.want, c.not, out)
		}
	}
}

// The ignored line says what it counts: a path given twice (a repeated
// list line) is not "a file in a directory that is not an image".
func TestSummaryIgnoredSaysWhat(t *testing.T) {
	for _, c := range []struct {
		ignored, repeated int64
		want, not         string
	}{
		{2, 0, "embed: 2 ignored (files in directories and tar members that are not images", "given twice"},
		{1, 1, "embed: 1 ignored (1 input given twice, read once)", "files in directories"},
		{3, 1, "embed: 3 ignored (1 input given twice, read once; 2 files in directories and tar members that are not images", ""},
	} {
		var buf bytes.Buffer
		Summary(&buf, "embed", Counts{Written: 1}, RunInfo{Ignored: c.ignored, Repeated: c.repeated}, nil, time.Second)
		out := buf.String()
		if !strings.Contains(out, c.want) || (c.not != "" && strings.Contains(out, c.not)) {
			t.Errorf("ignored %d, repeated %d: want %q (and not %q) in\n%s", c.ignored, c.repeated, c.want, c.not, out)
		}
	}
}
