package sinks

const embeddingsName = "embeddings.npy"

// NpyWriter writes embeddings.npy and metadata.parquet, published by Close.
type NpyWriter struct {
	meta Meta
	set  *npySet
}

// NewNpy writes DIR/embeddings.npy (float32 [N,D], or [N,1+L,D] for tokens)
// and DIR/metadata.parquet (id, width, height in the same row order, with the
// maeembed.* file metadata). Both are published by Close, embeddings first.
//
// Resume: if DIR already holds a published pair, the new files start with
// its rows (checked to come from the same model, pool, preprocessing and
// shape) and new rows are appended; ReadDoneIDs gives the ids to skip.
// Should a crash fall between the two renames, embeddings.npy holds more
// rows than metadata.parquet names (or there is none yet) until the next
// run's clean-up (CleanTemps) renames metadata.parquet's finished
// temporary into place, completing the set; a reader that finds them so
// takes the rows metadata.parquet names.
func NewNpy(dir string, meta Meta) (*NpyWriter, error) {
	if err := meta.validate(); err != nil {
		return nil, err
	}
	inner := []int{meta.Dim}
	if meta.Tokens > 0 {
		inner = []int{meta.Tokens, meta.Dim}
	}
	k, v := meta.keyValues()
	set, err := openNpySet(dir, embedNpyNames, [][]int{inner}, k, v)
	if err != nil {
		return nil, err
	}
	return &NpyWriter{meta: meta, set: set}, nil
}

func (w *NpyWriter) Write(rows []Row) error {
	if w.set.done {
		return failRows(rows, rowAck, errWriteAfterClose)
	}
	if len(rows) == 0 {
		return nil
	}
	if err := checkRows(rows, w.meta.rowLen()); err != nil {
		return failRows(rows, rowAck, err)
	}
	for i := range rows {
		w.set.held.hold(rows[i].Ack)
	}
	for i := range rows {
		if err := w.set.files[0].appendRow(rows[i].Embedding); err != nil {
			return err
		}
	}
	return w.set.writeMeta(len(rows), func(i int) string { return rows[i].ID },
		func(i int) (int32, int32) { return rows[i].Width, rows[i].Height })
}

func (w *NpyWriter) Flush() error { return nil } // only Close publishes the set
func (w *NpyWriter) Close() error { return w.set.close() }
func (w *NpyWriter) Abort() error { return w.set.abort() }
