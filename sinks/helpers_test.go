package sinks

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// duckResult is what testdata/duckdb/query.mjs prints.
type duckResult struct {
	Names []string                     `json:"names"`
	Types []string                     `json:"types"`
	Rows  []map[string]json.RawMessage `json:"rows"`
}

// duckdb runs sql in DuckDB (npm @duckdb/node-api) as an independent reader.
func duckdb(t *testing.T, sql string) duckResult {
	t.Helper()
	out := nodeScript(t, "query.mjs", sql)
	var r duckResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("duckdb output: %v\n%s", err, out)
	}
	return r
}

// nodeScript runs one of the reader scripts in testdata/duckdb. It skips
// only when the npm packages are not installed; CI runs `npm ci` there.
func nodeScript(t *testing.T, script string, args ...string) []byte {
	t.Helper()
	dir, err := filepath.Abs("testdata/duckdb")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"@duckdb/node-api", "apache-arrow"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
			skipOrFail(t, "independent readers not installed (%s missing): run `npm ci` in sinks/testdata/duckdb", pkg)
		}
	}
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s %q: %v\n%s", script, args, err, stderr.String())
	}
	return out
}

// sqlPath quotes a path for a DuckDB string literal.
func sqlPath(p string) string { return "'" + strings.ReplaceAll(p, "'", "''") + "'" }

// numpyPython returns Debian's python with numpy, or skips.
func numpyPython(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		skipOrFail(t, "numpy reader not available (%s -c 'import numpy': %v)", py, err)
	}
	return py
}

func testRows(rng *rand.Rand, start, n, rowLen int) []Row {
	rows := make([]Row, n)
	for i := range rows {
		e := make([]float32, rowLen)
		for j := range e {
			e[j] = rng.Float32()*4 - 2
		}
		// ids like real ones: relative paths, non-ASCII, a quote.
		rows[i] = Row{ID: "dir/ä " + strconv.Itoa(start+i) + "'.jpg", Width: int32(100 + start + i), Height: int32(50 + 2*(start+i)), Embedding: e}
	}
	return rows
}

// visibleFiles lists the non-hidden regular files under dir, relative.
func visibleFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			r, _ := filepath.Rel(dir, p)
			out = append(out, r)
		}
		return nil
	})
	return out
}

// hiddenFiles lists hidden files under dir (temporaries).
func hiddenFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func writeFile(p string) error { return os.WriteFile(p, []byte("x"), 0o644) }

// skipOrFail skips a test whose external tool is missing, unless
// MAEEMBED_REQUIRE_TOOLS=1 (set by .ci/run), where a missing tool is a
// failure: CI must not pass by skipping.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("MAEEMBED_REQUIRE_TOOLS") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
