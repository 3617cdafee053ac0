package sources

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
)

// Fixtures written by independent tools (testdata/gen.sh): GNU tar and DuckDB.
func TestIndependentWriters(t *testing.T) {
	odd := func(name string) []byte {
		b, err := os.ReadFile("../stages/testdata/odd/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		input string
		ids   []string
		data  [][]byte // nil = error item expected
	}{
		{"testdata/wds-gnutar.tar",
			[]string{"wds-gnutar.tar/000000.png", "wds-gnutar.tar/000001.jpg", "wds-gnutar.tar/000002.jpg"},
			[][]byte{odd("quadrants.png"), odd("quadrants.jpg"), odd("truncated.jpg")}},
		{"testdata/hf-duckdb.parquet",
			[]string{"hf-duckdb.parquet/0", "hf-duckdb.parquet/1", "hf-duckdb.parquet/2", "hf-duckdb.parquet/3", "hf-duckdb.parquet/4", "hf-duckdb.parquet/5"},
			[][]byte{odd("quadrants.bmp"), odd("quadrants.jpg"), odd("quadrants.png"), odd("quadrants.tiff"), odd("quadrants.webp"), nil}},
	}
	for _, tc := range tests {
		t.Run(tc.input, func(t *testing.T) {
			r, err := Open([]string{tc.input}, Options{ParquetBatch: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for i := 0; ; i++ {
				it, err := r.Next(context.Background())
				if err == io.EOF {
					if i != len(tc.ids) {
						t.Fatalf("%d items, want %d", i, len(tc.ids))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if i >= len(tc.ids) || it.ID != tc.ids[i] {
					t.Fatalf("item %d id %q", i, it.ID)
				}
				if tc.data[i] == nil {
					if it.Err == nil {
						t.Fatalf("%s: want an error item", it.ID)
					}
					continue
				}
				if it.Err != nil || !bytes.Equal(it.Data, tc.data[i]) {
					t.Fatalf("%s: %d bytes, err %v", it.ID, len(it.Data), it.Err)
				}
			}
			if n, exact := r.Files(); n != 1 || exact {
				t.Fatalf("Files() = %d, %v", n, exact)
			}
			if n, exact := r.Total(); n != int64(len(tc.ids)) || !exact {
				t.Fatalf("Total() = %d, %v, want %d", n, exact, len(tc.ids))
			}
		})
	}
}
