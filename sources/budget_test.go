package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"

	"github.com/maeembed/maeembed/stages"
)

// budgetImage is the bytes of item i: n bytes of one value, so that a
// value read from the wrong buffer shows.
func budgetImage(i, n int) []byte { return bytes.Repeat([]byte{byte(i + 1)}, n) }

// writeBudgetParquet writes rows of the given sizes, rowsPerGroup to a
// row group, one row to a page, uncompressed, with ids "r<i>".
func writeBudgetParquet(t *testing.T, path string, sizes []int, rowsPerGroup int64) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}, {Name: "jpg", Type: arrow.BinaryTypes.Binary}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, n := range sizes {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("r%d", i))
		b.Field(1).(*array.BinaryBuilder).Append(budgetImage(i, n))
	}
	rec := b.NewRecord()
	defer rec.Release()
	data := parquetBytes(t, rec, parquet.WithMaxRowGroupLength(rowsPerGroup), parquet.WithDictionaryDefault(false),
		parquet.WithBatchSize(1), parquet.WithDataPageSize(1))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeBudgetTar(t *testing.T, path string, sizes []int) {
	t.Helper()
	var ms [][2]string
	for i, n := range sizes {
		ms = append(ms, [2]string{fmt.Sprintf("r%02d.jpg", i), string(budgetImage(i, n))})
	}
	writeTar(t, path, false, ms)
}

// openBudgeted opens a Reader on input under a budget of size bytes.
func openBudgeted(t *testing.T, input string, size int64) (*Reader, *stages.Budget) {
	t.Helper()
	r, err := Open([]string{input}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	b := stages.NewBudget(size)
	r.SetBudget(b)
	return r, b
}

// Under a budget, the bytes of the items a Reader has handed out and that
// are not released yet are always counted by the budget (so they never
// exceed it), for tar members and Parquet rows alike, while slow workers
// hold them; every item arrives whole and every byte is given back.
func TestBudgetBoundsBytesInFlight(t *testing.T) {
	const rows, size = 40, 300 << 10
	sizes := make([]int, rows)
	for i := range sizes {
		sizes[i] = size
	}
	for _, kind := range []string{"tar", "parquet"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "shard."+kind)
			if kind == "tar" {
				writeBudgetTar(t, p, sizes)
			} else {
				writeBudgetParquet(t, p, sizes, 16)
			}
			r, b := openBudgeted(t, p, 8<<20)

			var held atomic.Int64 // bytes of items handed out, not released
			items := make(chan Item)
			var wg sync.WaitGroup
			var bad atomic.Int64
			for range 3 { // workers slower than the reader
				wg.Add(1)
				go func() {
					defer wg.Done()
					for it := range items {
						i := -1
						fmt.Sscanf(it.ID[strings.LastIndexAny(it.ID, "r")+1:], "%d", &i)
						if it.Err != nil || i < 0 || !bytes.Equal(it.Data, budgetImage(i, size)) {
							bad.Add(1)
						}
						time.Sleep(time.Millisecond)
						held.Add(-int64(len(it.Data))) // before the release: see below
						it.Release()
					}
				}()
			}
			n, most := 0, int64(0)
			for {
				it, err := r.Next(context.Background())
				if err != nil {
					if err.Error() != "EOF" {
						t.Fatal(err)
					}
					break
				}
				if it.Release == nil {
					t.Fatalf("%s: no release: its bytes were not taken from the budget (err %v)", it.ID, it.Err)
				}
				n++
				h := held.Add(int64(len(it.Data)))
				most = max(most, h)
				// InUse first: a worker lowers held before it releases, so
				// what the budget no longer counts is no longer in held.
				if u := b.InUse(); held.Load() > u {
					t.Errorf("after %s: %d bytes handed out, the budget counts %d", it.ID, held.Load(), u)
				}
				items <- it
			}
			close(items)
			wg.Wait()
			if n != rows || bad.Load() != 0 {
				t.Errorf("%d items, %d wrong; want %d right", n, bad.Load(), rows)
			}
			if b.Peak() > b.Size() || b.Peak() < size {
				t.Errorf("budget peak %d, size %d, one item %d", b.Peak(), b.Size(), size)
			}
			if most > b.Size() {
				t.Errorf("%d bytes of items out at once, over the budget of %d", most, b.Size())
			}
			r.Close()
			if b.InUse() != 0 {
				t.Errorf("%d bytes still held after every item was released", b.InUse())
			}
		})
	}
}

