package sinks

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// After a retry run, DropErrorRows rewrites the error parts without the
// superseded rows: a part keeps its other rows, stage and error text and
// its metadata (a later error writer with the run's Meta still accepts the
// directory), a part left empty is removed, a part without such rows is
// not touched, and ReadDone then reports the ids where they now are.
func TestDropErrorRows(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Model: "m", Pool: "mean", Dim: 2}
	write := func(rows ...ErrorRow) {
		t.Helper()
		ew, err := NewErrors(dir, meta, ParquetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ew.Write(rows); err != nil {
			t.Fatal(err)
		}
		if err := ew.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(ErrorRow{ID: "big.png", Stage: "decode", Error: "over budget"}, ErrorRow{ID: "bad.jpg", Stage: "decode", Error: "unknown format"})
	write(ErrorRow{ID: "huge.png", Stage: "decode", Error: "over budget"})
	write(ErrorRow{ID: "other.jpg", Stage: "read", Error: "permission denied"})
	w, err := NewParquet(dir, meta, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]Row{{ID: "ok.jpg", Embedding: []float32{1, 2}}, {ID: "big.png", Embedding: []float32{3, 4}}, {ID: "huge.png", Embedding: []float32{5, 6}}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := ReadDone(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.ErrorParts) != 3 || !before.Failed["big.png"] || !before.Output["big.png"] || before.Output["bad.jpg"] {
		t.Fatalf("before: %+v", before)
	}
	untouched := filepath.Join(dir, "errors", "part-00002.parquet")
	st0, err := os.Stat(untouched)
	if err != nil {
		t.Fatal(err)
	}
	retried := map[string]bool{"big.png": true, "huge.png": true}
	if err := DropErrorRows(dir, before.ErrorParts, func(id string) bool { return retried[id] }); err != nil {
		t.Fatal(err)
	}
	after, err := ReadDone(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(after.Failed)); !slices.Equal(got, []string{"bad.jpg", "other.jpg"}) {
		t.Errorf("error ids after the drop %q, want bad.jpg and other.jpg", got)
	}
	if len(after.ErrorParts) != 2 {
		t.Errorf("error parts after the drop %v: the emptied one should be gone", after.ErrorParts)
	}
	if st1, err := os.Stat(untouched); err != nil || !os.SameFile(st0, st1) {
		t.Errorf("a part without superseded rows was rewritten (%v)", err)
	}
	if h := hiddenFiles(t, dir); len(h) != 0 {
		t.Errorf("left behind: %v", h)
	}
	r := duckdb(t, "SELECT id, stage, error FROM read_parquet("+sqlPath(filepath.Join(dir, "errors", "part-00000.parquet"))+")")
	if len(r.Rows) != 1 {
		t.Fatalf("rewritten part: %v, want the one row kept", r.Rows)
	}
	var got ErrorRow
	json.Unmarshal(r.Rows[0]["id"], &got.ID)
	json.Unmarshal(r.Rows[0]["stage"], &got.Stage)
	json.Unmarshal(r.Rows[0]["error"], &got.Error)
	if got.ID != "bad.jpg" || got.Stage != "decode" || got.Error != "unknown format" {
		t.Errorf("kept row %+v", got)
	}
	kv, err := fileMetadata(filepath.Join(dir, "errors", "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	keys, vals := meta.keyValues()
	for i, k := range keys {
		if kv[k] != vals[i] {
			t.Errorf("metadata %s = %q after the rewrite, want %q", k, kv[k], vals[i])
		}
	}
	write(ErrorRow{ID: "big.png", Stage: "decode", Error: "again"}) // the run's Meta still fits
}

// ReadDone tells an id's "duplicate id" error rows (tar members and
// Parquet rows whose id an earlier one has) from its own: it counts both,
// and a duplicate's row is never retryable, even when its id or path holds
// the text of a retryable error.
func TestReadDoneCountsDuplicateRows(t *testing.T) {
	dir := t.TempDir()
	ew, err := NewErrors(dir, Meta{Model: "m", Pool: "mean", Dim: 2}, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const dup = `read /in/a.tar:%s: duplicate id "a.tar/%s": an earlier member or row has it`
	rows := []ErrorRow{
		{ID: "a.tar/big.png", Stage: "decode", Error: "decode: needs more memory than the budget"},
		{ID: "a.tar/big.png", Stage: "read", Error: fmt.Sprintf(dup, "big.png", "big.png")},
		{ID: "a.tar/big.png", Stage: "read", Error: fmt.Sprintf(dup, "big.png", "big.png")},
		{ID: "a.tar/input/output error.png", Stage: "read", Error: fmt.Sprintf(dup, "input/output error.png", "input/output error.png")},
		{ID: "bad.jpg", Stage: "decode", Error: "unknown format"},
		// An item whose id an earlier input has (another file, a tar, a
		// Parquet file): a duplicate too.
		{ID: "x.png", Stage: "read", Error: `read /in/t/x.png: duplicate id "x.png" (first in /in/input/output.tar): an earlier input has it (ids are one namespace across all inputs)`},
	}
	if err := ew.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	done, err := ReadDone(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id              string
		rows, dups      int
		failed, retries bool
	}{
		{"a.tar/big.png", 3, 2, true, true},
		{"a.tar/input/output error.png", 1, 1, true, false},
		{"bad.jpg", 1, 0, true, false},
		{"x.png", 1, 1, true, false},
	} {
		if done.Rows[c.id] != c.rows || done.Duplicates[c.id] != c.dups || done.Failed[c.id] != c.failed || done.Retryable[c.id] != c.retries {
			t.Errorf("%s: %d rows, %d duplicates, failed %v, retryable %v; want %d, %d, %v, %v", c.id,
				done.Rows[c.id], done.Duplicates[c.id], done.Failed[c.id], done.Retryable[c.id], c.rows, c.dups, c.failed, c.retries)
		}
	}
	for _, r := range rows {
		if got, want := DuplicateIDError(r.Error), r.Stage == "read"; got != want {
			t.Errorf("DuplicateIDError(%q) = %v", r.Error, got)
		}
	}
	if !RetryableError("read /in/input/output error.png: truncated") || RetryableError(rows[3].Error) {
		t.Error("RetryableError: a duplicate id's row whose path holds a retryable text is not told apart")
	}
	// A listed file that is not there may be there for the retry.
	if !RetryableError("open later.jpg: no such file or directory") || RetryableError("decode bad.jpg: invalid JPEG format: missing SOI marker") {
		t.Error("RetryableError: a missing file is not retryable, or a corrupt one is")
	}
}

// A duplicate id's row says which repeat of the id it records, so a
// resumed run of any shard knows that one is done and not another
// shard's; rows without the number (an older run's) stand for the first
// repeats, as many as there are.
func TestRepeatDone(t *testing.T) {
	dir := t.TempDir()
	ew, err := NewErrors(dir, Meta{Model: "m", Pool: "mean", Dim: 2}, ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rows := []ErrorRow{
		// Repeat 2 of a member that a tar has three times (shard 0/2's).
		{ID: "a.tar/1.png", Stage: "read", Error: `read /in/a.tar:1.png: duplicate id "a.tar/1.png" (repeat 2)` + DuplicateIDMarker},
		// An id whose text holds "(repeat 3)", from another input.
		{ID: "x (repeat 3)", Stage: "read", Error: `read /in/b.tar:x (repeat 3): duplicate id "x (repeat 3)" (first in /in/a (repeat 7).tar) (repeat 1)` + DuplicateIDInputMarker},
		// An older run's row, without the number.
		{ID: "old.png", Stage: "read", Error: `read /in/t/old.png: duplicate id "old.png"` + DuplicateIDMarker},
		// Not a duplicate's row, whatever it says.
		{ID: "y.png", Stage: "decode", Error: "decode y.png (repeat 4): corrupt"},
	}
	if err := ew.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{2, 1, 0, 0} {
		if got := DuplicateRepeat(rows[i].Error); got != want {
			t.Errorf("DuplicateRepeat(%q) = %d, want %d", rows[i].Error, got, want)
		}
	}
	done, err := ReadDone(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		n    int
		want bool
	}{
		{"a.tar/1.png", 1, false}, // shard 1/2's: not recorded
		{"a.tar/1.png", 2, true},
		{"a.tar/1.png", 3, false},
		{"x (repeat 3)", 1, true},
		{"x (repeat 3)", 3, false},
		{"old.png", 1, true},
		{"old.png", 2, false},
		{"y.png", 1, false},
	} {
		if got := done.RepeatDone(c.id, c.n); got != c.want {
			t.Errorf("RepeatDone(%q, %d) = %v, want %v", c.id, c.n, got, c.want)
		}
	}
}

// DropErrorRows removes the errors directory when removing its last part
// leaves it empty (a reader's errors/*.parquet would match nothing), but
// not one that holds anything else, nor an empty one it removed nothing
// from.
func TestDropErrorRowsRemovesTheEmptiedDirectory(t *testing.T) {
	meta := Meta{Model: "m", Pool: "mean", Dim: 2}
	withErrors := func(t *testing.T) (string, []string) {
		dir := t.TempDir()
		ew, err := NewErrors(dir, meta, ParquetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ew.Write([]ErrorRow{{ID: "big.png", Stage: "decode", Error: "over budget"}}); err != nil {
			t.Fatal(err)
		}
		if err := ew.Close(); err != nil {
			t.Fatal(err)
		}
		done, err := ReadDone(dir)
		if err != nil {
			t.Fatal(err)
		}
		return dir, done.ErrorParts
	}
	all := func(string) bool { return true }

	dir, parts := withErrors(t)
	if err := DropErrorRows(dir, parts, all); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "errors")); !os.IsNotExist(err) {
		t.Errorf("the emptied errors directory is still there (%v)", err)
	}

	dir, parts = withErrors(t)
	other := filepath.Join(dir, "errors", "notes.txt")
	if err := os.WriteFile(other, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := DropErrorRows(dir, parts, all); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a file of the errors directory that is no part is gone: %v", err)
	}

	dir, parts = withErrors(t)
	if err := DropErrorRows(dir, parts, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(parts[0]); err != nil {
		t.Fatal(err)
	}
	if err := DropErrorRows(dir, parts, all); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "errors")); err != nil {
		t.Errorf("an errors directory empty before the drop was removed: %v", err)
	}
}
