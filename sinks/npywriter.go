package sinks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/apache/arrow/go/v17/arrow/array"
)

const (
	embeddingsName = "embeddings.npy"
	metadataName   = "metadata.parquet"
)

type npyWriter struct {
	meta Meta
	emb  *npyFile
	md   *pqFile
	b    *embBuilder
	done bool
}

// NewNpy writes DIR/embeddings.npy (float32 [N,D], or [N,1+L,D] for tokens)
// and DIR/metadata.parquet (id, width, height in the same row order, with the
// maeembed.* file metadata). Both are published by Close, embeddings first.
//
// Resume: if DIR already holds a published pair, the new files start with
// its rows (checked to come from the same model, pool, preprocessing and
// shape) and new rows are appended; ReadDoneIDs gives the ids to skip.
// Should a crash fall between the two renames, embeddings.npy holds more
// rows than metadata.parquet; only the rows metadata.parquet names are kept.
func NewNpy(dir string, meta Meta) (EmbeddingWriter, error) {
	if err := meta.validate(); err != nil {
		return nil, err
	}
	inner := []int{meta.Dim}
	if meta.Tokens > 0 {
		inner = []int{meta.Tokens, meta.Dim}
	}
	b := newEmbBuilder(meta, false)
	w := &npyWriter{meta: meta, b: b}
	var err error
	if w.emb, err = createNpy(filepath.Join(dir, embeddingsName), inner); err != nil {
		return nil, err
	}
	if w.md, err = createParquet(filepath.Join(dir, metadataName), b.schema, 64<<20); err != nil {
		w.emb.abort()
		return nil, err
	}
	if err := w.carryOver(dir, inner); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// carryOver copies the rows of a previous run's published pair, if any.
func (w *npyWriter) carryOver(dir string, inner []int) error {
	mdPath := filepath.Join(dir, metadataName)
	embPath := filepath.Join(dir, embeddingsName)
	if _, err := os.Stat(mdPath); errors.Is(err, os.ErrNotExist) {
		return nil // nothing published, or only embeddings.npy: start over
	}
	tbl, kv, err := ReadParquet(mdPath)
	if err != nil {
		return fmt.Errorf("resume npy output: %w", err)
	}
	defer tbl.Release()
	if err := sameMeta(mdPath, kv, w.meta); err != nil {
		return err
	}
	f, h, err := openNpyFloat32(embPath)
	if err != nil {
		return fmt.Errorf("resume npy output (%s exists): %w", mdPath, err)
	}
	defer f.Close()
	m := int(tbl.NumRows())
	if len(h.shape) != 1+len(inner) || !slices.Equal(h.shape[1:], inner) || h.shape[0] < m {
		return fmt.Errorf("resume npy output: %s has shape %v, want [>=%d %v]; remove the output or choose another", embPath, h.shape, m, inner)
	}
	if err := w.emb.appendRaw(f, m); err != nil {
		return fmt.Errorf("resume npy output: %w", err)
	}
	tr := array.NewTableReader(tbl, 1<<16)
	defer tr.Release()
	for tr.Next() {
		old := tr.Record()
		rec := array.NewRecord(w.b.schema, old.Columns(), old.NumRows())
		err := w.md.writeRecord(rec, 16*old.NumRows())
		rec.Release()
		if err != nil {
			return fmt.Errorf("resume npy output: %w", err)
		}
	}
	return tr.Err()
}

// sameMeta refuses to mix outputs of different models or settings.
func sameMeta(path string, kv map[string]string, meta Meta) error {
	keys, vals := meta.keyValues()
	for i, k := range keys {
		if k == "maeembed.version" {
			continue // a newer build may finish an older run
		}
		if kv[k] != vals[i] {
			return fmt.Errorf("%s was written with %s=%q, this run has %q: use another output directory", path, k, kv[k], vals[i])
		}
	}
	if t := kv["maeembed.tokens"]; t != "" && meta.Tokens == 0 {
		return fmt.Errorf("%s was written with maeembed.tokens=%s, this run has none: use another output directory", path, t)
	}
	return nil
}

func (w *npyWriter) Write(rows []Row) error {
	if w.done {
		return fmt.Errorf("sinks: write after close")
	}
	if len(rows) == 0 {
		return nil
	}
	if err := checkRows(rows, w.meta.rowLen()); err != nil {
		return err
	}
	for i := range rows {
		if err := w.emb.appendRow(rows[i].Embedding); err != nil {
			return err
		}
	}
	rec, raw := w.b.build(rows)
	defer rec.Release()
	return w.md.writeRecord(rec, raw)
}

func (w *npyWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	if err := w.emb.finish(); err != nil {
		w.abortFiles()
		return err
	}
	if err := w.md.finish(); err != nil {
		w.abortFiles()
		return err
	}
	// embeddings first: a crash between the renames leaves a metadata file
	// that names a prefix of the embeddings, which resume handles.
	if err := w.emb.publish(); err != nil {
		w.md.abort()
		return err
	}
	return w.md.af.Publish()
}

func (w *npyWriter) abortFiles() error {
	return errors.Join(w.emb.abort(), w.md.abort())
}

func (w *npyWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.abortFiles()
}
