package sinks

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maeembed/maeembed/internal/logtest"
)

// captureLog sends the default slog logger to a buffer until the test
// ends.
func captureLog(t *testing.T) *logtest.Buffer {
	t.Helper()
	var buf logtest.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

// A killed npy run leaves the unpublished temporaries of its set, which no
// rerun can resume: the clean-up at the rerun's start removes them and
// says so in one warning naming them and what happens (the inputs are
// processed again, the set published before is kept as it was). A second
// clean-up has nothing to say; a killed Parquet run's part in progress is
// no npy set.
func TestCleanTempsWarnsOfAnInterruptedNpyRun(t *testing.T) {
	if os.Getenv(killEnv) != "" {
		t.Skip("inside the helper")
	}
	meta := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "v", Dim: killDim}
	for _, published := range []bool{false, true} {
		dir := t.TempDir()
		var before []byte
		if published {
			// A finished earlier run's set, with an id the helper does not write.
			w, err := NewNpy(dir, meta)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write([]Row{{ID: "earlier.jpg", Width: 1, Height: 1, Embedding: make([]float32, killDim)}}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			before, _ = os.ReadFile(filepath.Join(dir, embeddingsName))
		}
		if !runHelper(t, dir, "npy", time.Millisecond) {
			t.Fatal("the npy run was not killed mid-way")
		}
		if h := hiddenFiles(t, dir); len(h) == 0 {
			t.Fatal("the killed npy run left no temporaries")
		}
		log := captureLog(t)
		if err := CleanTemps(dir); err != nil {
			t.Fatal(err)
		}
		out := log.String()
		if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "an interrupted npy run cannot be resumed") ||
			!strings.Contains(out, "its inputs are processed again") || !strings.Contains(out, "."+embeddingsName+".") || !strings.Contains(out, "."+metadataName+".") {
			t.Errorf("published %v: the clean-up's log does not warn once, naming the removed files:\n%s", published, out)
		}
		if want := "published=\"none"; !published && !strings.Contains(out, want) {
			t.Errorf("no set published before: log %q, want %q", out, want)
		}
		if want := "published=\"metadata.parquet and its .npy files, unchanged"; published && !strings.Contains(out, want) {
			t.Errorf("a set published before: log %q, want %q", out, want)
		}
		if h := hiddenFiles(t, dir); len(h) != 0 {
			t.Errorf("temporaries after the clean-up: %v", h)
		}
		if after, _ := os.ReadFile(filepath.Join(dir, embeddingsName)); string(after) != string(before) {
			t.Errorf("published %v: the clean-up changed %s", published, embeddingsName)
		}
		log = captureLog(t)
		if err := CleanTemps(dir); err != nil {
			t.Fatal(err)
		}
		if out := log.String(); out != "" {
			t.Errorf("a second clean-up logs %q", out)
		}
	}

	dir := t.TempDir()
	if !runHelper(t, dir, "parquet", time.Millisecond) {
		t.Fatal("the Parquet run was not killed mid-way")
	}
	log := captureLog(t)
	if err := CleanTemps(dir); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "npy") {
		t.Errorf("the clean-up of a Parquet output warns of npy: %s", log.String())
	}
}
