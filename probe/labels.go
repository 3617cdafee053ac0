package probe

import (
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
)

// FolderLabel is the class of an id under the ImageFolder convention
// (ROOT/CLASS/IMAGE): the name of the id's parent directory, e.g. "cat" for
// "cat/001.jpg" and for "train/cat/001.jpg". Ids are slash-separated paths
// relative to the input root, as maeembed writes them; an id with no
// directory has no label.
func FolderLabel(id string) (string, bool) {
	dir := path.Dir(id)
	if dir == "." || dir == "/" {
		return "", false
	}
	return path.Base(dir), true
}

// ReadLabels reads a labels table: id → the value of labelColumn, from the
// Parquet or Arrow file(s) at path (a file, a maeembed output directory, or
// an npy output's metadata.parquet). Any column type is accepted and
// rendered as text (ints as decimals); null labels are skipped. An id
// listed twice with different labels is an error.
func ReadLabels(path, labelColumn string) (map[string]string, error) {
	_, files, err := dataFiles(path)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	out := map[string]string{}
	for _, f := range files {
		tbl, _, err := readTable(f)
		if err != nil {
			return nil, fmt.Errorf("labels: %w", err)
		}
		err = func() error {
			defer tbl.Release()
			ids, err := column(tbl, idColumn, f)
			if err != nil {
				return err
			}
			labels, err := column(tbl, labelColumn, f)
			if err != nil {
				return err
			}
			ic, lc := &cursor{chunks: ids}, &cursor{chunks: labels}
			for {
				a, i, ok := ic.next()
				b, j, ok2 := lc.next()
				if !ok || !ok2 {
					break
				}
				if a.IsNull(i) || b.IsNull(j) {
					continue
				}
				id, label := a.ValueStr(i), b.ValueStr(j)
				if old, ok := out[id]; ok && old != label {
					return fmt.Errorf("%s: id %q has two labels, %q and %q", f, id, old, label)
				}
				out[id] = label
			}
			return nil
		}()
		if err != nil {
			return nil, fmt.Errorf("labels: %w", err)
		}
	}
	return out, nil
}

// cursor walks the rows of a chunked column.
type cursor struct {
	chunks []arrow.Array
	c, i   int
}

// next returns the chunk and index of the next row.
func (k *cursor) next() (arrow.Array, int, bool) {
	for k.c < len(k.chunks) && k.i >= k.chunks[k.c].Len() {
		k.c, k.i = k.c+1, 0
	}
	if k.c == len(k.chunks) {
		return nil, 0, false
	}
	k.i++
	return k.chunks[k.c], k.i - 1, true
}

// Dataset is a labelled set of embeddings, the input of the probes.
type Dataset struct {
	X    []float32 // [N×D]
	N, D int
	IDs  []string
	// Y[i] is the class of row i, an index into Classes.
	Y []int
	// Classes are the class names in sorted order (as ImageFolder numbers
	// its classes).
	Classes []string
	// Unlabelled counts the rows of the embeddings left out for want of a
	// label.
	Unlabelled int
}

// ErrNoLabels is NewDataset's error when no row has a label.
var ErrNoLabels = errors.New("no embedding has a label")

// NewDataset keeps the rows of e that label names a class for. The result
// may share X with e. At least two classes are needed; fewer is an error
// naming the example id of what went wrong.
func NewDataset(e *Embeddings, label func(id string) (string, bool)) (*Dataset, error) {
	ds := &Dataset{D: e.D}
	names := make([]string, 0, e.N)
	keep := make([]int, 0, e.N)
	firstMissing := ""
	for i, id := range e.IDs {
		l, ok := label(id)
		if !ok {
			if ds.Unlabelled == 0 {
				firstMissing = id
			}
			ds.Unlabelled++
			continue
		}
		keep = append(keep, i)
		names = append(names, l)
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("%w (first id %q)", ErrNoLabels, firstMissing)
	}
	index := map[string]int{}
	for _, n := range names {
		index[n] = 0
	}
	for n := range index {
		ds.Classes = append(ds.Classes, n)
	}
	sort.Strings(ds.Classes)
	if len(ds.Classes) < 2 {
		return nil, fmt.Errorf("only one class (%q) among %d labelled embeddings: a probe needs at least two", ds.Classes[0], len(keep))
	}
	for c, n := range ds.Classes {
		index[n] = c
	}
	ds.N = len(keep)
	ds.Y = make([]int, ds.N)
	ds.IDs = make([]string, ds.N)
	if ds.N == e.N {
		ds.X = e.X
	} else {
		ds.X = make([]float32, ds.N*e.D)
	}
	for r, i := range keep {
		ds.Y[r] = index[names[r]]
		ds.IDs[r] = e.IDs[i]
		if ds.N != e.N {
			copy(ds.X[r*e.D:(r+1)*e.D], e.X[i*e.D:(i+1)*e.D])
		}
	}
	return ds, nil
}
