package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"

	"github.com/maeembed/maeembed/stages"
)

// readItems reads every item of r, acking and releasing each.
func readItems(t *testing.T, r *Reader) []Item {
	t.Helper()
	var items []Item
	for {
		it, err := r.Next(context.Background())
		if err == io.EOF {
			return items
		}
		if err != nil {
			t.Fatal(err)
		}
		if it.Release != nil {
			it.Release()
		}
		it.Ack(nil)
		items = append(items, it)
	}
}

// Rows of a page too large for the budget are error rows under their keys, read from the id column alone,
// with their own row numbers in the error; RowKeyed hears of the row ids
// (FILE/ROW) of this shard's rows, whose earlier error rows they supersede.
func TestOverBudgetPageRowsKeepTheirKeys(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}, {Name: "jpg", Type: arrow.BinaryTypes.Binary}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	// Small rows and a large last one, in one page: the footer's average
	// per row fits the budget, the page the first row is read with does not.
	const rows = 8
	for i := range rows {
		size := 1 << 10
		if i == rows-1 {
			size = 6 << 20
		}
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("k%d", i))
		b.Field(1).(*array.BinaryBuilder).Append(budgetImage(i, size))
	}
	rec := b.NewRecord()
	defer rec.Release()
	p := filepath.Join(t.TempDir(), "big.parquet")
	if err := os.WriteFile(p, parquetBytes(t, rec, parquet.WithDictionaryDefault(false)), 0o644); err != nil {
		t.Fatal(err)
	}
	var keyed []string
	r, err := Open([]string{p}, Options{Shard: Shard{1, 2}, RowKeyed: func(id string) { keyed = append(keyed, id) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bud := stages.NewBudget(4 << 20)
	r.SetBudget(bud)
	items := readItems(t, r)
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
		row := it.Pos.Row
		msg := fmt.Sprint(it.Err)
		if !errors.Is(it.Err, stages.ErrOverBudget) || !strings.Contains(msg, fmt.Sprintf("row %d: ", row)) {
			t.Errorf("%s: err %v; want the budget's refusal of row %d", it.ID, it.Err, row)
		}
		for other := range int64(rows) {
			if other != row && strings.Contains(msg, fmt.Sprintf("row %d", other)) {
				t.Errorf("%s (row %d): error %q names row %d", it.ID, row, msg, other)
			}
		}
	}
	if want := []string{"k1", "k3", "k5", "k7"}; !slices.Equal(ids, want) {
		t.Errorf("ids %q, want %q (the keys, not big.parquet/ROW)", ids, want)
	}
	if want := []string{"big.parquet/1", "big.parquet/3", "big.parquet/5", "big.parquet/7"}; !slices.Equal(keyed, want) {
		t.Errorf("RowKeyed heard %q, want %q", keyed, want)
	}
	if bud.InUse() != 0 {
		t.Errorf("%d bytes of the budget held after the run", bud.InUse())
	}
}

// damageColumnPage flips the byte at off in the first page header of
// column col in row group g of data (a Parquet file).
func damageColumnPage(t *testing.T, data []byte, g, col int, off int64) []byte {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	cc, err := rdr.MetaData().RowGroup(g).ColumnChunk(col)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(data)
	out[cc.DataPageOffset()+off] ^= 0xff
	return out
}

// A damaged page header of the image column (one that crashes Arrow's
// reader with a nil pointer): its rows are error rows under their keys
// (the id column reads), and the error says the data is corrupt, where,
// and what the reader did, not just "nil pointer dereference". A damaged
// page of the id column leaves its rows their row ids (FILE/ROW).
func TestDamagedPageRowsIDs(t *testing.T) {
	orig := corruptParquet(t) // key, jpg; row groups of 5, 5 and 2 rows
	for _, c := range []struct {
		col     int
		off     int64 // a byte of the page header whose flip leaves it without its data page header
		name    string
		wantIDs []string
	}{
		{1, 8, "jpg", []string{"ka", "kb", "kc", "kd", "ke"}},
		{0, 6, "key", []string{"x.parquet/0", "x.parquet/1", "x.parquet/2", "x.parquet/3", "x.parquet/4"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			items, _, _ := readParquetBytes(t, dir, damageColumnPage(t, orig, 0, c.col, c.off))
			if len(items) != corruptRows {
				t.Fatalf("%d items, want %d", len(items), corruptRows)
			}
			var ids []string
			for i, it := range items[:5] {
				ids = append(ids, it.ID)
				msg := fmt.Sprint(it.Err)
				if it.Err == nil || !strings.HasPrefix(strings.TrimPrefix(msg, "read "+filepath.Join(dir, "x.parquet")+fmt.Sprintf("#%d: ", i)), fmt.Sprintf("row %d: ", i)) {
					t.Errorf("row %d: err %v", i, it.Err)
				}
				if !strings.Contains(msg, "corrupt Parquet data in "+filepath.Join(dir, "x.parquet")+" row group 0 column "+c.name+" (the reader crashed: ") {
					t.Errorf("row %d: %q does not say where the data is corrupt", i, msg)
				}
			}
			if !slices.Equal(ids, c.wantIDs) {
				t.Errorf("ids %q, want %q", ids, c.wantIDs)
			}
			for _, it := range items[5:] {
				if it.Err != nil || !strings.HasPrefix(it.ID, "k") {
					t.Errorf("%s, in an intact row group: err %v", it.ID, it.Err)
				}
			}
		})
	}
}

// countIDReads makes readIDs fail with fail (nil: read) for the test,
// counting its calls.
func countIDReads(t *testing.T, fail error) *int {
	t.Helper()
	calls, orig := new(int), readIDs
	readIDs = func(l *leaf, n int) error {
		*calls++
		if fail != nil {
			return fail
		}
		return orig(l, n)
	}
	t.Cleanup(func() { readIDs = orig })
	return calls
}

// An id column that cannot be read in a broken row group (an error, not a
// crash) is tried once: its rows keep their row ids, and the later rows do
// not each build a new id reader and read again from the group's first row.
// A damaged page header that leaves the image column's pages short of its
// row group's rows (no crash) is corrupt data too, and says where.
func TestShortImagePagesSayCorrupt(t *testing.T) {
	dir := t.TempDir()
	items, _, _ := readParquetBytes(t, dir, damageColumnPage(t, corruptParquet(t), 0, 1, 0))
	if len(items) != corruptRows {
		t.Fatalf("%d items, want %d", len(items), corruptRows)
	}
	want := "corrupt Parquet data in " + filepath.Join(dir, "x.parquet") + " row group 0 column jpg: its pages end after "
	for _, it := range items[:5] {
		if msg := fmt.Sprint(it.Err); !strings.Contains(msg, want) {
			t.Errorf("%s: %q does not say the data is corrupt and where", it.ID, msg)
		}
	}
}

func TestBrokenGroupIDReadErrorIsNotRetriedPerRow(t *testing.T) {
	calls := countIDReads(t, errors.New("id page unreadable"))
	dir := t.TempDir()
	// The image page of row group 0 (5 rows) is damaged.
	items, _, _ := readParquetBytes(t, dir, damageColumnPage(t, corruptParquet(t), 0, 1, 8))
	if len(items) != corruptRows {
		t.Fatalf("%d items, want %d", len(items), corruptRows)
	}
	for i, it := range items[:5] {
		if want := fmt.Sprintf("x.parquet/%d", i); it.ID != want || it.Err == nil {
			t.Errorf("row %d: id %s err %v, want %s and an error", i, it.ID, it.Err, want)
		}
	}
	if *calls != 1 {
		t.Errorf("the broken row group's ids were read %d times, want once", *calls)
	}
}

// A listing reads only the id column, under the budget: when that breaks
// a row group its rows keep their row ids, and the ids are not read again
// outside the budget.
func TestListingDoesNotReadBrokenGroupIDsAgain(t *testing.T) {
	calls := countIDReads(t, nil)
	p := filepath.Join(t.TempDir(), "x.parquet")
	if err := os.WriteFile(p, damageColumnPage(t, corruptParquet(t), 0, 0, 6), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open([]string{p}, Options{NoData: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	items := readItems(t, r)
	if len(items) != corruptRows {
		t.Fatalf("%d items, want %d", len(items), corruptRows)
	}
	for i, it := range items[:5] {
		if want := fmt.Sprintf("x.parquet/%d", i); it.ID != want || it.Err == nil {
			t.Errorf("row %d: id %s err %v, want %s and an error", i, it.ID, it.Err, want)
		}
	}
	if *calls != 0 {
		t.Errorf("a listing read the broken row group's ids %d times outside the budget", *calls)
	}
}