// An item larger than the whole budget is not read: it is its own error
// item, naming the budget, and the items after it are read (files, tar
// members and Parquet rows).
func TestBudgetOversizedItemIsAnErrorItem(t *testing.T) {
	sizes := []int{100 << 10, 3 << 20, 100 << 10}
	for _, kind := range []string{"files", "tar", "parquet"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "shard."+kind)
			switch kind {
			case "files":
				in = dir
				for i, n := range sizes {
					write(t, filepath.Join(dir, fmt.Sprintf("r%02d.jpg", i)), string(budgetImage(i, n)))
				}
			case "tar":
				writeBudgetTar(t, in, sizes)
			default:
				writeBudgetParquet(t, in, sizes, 1)
			}
			r, b := openBudgeted(t, in, 2<<20)
			for i, n := range sizes {
				it, err := r.Next(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if n > int(b.Size()) {
					if it.Err == nil || !errors.Is(it.Err, stages.ErrOverBudget) || it.Data != nil {
						t.Errorf("item %d (%d bytes): err %v, %d bytes; want the budget's refusal and no data", i, n, it.Err, len(it.Data))
					}
					continue
				}
				if it.Err != nil || !bytes.Equal(it.Data, budgetImage(i, n)) {
					t.Errorf("item %d: err %v, %d bytes; want its %d bytes", i, it.Err, len(it.Data), n)
				}
				it.Release()
			}
			if _, err := r.Next(context.Background()); err == nil || err.Error() != "EOF" {
				t.Errorf("after the last item: %v, want EOF", err)
			}
			r.Close()
			if b.InUse() != 0 || b.Peak() > b.Size() {
				t.Errorf("in use %d, peak %d of %d", b.InUse(), b.Peak(), b.Size())
			}
		})
	}
}

// A Reader waiting for the budget stops when its context ends: Next
// returns the context's error, not an error item.
func TestBudgetWaitEndsWithTheContext(t *testing.T) {
	for _, kind := range []string{"tar", "parquet"} {
		t.Run(kind, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "shard."+kind)
			sizes := []int{1 << 20, 1 << 20}
			if kind == "tar" {
				writeBudgetTar(t, p, sizes)
			} else {
				writeBudgetParquet(t, p, sizes, 1)
			}
			// 1.5 MiB for inputs: one item at a time (a Parquet row holds about 3 MiB)
			r, _ := openBudgeted(t, p, 6<<20)
			first, err := r.Next(context.Background())
			if err != nil || first.Err != nil {
				t.Fatal(err, first.Err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			if it, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("Next while the first item holds the budget: item %q (err %v), %v; want context.Canceled", it.ID, it.Err, err)
			}
			first.Release()
		})
	}
}

// A row is read with its whole page, and writers put many rows of large
// images into one page: reading waits for what the page takes, not the
// footer's average, and a page the whole budget cannot hold makes its
// rows error items instead of being read.
func TestBudgetCountsWholePages(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "jpg", Type: arrow.BinaryTypes.Binary}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	const rows, size = 4, 1 << 20
	for i := range rows {
		b.Field(0).(*array.BinaryBuilder).Append(budgetImage(i, size))
	}
	rec := b.NewRecord()
	defer rec.Release()
	p := filepath.Join(t.TempDir(), "onepage.parquet")
	if err := os.WriteFile(p, parquetBytes(t, rec, parquet.WithDictionaryDefault(false)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		budget int64
		fits   bool
	}{{6 << 20, false}, {32 << 20, true}} {
		r, bud := openBudgeted(t, p, c.budget)
		for i := range rows {
			it, err := r.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.fits && (it.Err != nil || !bytes.Equal(it.Data, budgetImage(i, size))):
				t.Errorf("budget %d MiB, row %d: err %v, %d bytes; want its bytes", c.budget>>20, i, it.Err, len(it.Data))
			case !c.fits && !errors.Is(it.Err, stages.ErrOverBudget):
				t.Errorf("budget %d MiB, row %d: err %v; want the budget's refusal (a %d MiB page)", c.budget>>20, i, it.Err, rows*size>>20)
			}
			if it.Release != nil {
				it.Release()
			}
		}
		if c.fits && bud.Peak() < 2*rows*size {
			t.Errorf("budget %d MiB: peak %d, less than the page and its copy", c.budget>>20, bud.Peak())
		}
		r.Close()
		if bud.InUse() != 0 {
			t.Errorf("budget %d MiB: %d bytes held after the run", c.budget>>20, bud.InUse())
		}
	}
}

