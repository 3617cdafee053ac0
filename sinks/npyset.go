package sinks

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/maeembed/maeembed/internal/atomicfile"
)

const metadataName = "metadata.parquet"

// npySet is a group of .npy files with one row per image plus
// metadata.parquet (id, width, height) in the same order. Everything is
// published by close: the .npy files first, metadata.parquet last, so a
// published metadata.parquet always names a prefix of every .npy file (all
// of it but for a run killed between the renames, whose publication the
// next run's clean-up completes: completePendingNpySet).
type npySet struct {
	names   []string
	files   []*npyFile
	md      *pqFile
	schema  *arrow.Schema
	offsets []int32
	widths  []int32
	heights []int32
	done    bool
	held    pending // acks of the rows written: all durable at close
}

func metadataSchema(keys, vals []string) *arrow.Schema {
	return schemaWithMeta([]arrow.Field{
		field("id", arrow.BinaryTypes.String),
		field("width", arrow.PrimitiveTypes.Int32),
		field("height", arrow.PrimitiveTypes.Int32),
	}, keys, vals)
}

// openNpySet creates the temporaries and, if dir holds a published set of
// the same kind (same metadata apart from maeembed.version), copies its
// rows first: that is how a rerun resumes.
func openNpySet(dir string, names []string, inner [][]int, keys, vals []string) (*npySet, error) {
	s := &npySet{names: names, schema: metadataSchema(keys, vals)}
	for i, n := range names {
		f, err := createNpy(filepath.Join(dir, n), inner[i])
		if err != nil {
			s.abort()
			return nil, err
		}
		s.files = append(s.files, f)
	}
	md, err := createParquet(filepath.Join(dir, metadataName), s.schema, 64<<20)
	if err != nil {
		s.abort()
		return nil, err
	}
	s.md = md
	if err := s.carryOver(dir, inner, keys, vals); err != nil {
		s.abort()
		return nil, err
	}
	// As a Parquet run's parts (newParts): the settings of the live runs
	// of this kind, which have published nothing yet.
	if err := LiveRunSettings(dir, keys, vals); err != nil {
		s.abort()
		return nil, err
	}
	return s, nil
}

func (s *npySet) carryOver(dir string, inner [][]int, keys, vals []string) error {
	mdPath := filepath.Join(dir, metadataName)
	if _, err := os.Stat(mdPath); errors.Is(err, os.ErrNotExist) {
		// Nothing published: start over. An .npy file of the set's name
		// without the metadata that every published set has is not one
		// this run may replace: the user's own file (a set whose
		// publication was cut before its metadata is completed by the
		// clean-up before this, CleanTemps, unless an older version's
		// rerun removed the metadata's temporary).
		for _, name := range s.names {
			p := filepath.Join(dir, name)
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists but %s does not, and this run would replace it: it is not a maeembed output, "+
					"or a set whose publication was cut and cannot be completed (an older version's rerun removed its temporaries, "+
					"or they were removed by hand). Move it away or use another output directory", p, metadataName)
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("output: %w", err)
			}
		}
		return nil
	}
	tbl, kv, err := ReadParquet(mdPath)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer tbl.Release()
	if err := compatible(mdPath, kv, keys, vals); err != nil {
		return err
	}
	m := int(tbl.NumRows())
	for i, name := range s.names {
		p := filepath.Join(dir, name)
		f, h, err := openNpyFloat32(p)
		if err != nil {
			return fmt.Errorf("resume (%s exists): %w", mdPath, err)
		}
		if len(h.shape) != 1+len(inner[i]) || !slices.Equal(h.shape[1:], inner[i]) || h.shape[0] < m {
			f.Close()
			return fmt.Errorf("resume: %s has shape %v, want [>=%d %v]; remove the output or choose another", p, h.shape, m, inner[i])
		}
		err = s.files[i].appendRaw(f, m)
		f.Close()
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
	}
	tr := array.NewTableReader(tbl, 1<<16)
	defer tr.Release()
	for tr.Next() {
		old := tr.Record()
		rec := array.NewRecord(s.schema, old.Columns(), old.NumRows())
		err := s.md.writeRecord(rec, 16*old.NumRows())
		rec.Release()
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
	}
	return tr.Err()
}

