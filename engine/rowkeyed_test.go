package engine

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/sinks"
)

// An error row under a Parquet row's row id (FILE/ROW: an earlier run
// read neither its image nor its key) is superseded once a rerun reads the
// row's key: a plain rerun and a retry run alike process the row under its
// key and, complete, drop the old row; errors/ never lists an image the
// output has. Rows of another shard keep theirs for that shard's rerun,
// and an error row of another input stays.
func TestRerunDropsRowIDErrorOnceTheKeyReads(t *testing.T) {
	for _, c := range []struct {
		name  string
		retry bool
		shard int
		read  string
		left  []string
	}{
		{"plain", false, 0, "r00 r01 r02 r03", []string{"bad.jpg"}},
		{"retry", true, 0, "r00 r01 r02 r03", []string{"bad.jpg"}},
		{"other shard", false, 1, "r01 r03", []string{"bad.jpg", "rows.parquet/0", "rows.parquet/2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, out := t.TempDir(), t.TempDir()
			writeBMPRows(t, filepath.Join(dir, "rows.parquet"), 4, 2, 2)
			ew, err := sinks.NewErrors(out, sinks.Meta{Model: "m", Pool: "mean", Dim: 2}, sinks.ParquetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := ew.Write([]sinks.ErrorRow{
				{ID: "rows.parquet/0", Stage: "read", Error: "read rows.parquet#0: row 0: reading a row needs about 300 MiB: image needs more memory than the budget"},
				{ID: "rows.parquet/2", Stage: "read", Error: "read rows.parquet#2: row 2: reading a row needs about 300 MiB: image needs more memory than the budget"},
				{ID: "bad.jpg", Stage: "read", Error: "read bad.jpg: " + "input/output error"},
			}); err != nil {
				t.Fatal(err)
			}
			if err := ew.Close(); err != nil {
				t.Fatal(err)
			}
			o := InputOptions{ResumeFrom: out, RetryErrors: c.retry}
			if c.shard > 0 {
				o.Shard.Index, o.Shard.Count = c.shard, 2
			}
			in, err := OpenInputs([]string{filepath.Join(dir, "rows.parquet")}, nil, o)
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
				if it.Release != nil {
					it.Release()
				}
				it.Ack(nil)
			}
			if err := in.Close(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(read, " "); got != c.read {
				t.Errorf("read %q, want %q", got, c.read)
			}
			if err := in.DropRetried(out); err != nil {
				t.Fatal(err)
			}
			done, err := sinks.ReadDone(out)
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for id := range done.Failed {
				left = append(left, id)
			}
			slices.Sort(left)
			if !slices.Equal(left, c.left) {
				t.Errorf("error rows after the rerun: %q, want %q", left, c.left)
			}
		})
	}
}

// Only an error row under a Parquet row id (FILE/ROW) makes a rerun hear
// of the rows whose keys it reads: one bad JPEG in errors/ does not.
func TestAnyRowID(t *testing.T) {
	for _, c := range []struct {
		ids  []string
		want bool
	}{
		{nil, false},
		{[]string{"bad.jpg"}, false},
		{[]string{"a/b/bad.jpg", "k17", "x.tar/img/1.jpg", "dir/", "/"}, false},
		{[]string{"bad.jpg", "rows.parquet/2"}, true},
		{[]string{"d/rows.parquet/0"}, true},
	} {
		ids := map[string]bool{}
		for _, id := range c.ids {
			ids[id] = true
		}
		if got := anyRowID(ids); got != c.want {
			t.Errorf("anyRowID(%q) = %v, want %v", c.ids, got, c.want)
		}
	}
}
