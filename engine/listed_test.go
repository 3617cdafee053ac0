package engine

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/sinks"
)

// A directory that could not be listed left an error row under its id
// (locked); a rerun that lists it now reads its files, and once the run
// is complete that row goes, as a container's does once it reads to its
// end: the ids with no embedding are errors/ minus the parts. The error
// rows of inputs that still fail stay.
func TestRerunDropsRowOfDirectoryNowListed(t *testing.T) {
	root, out := filepath.Join(t.TempDir(), "in"), t.TempDir()
	for _, f := range []string{"a.jpg", "locked/x.jpg", "bad.jpg"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The first run's error rows: locked could not be listed, bad.jpg
	// is not an image.
	ew, err := sinks.NewErrors(out, sinks.Meta{Model: "m", Pool: "mean", Dim: 2}, sinks.ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ew.Write([]sinks.ErrorRow{
		{ID: "bad.jpg", Stage: "decode", Error: "unknown format"},
		{ID: "locked", Stage: "read", Error: "read " + filepath.Join(root, "locked") + ": directory: open: permission denied"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	in, err := OpenInputs([]string{root}, nil, InputOptions{ResumeFrom: out})
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for {
		it, err := in.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		read = append(read, it.ID)
		it.Ack(nil)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(read, " "), "a.jpg locked/x.jpg"; got != want {
		t.Errorf("read %q, want %q", got, want)
	}
	if err := in.DropRetried(out); err != nil {
		t.Fatal(err)
	}
	done, err := sinks.ReadDone(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(done.Failed) != 1 || !done.Failed["bad.jpg"] {
		t.Errorf("error rows after the rerun: %v, want bad.jpg only (locked's superseded)", done.Failed)
	}
}
