package sinks

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// ReadParquet reads a whole Parquet file as an Arrow table together with its
// key-value file metadata. The caller releases the table.
func ReadParquet(path string) (arrow.Table, map[string]string, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, nil, fmt.Errorf("open parquet %s: %w", path, err)
	}
	defer pf.Close()
	kv := parquetKV(pf)
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 4096}, memory.DefaultAllocator)
	if err != nil {
		return nil, nil, fmt.Errorf("read parquet %s: %w", path, err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		return nil, nil, fmt.Errorf("read parquet %s: %w", path, err)
	}
	return tbl, kv, nil
}

// readParquetRows adds the values of the "id" column of a Parquet file to
// into and, with done set (an error part), classifies its rows by their
// "error" column into done's Retryable, Duplicates and Rows.
func readParquetRows(path string, into map[string]bool, done *Done) error {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return fmt.Errorf("open parquet %s: %w", path, err)
	}
	defer pf.Close()
	col := pf.MetaData().Schema.ColumnIndexByName("id")
	if col < 0 {
		return fmt.Errorf("%s: no id column", path)
	}
	cols := []int{col}
	if done != nil {
		if e := pf.MetaData().Schema.ColumnIndexByName("error"); e >= 0 {
			cols = append(cols, e)
		}
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 16384}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("read parquet %s: %w", path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), cols, nil)
	if err != nil {
		return fmt.Errorf("read ids of %s: %w", path, err)
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.Record()
		ids := rec.Column(0)
		addIDs(ids, into)
		if len(cols) < 2 {
			continue
		}
		id, ok1 := ids.(*array.String)
		msg, ok2 := rec.Column(1).(*array.String)
		if !ok1 || !ok2 {
			continue
		}
		for i := 0; i < id.Len(); i++ {
			done.Rows[id.Value(i)]++
			switch m := msg.Value(i); {
			case DuplicateIDError(m):
				// Never retryable, whatever the id's text holds.
				done.Duplicates[id.Value(i)]++
				if n := DuplicateRepeat(m); n > 0 {
					if done.Repeats[id.Value(i)] == nil {
						done.Repeats[id.Value(i)] = map[int]bool{}
					}
					done.Repeats[id.Value(i)][n] = true
				} else {
					done.unnumbered[id.Value(i)]++
				}
			case RetryableError(m):
				done.Retryable[id.Value(i)] = true
			}
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read ids of %s: %w", path, err)
	}
	return nil
}

func readArrowIDs(path string, into map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f)
	if err != nil {
		return fmt.Errorf("open arrow %s: %w", path, err)
	}
	defer r.Close()
	idx := r.Schema().FieldIndices("id")
	if len(idx) == 0 {
		return fmt.Errorf("%s: no id column", path)
	}
	for i := 0; i < r.NumRecords(); i++ {
		rec, err := r.Record(i)
		if err != nil {
			return fmt.Errorf("read arrow %s: %w", path, err)
		}
		addIDs(rec.Column(idx[0]), into)
	}
	return nil
}

func addIDs(col arrow.Array, into map[string]bool) {
	if s, ok := col.(*array.String); ok {
		for i := 0; i < s.Len(); i++ {
			into[s.Value(i)] = true
		}
	}
}

// ReadDoneIDs returns the ids already finished in an output directory, so a
// rerun into the same directory can skip them (resume): ReadDone's Output
// and Failed together. An item that failed counts as done, so a plain rerun
// does not retry it (--retry-errors does: ReadDone).
func ReadDoneIDs(dir string) (map[string]bool, error) {
	d, err := ReadDone(dir)
	if err != nil {
		return nil, err
	}
	for id := range d.Failed {
		d.Output[id] = true
	}
	return d.Output, nil
}

// Done is what an output directory already holds, by id.
type Done struct {
	// Output: the ids of the published outputs, read from the id column
	// of every published part-NNNNN[-WORKER].parquet / .arrow in dir, of
	// dir/metadata.parquet (npy outputs) and, in a PNG output
	// (dir/maeembed-png.json), of every published PNG (readPNGIDs).
	Output map[string]bool
	// Failed: the ids of the error rows in dir/errors/part-NNNNN.parquet.
	// An id may be in both (a retry run that was killed before it dropped
	// the superseded error rows: DropErrorRows).
	Failed map[string]bool
	// ErrorParts are the paths of the error parts read for Failed.
	ErrorParts []string
	// Retryable: the ids of Failed with an error row of a kind a retry
	// can get past once its cause is fixed (RetryableError).
	Retryable map[string]bool
	// Rows: the number of error rows of each id of Failed.
	Rows map[string]int
	// Duplicates: the number of the error rows of an id of Failed that
	// are "duplicate id" rows (DuplicateIDError): tar members and Parquet
	// rows whose id an earlier member or row has. The other rows of the
	// id (Rows minus Duplicates) are the first one's own failure.
	Duplicates map[string]int
	// Repeats: of the "duplicate id" rows of an id, which repeats of it
	// they record (DuplicateRepeat: n for the n-th repeat in the unsharded
	// sequence). Rows written before the number was in the error text
	// are only counted (RepeatDone).
	Repeats    map[string]map[int]bool
	unnumbered map[string]int
}

