package probe

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/maeembed/maeembed/sinks"
)

// Embeddings are one vector per image, as maeembed embed wrote them.
type Embeddings struct {
	IDs []string
	X   []float32 // [N×D], row i is the embedding of IDs[i]
	N   int
	D   int
	// Meta is the maeembed.* file metadata of the first file read (model,
	// pool, preprocessing); empty for files other tools wrote.
	Meta map[string]string
	// Files are the data files read, in order; Labels reads a column from
	// them when no separate labels file is given.
	Files []string
}

// Names of maeembed's outputs (README, "Output files").
const (
	embeddingColumn = "embedding"
	idColumn        = "id"
	npyEmbeddings   = "embeddings.npy"
	npyMetadata     = "metadata.parquet"
)

// dataFiles lists the files of an embeddings path: a directory holding
// embeddings.npy (npy output: the .npy and its metadata.parquet), or
// part-NNNNN.parquet / part-NNNNN.arrow parts (hidden temporaries of a
// running or killed writer do not match); or one .parquet, .arrow or
// embeddings .npy file.
func dataFiles(path string) (npy string, tables []string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", nil, err
	}
	if !st.IsDir() {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".npy":
			return path, []string{filepath.Join(filepath.Dir(path), npyMetadata)}, nil
		case ".parquet", ".arrow":
			return "", []string{path}, nil
		}
		return "", nil, fmt.Errorf("%s: want a maeembed output directory or a .parquet, .arrow or .npy file", path)
	}
	if _, err := os.Stat(filepath.Join(path, npyEmbeddings)); err == nil {
		return filepath.Join(path, npyEmbeddings), []string{filepath.Join(path, npyMetadata)}, nil
	}
	for _, ext := range []string{"parquet", "arrow"} {
		m, err := filepath.Glob(filepath.Join(path, "part-*."+ext))
		if err != nil {
			return "", nil, err
		}
		if len(m) > 0 {
			sort.Strings(m)
			return "", m, nil
		}
	}
	return "", nil, fmt.Errorf("%s: no part-*.parquet, part-*.arrow or embeddings.npy in the directory", path)
}

// readTable reads a whole Parquet or Arrow IPC file as a table with its
// key-value metadata. The caller releases the table.
func readTable(path string) (arrow.Table, map[string]string, error) {
	if strings.ToLower(filepath.Ext(path)) != ".arrow" {
		return sinks.ReadParquet(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, nil, fmt.Errorf("open arrow %s: %w", path, err)
	}
	defer r.Close()
	recs := make([]arrow.Record, 0, r.NumRecords())
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	for i := 0; i < r.NumRecords(); i++ {
		rec, err := r.Record(i)
		if err != nil {
			return nil, nil, fmt.Errorf("read arrow %s: %w", path, err)
		}
		rec.Retain()
		recs = append(recs, rec)
	}
	kv := map[string]string{}
	md := r.Schema().Metadata()
	for i, k := range md.Keys() {
		kv[k] = md.Values()[i]
	}
	return array.NewTableFromRecords(r.Schema(), recs), kv, nil
}

// column returns the chunks of a table's column by name.
func column(tbl arrow.Table, name, path string) ([]arrow.Array, error) {
	idx := tbl.Schema().FieldIndices(name)
	if len(idx) == 0 {
		names := make([]string, 0, tbl.NumCols())
		for _, f := range tbl.Schema().Fields() {
			names = append(names, f.Name)
		}
		return nil, fmt.Errorf("%s: no column %q (columns: %s)", path, name, strings.Join(names, ", "))
	}
	return tbl.Column(idx[0]).Data().Chunks(), nil
}

// Load reads the embeddings at path: a maeembed output directory (Parquet
// or Arrow parts, or npy), or one .parquet, .arrow or embeddings .npy file.
// Parquet and Arrow files need an `id` string column and an `embedding`
// column of fixed_size_list<float32>[D] (list<float32> or float64 values
// are accepted too, all of one length); npy is float32 [N, D] beside a
// metadata.parquet naming the rows (only its rows are read: a crash between
// the two renames leaves embeddings.npy longer). Token embeddings
// (--pool tokens) are refused: a probe needs one vector per image; so are
// NaN and infinite values, naming the id.
func Load(path string) (*Embeddings, error) {
	npy, files, err := dataFiles(path)
	if err != nil {
		return nil, fmt.Errorf("embeddings: %w", err)
	}
	e := &Embeddings{Files: files}
	for i, f := range files {
		tbl, kv, err := readTable(f)
		if err != nil {
			return nil, fmt.Errorf("embeddings: %w", err)
		}
		if i == 0 {
			e.Meta = map[string]string{}
			for k, v := range kv {
				if strings.HasPrefix(k, "maeembed.") {
					e.Meta[k] = v
				}
			}
		}
		err = e.appendTable(tbl, f, npy == "")
		tbl.Release()
		if err != nil {
			return nil, err
		}
	}
	if npy != "" {
		if err := e.readNpy(npy); err != nil {
			return nil, err
		}
	}
	if e.N == 0 {
		return nil, fmt.Errorf("embeddings %s: no rows", path)
	}
	for i, v := range e.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("embeddings %s: the embedding of %q holds %g", path, e.IDs[i/e.D], v)
		}
	}
	return e, nil
}

