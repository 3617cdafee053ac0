package main

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maeembed/maeembed/pipeline"
)

// The bar (forced on a buffer, as on a terminal) shows done/total, the
// error count and a speed, and log lines during it land above it.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	var written atomic.Int64
	counts := func() progressCounts { return progressCounts{written: written.Load(), failed: 2, skipped: 5} }
	prev := slog.Default()
	written.Store(13)
	p := startProgress(&buf, true, 40, time.Now().Add(-time.Second), counts) // draws 20/40 at once
	slog.Warn("input failed", "id", "x.jpg")
	time.Sleep(2 * barEvery) // a redraw prints the log line above the bar
	written.Store(33)
	p.stop()
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

// Without a terminal the reporter writes no bar at all.
func TestProgressNoTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := startProgress(&buf, false, 10, time.Now(), func() progressCounts { return progressCounts{written: 3} })
	p.stop()
	if buf.Len() != 0 {
		t.Errorf("wrote %q without a terminal", buf.String())
	}
	if isTerminal(&buf) {
		t.Error("a buffer is not a terminal")
	}
	// The periodic line (every 10 s) says how far the run is.
	var logs bytes.Buffer
	prev := slog.Default()
	defer slog.SetDefault(prev)
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	p = startProgress(nil, false, 10, time.Now().Add(-time.Second), func() progressCounts { return progressCounts{written: 3, failed: 1, skipped: 4} })
	p.logLine()
	p.stop()
	if !regexp.MustCompile(`msg=progress done=8 total=10 percent=80\.0 written=3 failed=1 skipped=4 images_per_s=[0-9.]+ eta=\d`).MatchString(logs.String()) {
		t.Errorf("progress line: %s", logs.String())
	}
	// Stream mode: no total.
	logs.Reset()
	p = startProgress(nil, false, 0, time.Now(), func() progressCounts { return progressCounts{written: 3} })
	p.logLine()
	p.stop()
	if strings.Contains(logs.String(), "total=") || !strings.Contains(logs.String(), "done=3") {
		t.Errorf("progress line without a total: %s", logs.String())
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
	writeSummary(&buf, "embed", progressCounts{written: 98, failed: 2, skipped: 7}, 10*time.Second, stats)
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
