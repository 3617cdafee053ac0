package sinks

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/apache/arrow/go/v17/arrow"
)

const errorsDir = "errors"

// errorsIgnore are the metadata keys a resume does not compare on error
// parts: embed's error parts of earlier versions record maeembed.dim 1.
var errorsIgnore = []string{"maeembed.dim"}

// ErrorParts writes error rows to rolling errors/part-NNNNN.parquet files.
type ErrorParts struct {
	rolling
	offsets [3][]int32
}

// NewErrors writes failed items to DIR/errors/part-NNNNN.parquet with string
// columns id, stage, error. Their file metadata is meta, the run's, as
// its embeddings carry it (every command passes its run's Meta, so a
// resume compares error parts like the others). Nothing is created unless
// a row is written.
func NewErrors(dir string, meta Meta, opts ParquetOptions) (*ErrorParts, error) {
	k, v := meta.keyValues()
	return newErrors(dir, k, v, nil, nil, opts)
}

// NewReconErrors is NewErrors for a reconstruct run: its error parts carry
// the run's own metadata (meta's keys, as its reconstructions carry them),
// so a resume compares them like its outputs. It also continues the error
// parts of earlier versions, which recorded meta as an embedding run's
// (legacyErrorMeta).
func NewReconErrors(dir string, meta ReconMeta, opts ParquetOptions) (*ErrorParts, error) {
	k, v := meta.keyValues()
	lk, lv := meta.legacyErrorMeta().keyValues()
	return newErrors(dir, k, v, lk, lv, opts)
}

// newErrors opens the error parts of dir, written with the metadata k/v;
// a resumed directory's newest error part must have k/v or, if legacyK is
// set, legacyK/legacyV (resumeErrorParts).
func newErrors(dir string, k, v, legacyK, legacyV []string, opts ParquetOptions) (*ErrorParts, error) {
	schema := schemaWithMeta([]arrow.Field{
		field("id", arrow.BinaryTypes.String),
		field("stage", arrow.BinaryTypes.String),
		field("error", arrow.BinaryTypes.String),
	}, k, v)
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	resume := func(d string) (int, error) { return resumeErrorParts(d, k, v, legacyK, legacyV, errorsIgnore) }
	p, err := newParts(filepath.Join(dir, errorsDir), "parquet", schema, o, true, resume, func(path string) (recordFile, error) {
		return createParquet(path, schema, o.RowGroupBytes)
	})
	if err != nil {
		return nil, err
	}
	return &ErrorParts{rolling: rolling{schema: schema, parts: p}}, nil
}

// resumeErrorParts is resumeParts for the error parts in dir: their newest
// part must have been written with keys/vals or, when legacyKeys is set,
// with legacyKeys/legacyVals (the error parts of a reconstruct run of an
// earlier version); the error is the one against keys/vals.
func resumeErrorParts(dir string, keys, vals, legacyKeys, legacyVals, ignore []string) (int, error) {
	next, err := resumeParts(dir, "parquet", keys, vals, ignore)
	if err != nil && legacyKeys != nil {
		if n, lerr := resumeParts(dir, "parquet", legacyKeys, legacyVals, ignore); lerr == nil {
			return n, nil
		}
	}
	return next, err
}

func errorRowAck(r *ErrorRow) func(error) { return r.Ack }

func (w *ErrorParts) Write(rows []ErrorRow) error {
	if w.done {
		return failRows(rows, errorRowAck, errWriteAfterClose)
	}
	if len(rows) == 0 {
		return nil
	}
	for i := range rows {
		w.parts.held.hold(rows[i].Ack)
	}
	n := len(rows)
	var raw int64
	for i := range rows {
		raw += int64(len(rows[i].ID) + len(rows[i].Stage) + len(rows[i].Error))
	}
	cols := []arrow.Array{
		stringColumn(&w.offsets[0], n, func(i int) string { return rows[i].ID }),
		stringColumn(&w.offsets[1], n, func(i int) string { return rows[i].Stage }),
		stringColumn(&w.offsets[2], n, func(i int) string { return rows[i].Error }),
	}
	return w.writeColumns(cols, n, raw)
}

// retryableMarkers are texts of the errors a rerun can get past once their
// cause is fixed: the memory budget (stages.ErrOverBudget and its hints),
// exhausted resources, transient I/O, and a file that is not there (a
// listed file, or a symlink's target, that may appear before the retry).
// They are matched in an error
// row's error column, so rows of earlier runs classify like new ones.
var retryableMarkers = append(slices.Clip(budgetMarkers),
	syscall.EIO.Error(), syscall.EAGAIN.Error(), syscall.EINTR.Error(), syscall.EBUSY.Error(),
	syscall.ENOMEM.Error(), syscall.EMFILE.Error(), syscall.ENFILE.Error(),
	syscall.ENOSPC.Error(), syscall.EDQUOT.Error(), syscall.ESTALE.Error(),
	syscall.ETIMEDOUT.Error(), syscall.ECONNRESET.Error(), syscall.EACCES.Error(),
	syscall.ENOENT.Error(),
	"i/o timeout", "context deadline exceeded",
)

// budgetMarkers are the texts of the errors a larger memory budget gets
// past (stages.ErrOverBudget and its hints).
var budgetMarkers = []string{"more memory than the budget", "--memory-budget"}

// OverBudgetError reports whether an error row's error is the memory
// budget's (an image that needs more than --memory-budget): the
// retryable errors a larger budget fixes, unlike disk space or a
// permission.
func OverBudgetError(msg string) bool {
	for _, m := range budgetMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// DuplicateIDMarker ends the error of a tar member or Parquet row whose
// id an earlier member or row has (the sources package's "duplicate id"
// error), and DuplicateIDInputMarker that of an item (a file, member or
// row) whose id an earlier input has: the first one keeps the id, each
// later one is an error row.
const (
	DuplicateIDMarker      = ": an earlier member or row has it"
	DuplicateIDInputMarker = ": an earlier input has it (ids are one namespace across all inputs)"
)

// DuplicateRepeat is n of the error of a duplicate id's row
// (DuplicateIDError) that records the n-th repeat of the id: the error
// says "(repeat n)" right before its end marker. 0 for any other error,
// and for a row written before the number was in the text.
func DuplicateRepeat(msg string) int {
	if !DuplicateIDError(msg) {
		return 0
	}
	msg = strings.TrimSuffix(strings.TrimSuffix(msg, DuplicateIDMarker), DuplicateIDInputMarker)
	m := repeatRe.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	return n
}

var repeatRe = regexp.MustCompile(` \(repeat ([1-9][0-9]{0,9})\)$`)

// DuplicateIDError reports whether an error row's error is a duplicate
// id's (DuplicateIDMarker, DuplicateIDInputMarker): never a retryable
// one, as a retry fails it again, or drops it when the id has the first
// one's output.
func DuplicateIDError(msg string) bool {
	return (strings.HasSuffix(msg, DuplicateIDMarker) || strings.HasSuffix(msg, DuplicateIDInputMarker)) && strings.Contains(msg, "duplicate id ")
}

// RetryableError reports whether an error row's error (its error column)
// is of a kind that --retry-errors can get past once its cause is fixed:
// a memory budget too small for the image, exhausted resources (memory,
// file descriptors, disk space), a permission, transient I/O, a missing
// file (a listed one, a symlink's target). Any other
// error row (a corrupt, truncated or unsupported image, a wrong size)
// is the input's own: a retry fails it again; so is a duplicate id
// (DuplicateIDError).
func RetryableError(msg string) bool {
	if DuplicateIDError(msg) {
		return false // its path or id may hold any text
	}
	for _, m := range retryableMarkers {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}