// appendTable adds the ids (and, unless the vectors come from an npy file,
// the embeddings) of one table.
func (e *Embeddings) appendTable(tbl arrow.Table, path string, vectors bool) error {
	ids, err := column(tbl, idColumn, path)
	if err != nil {
		return err
	}
	for _, c := range ids {
		s, ok := c.(interface {
			arrow.Array
			Value(int) string
		})
		if !ok {
			return fmt.Errorf("%s: column id is %s, want string", path, c.DataType())
		}
		for i := 0; i < s.Len(); i++ {
			if s.IsNull(i) {
				return fmt.Errorf("%s: null id in row %d", path, len(e.IDs))
			}
			e.IDs = append(e.IDs, s.Value(i))
		}
	}
	if !vectors {
		return nil
	}
	embs, err := column(tbl, embeddingColumn, path)
	if err != nil {
		return err
	}
	for _, c := range embs {
		if err := e.appendVectors(c, path); err != nil {
			return err
		}
	}
	if e.N != len(e.IDs) {
		return fmt.Errorf("%s: %d ids but %d embeddings", path, len(e.IDs), e.N)
	}
	return nil
}

// appendVectors adds the rows of one chunk of the embedding column.
func (e *Embeddings) appendVectors(c arrow.Array, path string) error {
	l, ok := c.(array.ListLike)
	if !ok {
		return fmt.Errorf("%s: column embedding is %s, want fixed_size_list<float32>", path, c.DataType())
	}
	values := l.ListValues()
	var get func(int) float32
	switch v := values.(type) {
	case *array.Float32:
		get = v.Value
	case *array.Float64:
		get = func(i int) float32 { return float32(v.Value(i)) }
	case *array.FixedSizeList, *array.List:
		return fmt.Errorf("%s: column embedding holds one vector per token (%s): embed with --pool mean, cls or global for a probe", path, c.DataType())
	default:
		return fmt.Errorf("%s: column embedding is %s, want fixed_size_list<float32>", path, c.DataType())
	}
	for i := 0; i < l.Len(); i++ {
		row := e.N
		if l.IsNull(i) {
			return fmt.Errorf("%s: null embedding in row %d (id %q)", path, row, e.IDs[row])
		}
		b, end := l.ValueOffsets(i)
		d := int(end - b)
		if e.D == 0 {
			e.D = d
			e.X = slices.Grow(e.X, (l.Len()-i)*d) // most files hold one chunk
		}
		if d != e.D || d == 0 {
			return fmt.Errorf("%s: row %d (id %q) has %d values, earlier rows %d", path, row, e.IDs[row], d, e.D)
		}
		for j := b; j < end; j++ {
			if values.IsNull(int(j)) {
				return fmt.Errorf("%s: null value in the embedding of row %d (id %q)", path, row, e.IDs[row])
			}
			e.X = append(e.X, get(int(j)))
		}
		e.N++
	}
	return nil
}

// readNpy reads the vectors of an npy output; the ids are already read from
// its metadata.parquet.
func (e *Embeddings) readNpy(path string) error {
	shape, data, err := sinks.ReadNpyFloat32(path)
	if err != nil {
		return fmt.Errorf("embeddings: %w", err)
	}
	switch {
	case len(shape) == 3:
		return fmt.Errorf("%s: shape %v holds one vector per token: embed with --pool mean, cls or global for a probe", path, shape)
	case len(shape) != 2 || shape[1] == 0:
		return fmt.Errorf("%s: shape %v, want [N, D]", path, shape)
	case shape[0] < len(e.IDs):
		return fmt.Errorf("%s: %d rows but %s names %d", path, shape[0], npyMetadata, len(e.IDs))
	}
	e.N, e.D = len(e.IDs), shape[1]
	e.X = data[: e.N*e.D : e.N*e.D]
	return nil
}
