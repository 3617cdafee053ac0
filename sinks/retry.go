package sinks

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

// DropErrorRows removes from the error parts at paths (Done.ErrorParts of
// dir, read before a retry run) the rows whose id drop reports: the rows a
// retry run superseded, by an output or by a new error row in a part of
// its own. Each part is rewritten under its own name through a temporary
// and a rename, so a reader sees the old part or the new one, never a half
// of one, and a crash at any point leaves every row either still in place
// or superseded; a part left without rows is removed, and so is the
// errors directory when that leaves it empty (a reader's glob
// errors/*.parquet would otherwise match nothing, which DuckDB refuses);
// one that was empty before, or holds anything else, stays. Parts that are
// gone meanwhile are skipped. The rewrites of concurrent processes (the shards
// of one job) are serialised by a lock in dir, and each part is read again
// under it, so none undoes another's drops.
func DropErrorRows(dir string, paths []string, drop func(id string) bool) error {
	if len(paths) == 0 {
		return nil
	}
	unlock, err := holdLock(filepath.Join(dir, ".maeembed-errors-rewrite"+lockSuffix), syscall.LOCK_EX)
	if err != nil {
		return fmt.Errorf("errors rewrite lock: %w", err)
	}
	defer unlock()
	emptied := map[string]bool{} // directories a part was removed from
	for _, p := range paths {
		removed, err := dropRows(p, drop)
		if err != nil {
			return fmt.Errorf("drop superseded error rows: %w", err)
		}
		if removed {
			emptied[filepath.Dir(p)] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(emptied)) {
		// Only an empty directory is removed (rmdir): a part, another
		// run's temporary or anything else keeps it.
		if err := os.Remove(d); err == nil {
			if err := atomicfile.SyncDir(filepath.Dir(d)); err != nil {
				return fmt.Errorf("remove the emptied %s: %w", d, err)
			}
		} else if !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the emptied %s: %w", d, err)
		}
	}
	return nil
}

// dropRows rewrites the error part at path without the rows drop reports;
// removed says it removed the part, left without rows.
func dropRows(path string, drop func(id string) bool) (removed bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil // removed by an earlier rewrite
	}
	tbl, kv, err := ReadParquet(path)
	if err != nil {
		return false, err
	}
	defer tbl.Release()
	schema := tbl.Schema()
	if schema.NumFields() == 0 || schema.Field(0).Name != "id" {
		return false, fmt.Errorf("%s: no id column first", path)
	}
	for i, f := range schema.Fields() {
		if f.Type.ID() != arrow.STRING {
			return false, fmt.Errorf("%s: column %d (%s) is %s, want string", path, i, f.Name, f.Type)
		}
	}
	// Each column's values in row order (the columns may be chunked
	// differently); the strings point into tbl, alive until the end.
	values := make([][]string, schema.NumFields())
	for c := range values {
		values[c] = make([]string, 0, tbl.NumRows())
		for _, a := range tbl.Column(c).Data().Chunks() {
			s := a.(*array.String)
			for i := 0; i < s.Len(); i++ {
				values[c] = append(values[c], s.Value(i))
			}
		}
	}
	var keep []int
	for i, id := range values[0] {
		if !drop(id) {
			keep = append(keep, i)
		}
	}
	switch len(keep) {
	case len(values[0]):
		return false, nil
	case 0:
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		return true, atomicfile.SyncDir(filepath.Dir(path))
	}
	cols := make([]arrow.Array, len(values))
	var raw int64
	for c, vs := range values {
		b := array.NewStringBuilder(memory.DefaultAllocator)
		for _, k := range keep {
			raw += int64(len(vs[k]))
			b.Append(vs[k])
		}
		cols[c] = b.NewArray()
		b.Release()
		defer cols[c].Release()
	}
	keys, vals := make([]string, 0, len(kv)), make([]string, 0, len(kv))
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if k != "ARROW:schema" { // pqarrow writes it again
			keys, vals = append(keys, k), append(vals, kv[k])
		}
	}
	md := arrow.NewMetadata(keys, vals)
	schema = arrow.NewSchema(schema.Fields(), &md)
	rec := array.NewRecord(schema, cols, int64(len(keep)))
	defer rec.Release()
	o, err := ParquetOptions{}.withDefaults()
	if err != nil {
		return false, err
	}
	f, err := createParquet(path, schema, o.RowGroupBytes)
	if err != nil {
		return false, err
	}
	if err := f.writeRecord(rec, raw); err != nil {
		f.abort()
		return false, err
	}
	if err := f.finish(); err != nil {
		f.abort()
		return false, err
	}
	return false, f.af.Commit()
}
