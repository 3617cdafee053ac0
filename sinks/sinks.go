// Package sinks writes maeembed's outputs in the formats the README documents:
// rolling Parquet or Arrow IPC part files, npy + metadata.parquet, error
// Parquet parts, and for reconstruct also npy/Parquet predictions and
// 4-panel PNGs.
//
// Every visible file is complete: writers fill a hidden temporary file in
// the destination directory (".NAME.*.maeembed-tmp"), sync it, rename it into
// place and sync the directory. Abort (or a crash) leaves only temporaries,
// which CleanTemps removes. A writer is used by one goroutine.
//
// Delivery is data: every row may carry an Ack, which its writer calls
// exactly once, with nil when the row is durable (the file holding it is
// published: a rolling part when it rolls, is flushed or closed; npy sets on
// Close; a PNG when its own file is) or with an error when it will not be
// (a failed publish, Abort, a refused Write). Acks of one writer are called
// in write order. A caller resumes or commits offsets from acks alone.
package sinks

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/maeembed/maeembed/internal/realpath"
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
	// Kernel names the kernels that computed the rows (kernels.Arithmetic),
	// recorded as maeembed.kernel; informational: a resume on another
	// machine or path is not refused for it. Empty writes no key.
	Kernel string
	// Weights is the fingerprint of the model's weights (mae.Model.
	// Fingerprint), recorded as maeembed.weights: the same --model path
	// may hold other weights on a later run. Empty writes no key.
	Weights string
	// Dim is the embedding width D.
	Dim int
	// Tokens is 0 unless Pool is "tokens": then it is the number of tokens
	// per image (1+L) and every Row carries Tokens·Dim values.
	Tokens int
	// Inputs are the run's input roots (InputRoots), recorded as
	// maeembed.inputs: ids are paths relative to them, so a resumed run
	// over other inputs would take same-named files for done ones. Empty
	// (stream mode) writes no key.
	Inputs []string
	// IDColumn and ImageColumn are the run's --id-column and
	// --image-column (AutoColumn when not set), recorded as
	// maeembed.id_column and maeembed.image_column when an input is a
	// Parquet file: they decide its rows' ids and images, so a resume with
	// others would embed every row again under new ids, or take rows done
	// with other images. Empty writes no key (no Parquet input).
	IDColumn, ImageColumn string
	// IDColumnAuto and ImageColumnAuto are the columns automatic choice
	// takes in every Parquet input ("-" for an id: none, the rows are
	// numbered), whatever the flags say, recorded as
	// maeembed.id_column_auto and maeembed.image_column_auto beside the
	// settings; empty (no key) when the inputs would take different ones.
	// A resume compares them with a setting only where one side chose
	// automatically: naming the column the automatic choice took is the
	// same run, and so is choosing automatically the column named.
	IDColumnAuto, ImageColumnAuto string
}

// AutoColumn is Meta.IDColumn or ImageColumn of a run that did not set
// the flag: each Parquet file's column is the first of the known names it
// has.
const AutoColumn = "(auto)"

// columnsKV appends maeembed.id_column and maeembed.image_column when
// they are set, each followed by its automatic choice
// (maeembed.id_column_auto, maeembed.image_column_auto) when that is
// known.
func columnsKV(keys, vals []string, id, image, idAuto, imageAuto string) ([]string, []string) {
	for _, c := range [2][3]string{{"maeembed.id_column", id, idAuto}, {"maeembed.image_column", image, imageAuto}} {
		key, v, auto := c[0], c[1], c[2]
		if v == "" {
			continue
		}
		keys, vals = append(keys, key), append(vals, v)
		if auto != "" {
			keys, vals = append(keys, key+autoSuffix), append(vals, auto)
		}
	}
	return keys, vals
}

// autoSuffix turns a column setting's key into the key of its automatic
// choice.
const autoSuffix = "_auto"

// InputRoots is how a batch run's inputs are recorded and compared: each
// absolute with symlinks resolved (as far as it exists: a glob stays a
// pattern), "-" (stdin) as is, sorted, without duplicates. With
// listRelative (a list file or stdin named a relative path, whose id is
// that path: sources.Reader.ListRelative) the working directory is one of
// the roots too, recorded as a directory input is, so a rerun of the same
// list from another directory is a run over other inputs.
func InputRoots(names []string, listRelative bool) []string {
	roots := make([]string, 0, len(names)+1)
	if listRelative {
		names = append(slices.Clip(names), ".")
	}
	for _, n := range names {
		if n != "-" {
			if real, err := realpath.Of(n); err == nil {
				n = real
			} else if abs, err := filepath.Abs(n); err == nil {
				n = abs // missing: absolute as given
			}
		}
		roots = append(roots, n)
	}
	slices.Sort(roots)
	return slices.Compact(roots)
}

