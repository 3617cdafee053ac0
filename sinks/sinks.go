// Package sinks writes maeembed's outputs in the formats of DESIGN §5:
// rolling Parquet or Arrow IPC part files, npy + metadata.parquet, error
// Parquet parts, and for reconstruct also npy/Parquet predictions and
// 4-panel PNGs.
//
// Every visible file is complete: writers fill a hidden temporary file in
// the destination directory (".NAME.*.maeembed-tmp"), sync it, rename it into
// place and sync the directory. Abort (or a crash) leaves only temporaries,
// which CleanTemps removes. A row is durable once the file holding it is
// published: for rolling part files that is when OnPublish reports it, for
// npy outputs when Close returns nil. A writer is used by one goroutine.
package sinks

import (
	"fmt"
	"strconv"
)

// Meta describes the embeddings of one run; it becomes the file metadata
// maeembed.model/pool/preprocess/version (and maeembed.precision).
type Meta struct {
	Model      string
	Pool       string
	Preprocess string
	Version    string
	// Precision is the model's arithmetic ("fp32", "bf16", "int8"); empty
	// writes no maeembed.precision key.
	Precision string
	// Dim is the embedding width D.
	Dim int
	// Tokens is 0 unless Pool is "tokens": then it is the number of tokens
	// per image (1+L) and every Row carries Tokens·Dim values.
	Tokens int
}

func (m Meta) validate() error {
	if m.Dim <= 0 {
		return fmt.Errorf("sinks: embedding dim must be > 0, got %d", m.Dim)
	}
	if m.Tokens < 0 {
		return fmt.Errorf("sinks: token count must be >= 0, got %d", m.Tokens)
	}
	return nil
}

// rowLen is the number of float32 values per row.
func (m Meta) rowLen() int {
	if m.Tokens > 0 {
		return m.Tokens * m.Dim
	}
	return m.Dim
}

func (m Meta) keyValues() ([]string, []string) {
	keys := []string{"maeembed.model", "maeembed.pool", "maeembed.preprocess", "maeembed.version", "maeembed.dim"}
	vals := []string{m.Model, m.Pool, m.Preprocess, m.Version, strconv.Itoa(m.Dim)}
	if m.Tokens > 0 {
		keys = append(keys, "maeembed.tokens")
		vals = append(vals, strconv.Itoa(m.Tokens))
	}
	if m.Precision != "" {
		keys = append(keys, "maeembed.precision")
		vals = append(vals, m.Precision)
	}
	return keys, vals
}

// Row is one embedded image.
type Row struct {
	ID            string
	Width, Height int32 // original image size
	// Embedding holds Dim values, or Tokens·Dim (cls first, then patches in
	// raster order) when Meta.Tokens > 0. The writer copies it.
	Embedding []float32
}

// ErrorRow is one item that failed at some stage.
type ErrorRow struct {
	ID, Stage, Error string
}

// EmbeddingWriter is the shape shared by every embedding format.
type EmbeddingWriter interface {
	// Write appends rows in order. Rows are copied; the caller may reuse them.
	Write(rows []Row) error
	// Close publishes everything written so far. After an error from Write
	// call Abort instead.
	Close() error
	// Abort removes the temporaries of unpublished files. Files published
	// before (rolled part files) stay.
	Abort() error
}

// ErrorWriter writes OUT/errors/part-NNNNN.parquet with columns id, stage, error.
type ErrorWriter interface {
	Write(rows []ErrorRow) error
	Close() error
	Abort() error
}

func checkRows(rows []Row, want int) error {
	for i := range rows {
		if len(rows[i].Embedding) != want {
			return fmt.Errorf("sinks: row %q has %d values, want %d", rows[i].ID, len(rows[i].Embedding), want)
		}
	}
	return nil
}
