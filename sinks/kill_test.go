package sinks

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	killEnv = "SINKS_KILL_HELPER_DIR"
	// killAtPublishEnv set: the npy helper kills itself between the
	// renames of its set's publication.
	killAtPublishEnv = "SINKS_KILL_AT_PUBLISH"
	killItems        = 3000
	killDim          = 64
)

// TestKillHelper is the child process of TestKillAndResume: it embeds
// items 0..killItems-1 into the directory in killEnv, skipping ids that are
// already done, as maeembed's resume does.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv(killEnv)
	if dir == "" {
		t.Skip("helper process for TestKillAndResume")
	}
	format := os.Getenv("SINKS_KILL_FORMAT")
	if os.Getenv(killAtPublishEnv) != "" {
		// Killed right after the first .npy file of the set is renamed
		// into place, before metadata.parquet is (TestKillBetweenNpyRenames).
		publishCut = func(renamed int) bool {
			if renamed == 1 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
			return false
		}
	}
	if err := CleanTemps(dir); err != nil {
		t.Fatal(err)
	}
	done, err := ReadDoneIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	meta := Meta{Model: "m", Pool: "mean", Preprocess: "p", Version: "v", Dim: killDim}
	out := bufio.NewWriter(os.Stdout)
	opts := ParquetOptions{MaxFileRows: 100, OnPublish: func(p string, n int) {
		fmt.Fprintf(out, "published %s %d\n", filepath.Base(p), n)
		out.Flush()
	}}
	var w EmbeddingWriter
	var ew ErrorWriter
	switch format {
	case "npy":
		w, err = NewNpy(dir, meta)
	default:
		w, err = NewParquet(dir, meta, opts)
		if err == nil {
			ew, err = NewErrors(dir, meta, ParquetOptions{MaxFileRows: 10})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(out, "started")
	out.Flush()
	var batch []Row
	var errs []ErrorRow
	for i := 0; i < killItems; i++ {
		id := fmt.Sprintf("img/%05d.jpg", i)
		if done[id] {
			continue
		}
		if ew != nil && i%37 == 0 { // some items fail
			errs = append(errs, ErrorRow{ID: id, Stage: "decode", Error: "bad"})
			if err := ew.Write(errs); err != nil {
				t.Fatal(err)
			}
			errs = errs[:0]
			continue
		}
		e := make([]float32, killDim)
		for j := range e {
			e[j] = float32(i) + float32(j)/100
		}
		batch = append(batch, Row{ID: id, Width: int32(i), Height: 1, Embedding: e})
		if len(batch) == 8 {
			if err := w.Write(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
			time.Sleep(200 * time.Microsecond)
		}
	}
	if err := w.Write(batch); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if ew != nil {
		if err := ew.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintln(out, "closed")
	out.Flush()
}

// runHelper runs the child; with killAfter > 0 it sends SIGKILL after that
// long (once the writers exist) and reports whether it was killed.
func runHelper(t *testing.T, dir, format string, killAfter time.Duration) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.v")
	cmd.Env = append(os.Environ(), killEnv+"="+dir, "SINKS_KILL_FORMAT="+format)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var log []string
	closed := false
	for sc.Scan() {
		line := sc.Text()
		log = append(log, line)
		if line == "started" && killAfter > 0 {
			time.AfterFunc(killAfter, func() { cmd.Process.Kill() }) // SIGKILL
		}
		if line == "closed" {
			closed = true
		}
	}
	err = cmd.Wait()
	pub := 0
	for _, l := range log {
		if strings.HasPrefix(l, "published ") {
			pub++
		}
	}
	t.Logf("run (kill after %v): %d files published, closed %v", killAfter, pub, closed)
	if killAfter == 0 && (err != nil || !closed) {
		t.Fatalf("helper: %v\n%s\n%s", err, strings.Join(log, "\n"), stderr.String())
	}
	return !closed
}

func TestKillAndResume(t *testing.T) {
	if os.Getenv(killEnv) != "" {
		t.Skip("inside the helper")
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for _, format := range []string{"parquet", "npy"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			kills := 0
			for round := 0; round < 4; round++ {
				delay := time.Duration(1+rng.IntN(400)) * time.Millisecond
				if runHelper(t, dir, format, delay) {
					kills++
				}
				checkVisibleComplete(t, dir)
			}
			if format == "npy" {
				// A published set must survive a killed resume untouched.
				runHelper(t, dir, format, 0)
				checkVisibleComplete(t, dir)
				before, _ := os.ReadFile(filepath.Join(dir, embeddingsName))
				runHelper(t, dir, format, time.Millisecond)
				after, _ := os.ReadFile(filepath.Join(dir, embeddingsName))
				if string(before) != string(after) {
					t.Fatal("a killed resume changed embeddings.npy")
				}
			}
			runHelper(t, dir, format, 0)
			t.Logf("%s: %d of 4 runs killed mid-way", format, kills)
			checkVisibleComplete(t, dir)
			if err := CleanTemps(dir); err != nil {
				t.Fatal(err)
			}
			if h := hiddenFiles(t, dir); len(h) != 0 {
				t.Fatalf("temporaries after CleanTemps: %v", h)
			}

			// Every id exactly once, across rows and error rows (DuckDB).
			var q string
			if format == "npy" {
				q = "SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS d FROM read_parquet(" + sqlPath(filepath.Join(dir, metadataName)) + ")"
			} else {
				q = "SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS d FROM (SELECT id FROM read_parquet(" + sqlPath(filepath.Join(dir, "part-*.parquet")) +
					") UNION ALL SELECT id FROM read_parquet(" + sqlPath(filepath.Join(dir, "errors", "part-*.parquet")) + "))"
			}
			r := duckdb(t, q)
			var n, d int
			json.Unmarshal(r.Rows[0]["n"], &n)
			json.Unmarshal(r.Rows[0]["d"], &d)
			if n != killItems || d != killItems {
				t.Fatalf("after kills and resume: %d rows, %d distinct ids, want %d each", n, d, killItems)
			}
			if format == "npy" {
				// Row i of embeddings.npy belongs to row i of metadata.parquet.
				_, vals, err := ReadNpyFloat32(filepath.Join(dir, embeddingsName))
				if err != nil {
					t.Fatal(err)
				}
				tbl, _, err := ReadParquet(filepath.Join(dir, metadataName))
				if err != nil {
					t.Fatal(err)
				}
				defer tbl.Release()
				for i, row := range tableRows(t, tbl) {
					k, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(row.ID, "img/"), ".jpg"))
					if vals[i*killDim] != float32(k) || row.Width != int32(k) {
						t.Fatalf("row %d: id %s but embedding starts %v", i, row.ID, vals[i*killDim])
					}
				}
			}
		})
	}
}

// checkVisibleComplete opens every visible output file with its reader.
func checkVisibleComplete(t *testing.T, dir string) {
	t.Helper()
	for _, f := range visibleFiles(t, dir) {
		p := filepath.Join(dir, f)
		switch filepath.Ext(f) {
		case ".parquet":
			tbl, _, err := ReadParquet(p)
			if err != nil {
				t.Fatalf("visible file %s is not complete: %v", f, err)
			}
			tbl.Release()
		case ".npy":
			if _, _, err := ReadNpyFloat32(p); err != nil {
				t.Fatalf("visible file %s is not complete: %v", f, err)
			}
		default:
			t.Fatalf("unexpected file %s", f)
		}
	}
}