// RepeatDone reports whether the output holds the error row of the n-th
// repeat of id (n >= 1; id as stored): one that says "(repeat n)", in a
// part of any shard. Of rows that do not say which repeat they record
// (an older run's), k stand for the first k repeats.
func (d Done) RepeatDone(id string, n int) bool {
	return d.Repeats[id][n] || n <= d.unnumbered[id]
}

// ReadDone reads what dir holds (Done). Temporary files of a killed run are
// ignored, except those of an npy set whose publication was cut, which the
// next run's clean-up publishes (CleanTemps): a dry run, which cleans
// nothing, reads them as the run will. A missing dir gives empty sets. Ids are as stored: look up
// SanitizeID(id).
func ReadDone(dir string) (Done, error) {
	done := Done{Output: map[string]bool{}, Failed: map[string]bool{}, Retryable: map[string]bool{},
		Rows: map[string]int{}, Duplicates: map[string]int{}, Repeats: map[string]map[int]bool{}, unnumbered: map[string]int{}}
	if err := readPNGIDs(dir, done.Output); err != nil {
		return Done{}, fmt.Errorf("resume: %w", err)
	}
	// An npy set whose publication was cut: the run's clean-up publishes
	// it (a dry run reads it as the run will resume from it).
	npyMeta, err := npyMetadata(dir)
	if err != nil {
		return Done{}, fmt.Errorf("resume: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, errorsDir)} {
		ents, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Done{}, fmt.Errorf("resume: list %s: %w", d, err)
		}
		into := done.Output
		if d != dir {
			into = done.Failed
		}
		for _, e := range ents {
			name := e.Name()
			path := filepath.Join(d, name)
			m := partRe.FindStringSubmatch(name)
			switch {
			case m != nil && m[3] == "parquet":
				var classify *Done // an error part's rows
				if d != dir {
					classify = &done
					done.ErrorParts = append(done.ErrorParts, path)
				}
				err = readParquetRows(path, into, classify)
			case m != nil && m[3] == "arrow":
				err = readArrowIDs(path, into)
			default:
				continue
			}
			if err != nil {
				return Done{}, fmt.Errorf("resume: %w", err)
			}
		}
	}
	if _, err := os.Stat(npyMeta); err == nil {
		if err := readParquetRows(npyMeta, done.Output, nil); err != nil {
			return Done{}, fmt.Errorf("resume: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return Done{}, fmt.Errorf("resume: %w", err)
	}
	return done, nil
}

// fileMetadata reads the key-value metadata of a Parquet or Arrow IPC file.
func fileMetadata(path string) (map[string]string, error) {
	if filepath.Ext(path) == ".arrow" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, err := ipc.NewFileReader(f)
		if err != nil {
			return nil, fmt.Errorf("open arrow %s: %w", path, err)
		}
		defer r.Close()
		md := r.Schema().Metadata()
		kv := map[string]string{}
		for i, k := range md.Keys() {
			kv[k] = md.Values()[i]
		}
		return kv, nil
	}
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("open parquet %s: %w", path, err)
	}
	defer pf.Close()
	return parquetKV(pf), nil
}

// parquetKV is the key-value file metadata of an open Parquet file.
func parquetKV(pf *file.Reader) map[string]string {
	kv := map[string]string{}
	for _, e := range pf.MetaData().KeyValueMetadata() {
		if e.Value != nil {
			kv[e.Key] = *e.Value
		}
	}
	return kv
}

// readPNGIDs adds the ids of the PNGs that NewReconPNG published under dir,
// if dir is a PNG output (it holds maeembed-png.json): each file's id is
// its "maeembed.id" chunk, right after the IHDR. A file counts only where
// PNGPath puts its id, so a PNG copied or renamed into dir does not mark
// its id done; temporaries of a killed run do not end in ".png", and
// other PNGs (no such chunk) are ignored.
func readPNGIDs(dir string, into map[string]bool) error {
	if _, err := os.Stat(filepath.Join(dir, pngMetaName)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var buf []byte
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == filepath.Join(dir, errorsDir) {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || filepath.Ext(path) != ".png" {
			return nil
		}
		id, ok, err := pngID(path, &buf)
		if err != nil {
			return err
		}
		if ok && PNGPath(dir, id) == path {
			into[id] = true
		}
		return nil
	})
}

// pngID reads the "maeembed.id" iTXt chunk that follows the IHDR of the
// PNG at path (appendTextChunk's layout); ok is false when there is none. buf is
// reused between calls.
func pngID(path string, buf *[]byte) (id string, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	var head [ihdrEnd + 8]byte // signature, IHDR, next chunk's length and type
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return "", false, nil // too short for a PNG of this writer
	}
	n := binary.BigEndian.Uint32(head[ihdrEnd:])
	if string(head[ihdrEnd+4:]) != "iTXt" || n > 1<<20 {
		return "", false, nil
	}
	if cap(*buf) < int(n)+4 {
		*buf = make([]byte, n+4)
	}
	data := (*buf)[:n+4]
	if _, err := io.ReadFull(f, data); err != nil {
		return "", false, nil
	}
	crc := crc32.NewIEEE()
	crc.Write(head[ihdrEnd+4:])
	crc.Write(data[:n])
	if crc.Sum32() != binary.BigEndian.Uint32(data[n:]) {
		return "", false, nil
	}
	data = data[:n]
	const key = "maeembed.id\x00\x00\x00\x00\x00"
	if !bytes.HasPrefix(data, []byte(key)) {
		return "", false, nil
	}
	return string(data[len(key):]), true, nil
}