// writeMeta appends n metadata rows.
func (s *npySet) writeMeta(n int, id func(int) string, size func(int) (int32, int32)) error {
	s.widths, s.heights = s.widths[:0], s.heights[:0]
	raw := int64(8 * n)
	for i := 0; i < n; i++ {
		w, h := size(i)
		s.widths = append(s.widths, w)
		s.heights = append(s.heights, h)
		raw += int64(len(id(i)))
	}
	cols := []arrow.Array{stringColumn(&s.offsets, n, id), int32Column(s.widths), int32Column(s.heights)}
	rec := array.NewRecord(s.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	return s.md.writeRecord(rec, raw)
}

func (s *npySet) close() error {
	if s.done {
		return nil
	}
	s.done = true
	err := s.publish()
	s.held.settle(err)
	return err
}

// publishCut, when set (by tests), is asked before each rename of publish
// (renamed: the number of .npy files in place so far; len(s.files) before
// metadata.parquet's): true stops publish there, as a kill would, leaving
// the temporaries as they are.
var publishCut func(renamed int) bool

// errPublishCut is publish's error where publishCut stopped it.
var errPublishCut = errors.New("npy publication cut (test)")

// publish makes every file of the set complete and durable under its
// temporary name first (each synced once, here), then renames the .npy
// files into place and metadata.parquet last. A run killed between the renames leaves a set
// that the next run's clean-up completes (completePendingNpySet): its
// temporaries are finished and durable, and metadata.parquet's names
// exactly the rows of each.
func (s *npySet) publish() error {
	for _, f := range s.files {
		if err := f.finish(); err != nil {
			s.abortFiles()
			return err
		}
	}
	if err := s.md.finish(); err != nil {
		s.abortFiles()
		return err
	}
	for _, af := range append(s.temps(), s.md.af) {
		if err := af.Sync(); err != nil {
			s.abortFiles()
			return fmt.Errorf("sync %s: %w", af.Final(), err)
		}
	}
	for i, f := range s.files {
		if publishCut != nil && publishCut(i) {
			return errPublishCut
		}
		if err := f.publish(); err != nil {
			for _, g := range s.files[i+1:] {
				g.abort()
			}
			s.md.abort()
			return err
		}
	}
	if publishCut != nil && publishCut(len(s.files)) {
		return errPublishCut
	}
	return s.md.af.CommitSynced()
}

// temps are the temporaries of the set's .npy files.
func (s *npySet) temps() []*atomicfile.File {
	t := make([]*atomicfile.File, len(s.files))
	for i, f := range s.files {
		t[i] = f.af
	}
	return t
}

func (s *npySet) abortFiles() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.abort())
	}
	if s.md != nil {
		errs = append(errs, s.md.abort())
	}
	return errors.Join(errs...)
}

func (s *npySet) abort() error {
	if s.done {
		return nil
	}
	s.done = true
	s.held.settle(ErrAborted)
	return s.abortFiles()
}

// columnFlags are the flags of the Parquet column settings (Meta.IDColumn,
// ImageColumn) by their metadata key, and columnChange what changing one
// on a resume would do.
var (
	columnFlags  = map[string]string{"maeembed.id_column": "--id-column", "maeembed.image_column": "--image-column"}
	columnChange = map[string]string{
		"maeembed.id_column":    "the ids of Parquet rows would change, so every row would be processed again and stored a second time under its new id",
		"maeembed.image_column": "the rows already done under their ids would be skipped, so their images from the other column would never be read",
	}
)

// isColumnKey reports whether k is the key of a column setting
// (columnFlags) or of its automatic choice (autoSuffix).
func isColumnKey(k string) bool {
	_, ok := columnFlags[strings.TrimSuffix(k, autoSuffix)]
	return ok
}

