package sources

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// A row whose id cannot be read (a null in the id column) is an error row
// under its row id (FILE/ROW) at its own position, whatever rows before it
// in the same read were passed over: done on resume, a repeat done, another
// shard's. It is never filed under the id or index of a row passed over,
// never called that row's duplicate, and the global index counts it.
func TestUnreadableIDAfterASkippedRow(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "jpg", Type: arrow.BinaryTypes.Binary}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	// Rows 0…5: k1, k2, null, k1 (a repeat), null, k3.
	for i, k := range []string{"k1", "k2", "", "k1", "", "k3"} {
		if k == "" {
			b.Field(0).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(0).(*array.StringBuilder).Append(k)
		}
		b.Field(1).(*array.BinaryBuilder).Append([]byte{byte('A' + i)})
	}
	path := writeDataset(t, b)
	null := func(row int) string {
		return fmt.Sprintf("ds.parquet/%d@%d!read %s#%d: row %d: id column \"key\" is null", row, row, path, row, row)
	}
	dup := "k1@3!read " + path + `#3: duplicate id "k1" (repeat 1)` + duplicateIDEnd
	isK := func(id string) bool { return strings.HasPrefix(id, "k") }
	for _, c := range []struct {
		name string
		o    Options
		want []string
	}{
		{"all", Options{}, []string{"k1@0=A", "k2@1=B", null(2), dup, null(4), "k3@5=F"}},
		{"k2 done", Options{Done: func(id string) bool { return id == "k2" }}, []string{"k1@0=A", null(2), dup, null(4), "k3@5=F"}},
		{"keys done", Options{Done: isK, DoneRepeat: func(string, int) bool { return true }}, []string{null(2), null(4)}},
		{"all done", Options{Done: func(string) bool { return true }, DoneRepeat: func(string, int) bool { return true }}, nil},
		{"shard 0/2", Options{Shard: Shard{0, 2}}, []string{"k1@0=A", null(2), null(4)}},
		{"shard 1/2", Options{Shard: Shard{1, 2}}, []string{"k2@1=B", dup, "k3@5=F"}},
		{"listing, k2 done", Options{NoData: true, Done: func(id string) bool { return id == "k2" }}, []string{"k1@0=", null(2), dup, null(4), "k3@5="}},
	} {
		r, err := Open([]string{path}, c.o)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			it, err := r.Next(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			s := fmt.Sprintf("%s@%d", it.ID, it.Pos.Index)
			if it.Err != nil {
				s += "!" + it.Err.Error()
			} else {
				s += "=" + string(it.Data)
			}
			got = append(got, s)
			it.Ack(nil)
		}
		if seen := r.Stats().Seen; seen != 6 {
			t.Errorf("%s: Stats().Seen = %d after the 6 rows", c.name, seen)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s:\ngot  %q\nwant %q", c.name, got, c.want)
		}
	}
}