// A Parquet row's bytes are garbage once its item is released: the reader
// keeps no alias of them, so a 200 MB row does not stay in memory through
// the next reads while the budget no longer counts it. (Row groups of 3
// and 1 rows: batches of 1, 2, then 1 row, which would leave the second
// row of the batch before aliased.)
func TestBudgetReleasedRowIsNotKept(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rows.parquet")
	writeBudgetParquet(t, p, []int{1 << 20, 1 << 20, 1 << 20, 1 << 20}, 3)
	r, _ := openBudgeted(t, p, 64<<20)
	defer r.Close()
	var kept []weak.Pointer[byte]
	for i := range 4 {
		it, err := r.Next(context.Background())
		if err != nil || it.Err != nil {
			t.Fatal(err, it.Err)
		}
		if i < 3 {
			kept = append(kept, weak.Make(&it.Data[0]))
		}
		it.Release()
	}
	runtime.GC()
	for i, wp := range kept {
		if wp.Value() != nil {
			t.Errorf("row %d: its bytes are still reachable after its release and the next reads", i)
		}
	}
}

// A listing (Options.NoData, --dry-run) reads only a Parquet file's id
// column, inside the budget: rows of images each larger than the whole
// budget are listed by their keys, what is held is the ids' pages, never
// near an image's size, and it is all given back; without an id column
// nothing is read at all.
func TestBudgetListingReadsOnlyIDs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rows.parquet")
	sizes := []int{3 << 20, 3 << 20, 3 << 20, 3 << 20, 3 << 20}
	writeBudgetParquet(t, p, sizes, 2)
	for _, idCol := range []string{"", "-"} {
		r, err := OpenWith([]string{p}, nil, Options{NoData: true, IDColumn: idCol})
		if err != nil {
			t.Fatal(err)
		}
		b := stages.NewBudget(1 << 20)
		r.SetBudget(b)
		got := readAll(t, r) // "id=data", or "id!error"
		want := []string{"r0=", "r1=", "r2=", "r3=", "r4="}
		if idCol == "-" {
			want = []string{"rows.parquet/0=", "rows.parquet/1=", "rows.parquet/2=", "rows.parquet/3=", "rows.parquet/4="}
		}
		if !slices.Equal(got, want) {
			t.Errorf("id column %q: listed %q, want %q (ids without data)", idCol, got, want)
		}
		// The ids' pages are read under the budget; with no id column
		// nothing is read.
		if read := b.Peak() > 0; read != (idCol == "") || b.Peak() >= 1<<20 || b.InUse() != 0 {
			t.Errorf("id column %q: budget peak %d (an image is %d), %d in use after", idCol, b.Peak(), sizes[0], b.InUse())
		}
	}
}

// The column readers keep their page buffers for the whole row group: a
// dictionary page (a writer's default; a dataset whose rows repeat one
// image, as scraped sets do, is one dictionary entry) and its decoded
// copy are read with the first batch and kept for every later one, which
// allocates nothing new for them. Every batch's hold counts them, not
// only the first's. Rows of one 1 MiB image, four to a row group.
func TestBudgetCountsKeptPagesInEveryBatch(t *testing.T) {
	const size = 1 << 20
	schema := arrow.NewSchema([]arrow.Field{{Name: "jpg", Type: arrow.BinaryTypes.Binary}}, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	for range 4 {
		rb.Field(0).(*array.BinaryBuilder).Append(budgetImage(0, size))
	}
	rec := rb.NewRecord()
	defer rec.Release()
	p := filepath.Join(t.TempDir(), "rows.parquet")
	if err := os.WriteFile(p, parquetBytes(t, rec, parquet.WithDictionaryDefault(true), parquet.WithDictionaryPageSizeLimit(64<<20), parquet.WithBatchSize(1), parquet.WithDataPageSize(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r, b := openBudgeted(t, p, 64<<20)
	defer r.Close()
	for i := range 3 { // the row group's last batch drops the readers
		it, err := r.Next(context.Background())
		if err != nil || it.Err != nil {
			t.Fatal(err, it.Err)
		}
		if u := b.InUse(); u < int64(len(it.Data))+2*size {
			t.Errorf("row %d: the budget holds %d, less than the row and the dictionary page with its copy the reader keeps (%d)", i, u, len(it.Data)+2*size)
		}
		it.Release()
	}
}