// outputKind names what an output with these maeembed.* keys holds:
// embeddings record their pool, reconstructions their mask ratio ("" for
// neither).
func outputKind(pool, maskRatio bool) string {
	switch {
	case maskRatio:
		return "reconstructions (maeembed reconstruct)"
	case pool:
		return "embeddings (maeembed embed or stream)"
	}
	return ""
}

// columnSetting is how a column setting reads in a message: "--id-column
// label", or "no --id-column (each Parquet file's first column of the
// known names)" for AutoColumn.
func columnSetting(flag, v string) string {
	if v == AutoColumn {
		return "no " + flag + " (each Parquet file's first column of the known names)"
	}
	return flag + " " + v
}

// sameColumn refuses a resume whose Parquet column setting (the flag
// flag, metadata key k) differs from the output's, unless one side chose
// automatically and its choice is the column the other side named: the
// output's automatic choice as recorded (oldAuto; for an output of an
// older version, which records none, what automatic choice takes in this
// run's inputs), this run's as runAuto; "" is a choice that differs
// between the Parquet files. Where both sides chose automatically and the
// output recorded its choice, the choices must be the same column (the
// Parquet files may have changed since).
func sameColumn(path, flag, k, old, oldAuto, run, runAuto string) error {
	if old == AutoColumn && run == AutoColumn {
		if oldAuto == "" || oldAuto == runAuto {
			return nil // an older output records no choice to compare
		}
		return fmt.Errorf("%s was written with %s, as this run is, but that run's automatic choice took %s, and in these inputs it takes %s "+
			"(the Parquet files changed): %s. Rerun with %s, or give this run another output directory",
			path, columnSetting(flag, old), autoChoice(oldAuto), autoChoice(runAuto), columnChange[k], columnSetting(flag, oldAuto))
	}
	oldCol, runCol := old, run
	if old == AutoColumn {
		oldCol = oldAuto
		if oldCol == "" {
			oldCol = runAuto
		}
	}
	if run == AutoColumn {
		runCol = runAuto
	}
	if oldCol != "" && oldCol == runCol {
		return nil // the same column, once named and once chosen
	}
	change := columnChange[k]
	if old == AutoColumn || run == AutoColumn {
		named, auto := run, oldCol
		switch {
		case run == AutoColumn:
			named, auto = old, runCol
			change = fmt.Sprintf("without %s, automatic choice takes %s of these inputs, not %s: %s", flag, autoChoice(auto), columnName(named), change)
		case oldAuto == "":
			// An output of an older version (it records that a column
			// was chosen, not which), or of Parquet files that differ.
			change = fmt.Sprintf("the output records no column for that run's automatic choice, and in these inputs it takes %s, not %s: %s", autoChoice(auto), columnName(named), change)
		default:
			change = fmt.Sprintf("that run's automatic choice took %s, not %s: %s", autoChoice(auto), columnName(named), change)
		}
	}
	return fmt.Errorf("%s was written with %s, this run has %s: %s. Rerun with %s, or give this run another output directory",
		path, columnSetting(flag, old), columnSetting(flag, run), change, columnSetting(flag, old))
}

// columnName is how a column (sameColumn) reads in a message: quoted, or
// "no column (row numbers)" for "-" (an id taken from no column).
func columnName(c string) string {
	if c == "-" {
		return "no column (row numbers)"
	}
	return strconv.Quote(c)
}

// autoChoice is how an automatic choice (sameColumn) reads in a message.
func autoChoice(c string) string {
	if c == "" {
		return "different columns in different Parquet files"
	}
	return columnName(c) + " in every Parquet file"
}

// valueOf is the value of key in keys/vals, "" when absent.
func valueOf(keys, vals []string, key string) string {
	if i := slices.Index(keys, key); i >= 0 {
		return vals[i]
	}
	return ""
}