// weightsKV appends maeembed.weights when the fingerprint is known.
func weightsKV(keys, vals []string, fp string) ([]string, []string) {
	if fp == "" {
		return keys, vals
	}
	return append(keys, "maeembed.weights"), append(vals, fp)
}

// kernelKV appends maeembed.kernel when it is known.
func kernelKV(keys, vals []string, kernel string) ([]string, []string) {
	if kernel == "" {
		return keys, vals
	}
	return append(keys, "maeembed.kernel"), append(vals, kernel)
}

// inputsKV appends maeembed.inputs (a JSON array) when there are inputs.
func inputsKV(keys, vals []string, inputs []string) ([]string, []string) {
	if len(inputs) == 0 {
		return keys, vals
	}
	b, _ := json.Marshal(inputs)
	return append(keys, "maeembed.inputs"), append(vals, string(b))
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

// ModelName is how a run's model is recorded and compared: a local path
// (file or directory) that exists becomes absolute with its symlinks
// resolved, so "m/", "./m" and a link to m are one model; anything else (a
// preset name) stays as given.
func ModelName(name string) string {
	if name == "" {
		return name
	}
	if real, err := realpath.Of(name); err == nil {
		return real
	}
	return name
}

func (m Meta) keyValues() ([]string, []string) {
	keys := []string{"maeembed.model", "maeembed.pool", "maeembed.preprocess", "maeembed.version", "maeembed.dim"}
	vals := []string{ModelName(m.Model), m.Pool, m.Preprocess, m.Version, strconv.Itoa(m.Dim)}
	if m.Tokens > 0 {
		keys = append(keys, "maeembed.tokens")
		vals = append(vals, strconv.Itoa(m.Tokens))
	}
	if m.Precision != "" {
		keys = append(keys, "maeembed.precision")
		vals = append(vals, m.Precision)
	}
	keys, vals = kernelKV(keys, vals, m.Kernel)
	keys, vals = weightsKV(keys, vals, m.Weights)
	keys, vals = columnsKV(keys, vals, m.IDColumn, m.ImageColumn, m.IDColumnAuto, m.ImageColumnAuto)
	return inputsKV(keys, vals, m.Inputs)
}

// Row is one embedded image.
type Row struct {
	ID            string
	Width, Height int32 // original image size
	// Embedding holds Dim values, or Tokens·Dim (cls first, then patches in
	// raster order) when Meta.Tokens > 0. The writer copies it.
	Embedding []float32
	// Source is where the input came from (Position.String()); the Kafka
	// writer sends it as a header, file writers ignore it.
	Source string
	// Ack, if set, is called once: nil when the row is durable, else why not.
	Ack func(error)
}

// ErrorRow is one item that failed at some stage.
type ErrorRow struct {
	ID, Stage, Error string
	// Source and Data are the input's position and original bytes, for a
	// dead-letter topic; file writers ignore them.
	Source string
	Data   []byte
	// Ack, if set, is called once: nil when the row is durable, else why not.
	Ack func(error)
}

// Writer is the shape of every output: embeddings, error rows,
// reconstructions, to files or to Kafka.
type Writer[R any] interface {
	// Write appends rows in order. Rows are copied; the caller may reuse
	// them once Write returns.
	Write(rows []R) error
	// Flush publishes what is pending now (a rolling part file), so acks
	// need not wait for a full part; a no-op where every Write publishes or
	// only Close can (npy sets).
	Flush() error
	// Close publishes everything written so far. After an error from Write
	// call Abort instead.
	Close() error
	// Abort removes the temporaries of unpublished files and fails the acks
	// of their rows with ErrAborted. Files published before (rolled part
	// files) stay, and their rows stay acked.
	Abort() error
}

// EmbeddingWriter writes embeddings (NewParquet, NewArrow, NewNpy).
type EmbeddingWriter = Writer[Row]

// ErrorWriter writes OUT/errors/part-NNNNN.parquet with columns id, stage,
// error (NewErrors).
type ErrorWriter = Writer[ErrorRow]

// ItemError is what a writer acks a row with when it could not write that
// row alone and goes on with the others (e.g. a PNG whose file the file
// system refuses): the caller may record the row as failed instead.
type ItemError struct {
	ID  string
	Err error
}

func (e *ItemError) Error() string { return "write " + e.ID + ": " + e.Err.Error() }
func (e *ItemError) Unwrap() error { return e.Err }

func checkRows(rows []Row, want int) error {
	for i := range rows {
		if len(rows[i].Embedding) != want {
			return fmt.Errorf("sinks: row %q has %d values, want %d", rows[i].ID, len(rows[i].Embedding), want)
		}
	}
	return nil
}