// compatible refuses to mix outputs of different runs in one directory,
// and an output of another tool (kv without maeembed.* keys):
// every maeembed.* key must match, except maeembed.version (a newer build
// may finish an older run) and maeembed.kernel (another machine or path
// may, and an older output records none); maeembed.model compares as ModelName (an
// older run may have recorded the path as it was spelled); an output
// without maeembed.weights (an older version) takes any weights. The
// column keys (maeembed.id_column, maeembed.image_column) are compared only
// when both sides record them: an output of an older version, or of inputs
// without a Parquet file, records none, and a run that reads no Parquet
// file takes an output that records them; where one side chose
// automatically, its choice (maeembed.id_column_auto,
// maeembed.image_column_auto) is what is compared, and where both did, the
// output's recorded choice with this run's (sameColumn);
// maeembed.inputs likewise is compared only when the output records it
// (an older version did not).
func compatible(path string, kv map[string]string, keys, vals []string) error {
	if !slices.ContainsFunc(slices.Collect(maps.Keys(kv)), func(k string) bool { return strings.HasPrefix(k, "maeembed.") }) {
		// Another tool's file of the same name: comparing its (missing)
		// settings would say maeembed wrote it with empty ones.
		return fmt.Errorf("%s is not a maeembed output (no maeembed.* metadata) and this run would write beside or over it: move it away or use another output directory", path)
	}
	_, oldPool := kv["maeembed.pool"]
	_, oldRatio := kv["maeembed.mask_ratio"]
	if old, run := outputKind(oldPool, oldRatio), outputKind(slices.Contains(keys, "maeembed.pool"), slices.Contains(keys, "maeembed.mask_ratio")); old != "" && run != "" && old != run {
		return fmt.Errorf("%s holds %s, this run writes %s: use another output directory", path, old, run)
	}
	for i, k := range keys {
		if k == "maeembed.model" && ModelName(kv[k]) == ModelName(vals[i]) {
			continue
		}
		if k == "maeembed.weights" {
			if old, ok := kv[k]; ok && old != vals[i] {
				return fmt.Errorf("%s was written by a model with weights %s (maeembed.weights), this run's model has weights %s: "+
					"the checkpoint behind --model changed since (e.g. retrained into the same path). Use another output directory, or the checkpoint with weights %s",
					path, old, vals[i], old)
			}
			continue
		}
		if flag, ok := columnFlags[k]; ok {
			if old, ok := kv[k]; ok && (old != vals[i] || old == AutoColumn) {
				if err := sameColumn(path, flag, k, old, kv[k+autoSuffix], vals[i], valueOf(keys, vals, k+autoSuffix)); err != nil {
					return err
				}
			}
			continue // an output of an older version (or of inputs without a Parquet file) records none
		}
		if isColumnKey(k) {
			continue // an automatic choice: compared with its setting, where one side chose automatically
		}
		if k == "maeembed.inputs" {
			if old, ok := kv[k]; ok && old != vals[i] {
				return fmt.Errorf("%s holds the outputs of the inputs %s, this run reads %s: ids are paths relative to the inputs, "+
					"so same-named files would be skipped as already done. Give these inputs their own output directory, or rerun with the inputs %s", path, old, vals[i], old)
			}
			continue // an output of an older version records none
		}
		if k != "maeembed.version" && k != "maeembed.kernel" && kv[k] != vals[i] {
			return fmt.Errorf("%s was written with %s=%q, this run has %q: use another output directory", path, k, kv[k], vals[i])
		}
	}
	for k, v := range kv {
		if isColumnKey(k) {
			continue // this run reads no Parquet file, or its automatic choice differs between them (sameColumn)
		}
		if strings.HasPrefix(k, "maeembed.") && k != "maeembed.kernel" && !slices.Contains(keys, k) {
			return fmt.Errorf("%s was written with %s=%q, this run has none: use another output directory", path, k, v)
		}
	}
	return nil
}
