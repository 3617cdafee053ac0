package sources

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
)

// Reader reads the items of a batch run in deterministic order: entries
// sorted by path; tar members in archive order; Parquet rows in file order.
// It is not safe for concurrent use; one goroutine feeds the pipeline.
type Reader struct {
	opts    Options
	entries []entry
	next    int       // next entry to open
	cur     container // open tar/Parquet, or nil
	curE    entry
	curSeen bool  // cur has had an image member or row (wanted or not)
	index   int64 // global ordinal of the next item
	emitted int64
	skipped int64
	ignored atomic.Int64
	// repeated is the part of ignored that is paths given again.
	repeated int64
	// listRelative: a list (file or stdin) named a relative path
	// (ListRelative).
	listRelative bool
	acks         ackCounter
	budget       Budget // nil: unbounded

	// The footers of the Parquet inputs by path, each read once per run
	// (footer): the column checks, the counts and the read share it.
	// lastFooter is the latest read, whose schemas the next one shares
	// when they are the same; footersKept the estimated bytes of the
	// parsed footers kept for their reads (keptBytes, maxKeptFooters); a
	// read that parses a footer again puts it here. Under footersMu:
	// AutoColumns may run beside Next.
	footersMu   sync.Mutex
	footers     map[string]*pqFooter
	lastFooter  *pqFooter
	footersKept int64

	// Ids of the items seen so far, each with the index in entries of the
	// input that had it first (128-bit hashes: a map slot per item, not
	// the id), to catch two items with one id: an id column with a
	// repeated value, a tar with a member twice, a file whose id is also
	// a tar member's or a Parquet row's, two Parquet files with the same
	// keys. Two hashes under independent seeds: with one 64-bit hash, two
	// distinct ids among 10⁸ would collide (and one be dropped as a
	// duplicate) with a chance of ~3·10⁻⁴; with 128 bits, ~10⁻²³. Plain
	// files are only added when there are containers: expand refuses two
	// files with one id before the run starts.
	seeds      [2]maphash.Seed
	seenIDs    map[[2]uint64]int32
	containers bool
	// repeats counts the repeats of each id seen more than once (n of
	// Options.DoneRepeat).
	repeats map[[2]uint64]int
	// shared lists the pairs of inputs where the later repeats ids of the
	// earlier (SharedIDs), at sharedAt[{earlier, later}] (their indices in
	// entries).
	shared   []SharedIDs
	sharedAt map[[2]int32]int
}

// SharedIDs is a pair of inputs where the later one holds ids that the
// earlier one has already given: each such item of Later is a "duplicate
// id" error item (ids name one image across all inputs). Count is how
// many of Later's items (in any shard) repeat an id of Earlier.
type SharedIDs struct {
	Earlier, Later string // the inputs' paths
	Count          int64
}

// ErrDuplicateID is the error (wrapped in the item's *ReadError) of an
// item whose id an earlier item already has: the earlier one keeps the
// id, this one becomes an error row.
var ErrDuplicateID = errors.New("duplicate id")

// duplicateIDEnd ends the error of a member or row whose id an earlier one
// of the same input has ("duplicate id %q" before it), and
// duplicateInputEnd that of an item whose id an earlier input has; error
// rows are told apart by them on resume (sinks.DuplicateIDMarker and
// sinks.DuplicateIDInputMarker, the same texts).
const (
	duplicateIDEnd    = ": an earlier member or row has it"
	duplicateInputEnd = ": an earlier input has it (ids are one namespace across all inputs)"
)

// duplicateError is the error of an item of the current entry whose id
// the item of entries[first] had earlier (ErrDuplicateID), the n-th
// repeat of the id in the unsharded sequence: "(repeat n)" right before
// the end marker tells a resumed run which repeat the row records
// (sinks.DuplicateRepeat), whichever shard wrote it. cause, if not
// nil, is what else went wrong reading it (a member cut short, over the
// size limit, not a regular file): kept in the text, but the error is the
// duplicate's whatever happened, so a resumed run counts the row among the
// repeats of the id (Options.DoneRepeat) and never reads the item again
// for another row.
func (r *Reader) duplicateError(id string, first, n int, cause error) error {
	var err error
	if first == r.next-1 {
		err = fmt.Errorf("%w %q (repeat %d)%s", ErrDuplicateID, id, n, duplicateIDEnd)
	} else {
		err = fmt.Errorf("%w %q (first in %s) (repeat %d)%s", ErrDuplicateID, id, r.entries[first].path, n, duplicateInputEnd)
	}
	if cause == nil {
		return err
	}
	return fmt.Errorf("%w; %w", cause, err)
}

// container iterates the members of a tar or the rows of a Parquet file.
// next calls want for each member in order (want assigns the global index
// and decides shard/resume) and returns the first wanted one, with its bytes
// when readData. It takes what it reads from h first, and release gives
// that back (nil without data). An error with member "" and row < 0
// concerns the container itself (e.g. a corrupt archive header); one for
// a member or row want was not called for (a row whose id could not be
// read) is that row's, under its row id (memberID without a key).
type container interface {
	next(want func(member string, row int64, key string) bool, readData bool, h hold) (member string, row int64, data []byte, release func(), err error)
	close() error
}

// hold takes bytes from the run's memory budget for data about to be
// read, its waits ending with ctx. The zero hold takes nothing.
type hold struct {
	ctx context.Context
	b   Budget
}

// take waits until n more bytes may be held (Budget.AcquireInput).
func (h hold) take(n int64) (release func(), err error) {
	if h.b == nil {
		return func() {}, nil
	}
	return h.b.AcquireInput(h.ctx, n)
}

// errEOF ends a container.
var errEOF = io.EOF

// ErrNoImages is the error of a tar or Parquet file named as an input (on
// the command line or in a list) that holds no image member or no row.
// Found by a directory walk, such a container just adds nothing.
var ErrNoImages = errors.New("no images in it (a tar or Parquet file named as an input must hold at least one image member or row)")

// memberError is a failure of one wanted member that leaves the container
// readable (oversized member, null Parquet image…).
type memberError struct{ err error }

func (e *memberError) Error() string { return e.err.Error() }
func (e *memberError) Unwrap() error { return e.err }

// Open expands inputs (files, directories, globs, list files, "-" for a
// list on standard input) and returns a Reader over them.
func Open(inputs []string, opts Options) (*Reader, error) {
	return OpenWith(inputs, os.Stdin, opts)
}

// OpenWith is Open with an explicit standard input.
func OpenWith(inputs []string, stdin io.Reader, opts Options) (*Reader, error) {
	if opts.Shard.Count > 1 && (opts.Shard.Index < 0 || opts.Shard.Index >= opts.Shard.Count) {
		return nil, fmt.Errorf("shard %d/%d out of range", opts.Shard.Index, opts.Shard.Count)
	}
	if opts.ParquetBatch <= 0 {
		opts.ParquetBatch = 32
	}
	if err := checkImageRoot(opts.ImageRoot); err != nil {
		return nil, err
	}
	var listed func(string)
	if opts.ContainerRead != nil {
		listed = func(id string) { opts.ContainerRead(EscapeID(id)) }
	}
	entries, ignored, repeated, listRelative, err := expand(inputs, stdin, opts.Extensions, opts.SkipDirs, walkHooks{listed: listed, other: opts.OtherOutput})
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		// As an empty directory or a glob that matches nothing (expand):
		// here, list files and stdin that name nothing.
		return nil, noImageFiles(InputsSubject(inputs, "names", "name", "the list on stdin names"), ignored)
	}
	if ignored > 0 {
		slog.Info("ignored files that are not images (captions, metadata); --extensions changes the list", "files", ignored)
	}
	if repeated > 0 {
		slog.Info("ignored repeated inputs (a path given more than once is read once)", "repeated", repeated)
	}
	r := &Reader{opts: opts, entries: entries, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, seenIDs: map[[2]uint64]int32{}, sharedAt: map[[2]int32]int{}}
	for _, e := range entries {
		r.containers = r.containers || e.kind != kindFile
	}
	r.ignored.Store(int64(ignored + repeated))
	r.repeated = int64(repeated)
	r.listRelative = listRelative
	return r, nil
}

// Count is the number of items of the whole, unsharded input sequence,
// each of which takes the next position (Position.Index) whether this run
// reads it, skips it as done or leaves it to another shard: a file one, a
// Parquet file its rows (from its footer), a tar its image members (its
// headers; a gzip stream is read through), and a tar or Parquet file
// named as an input that has none one (its ErrNoImages item), one found in
// a directory nothing. The error names a tar or Parquet file that could
// not be counted (unreadable, damaged, without an image column): how many
// items it gives is known only by reading it.
func (r *Reader) Count() (int64, error) {
	var n int64
	for _, e := range r.entries {
		m, err := r.items(e, true)
		if err != nil {
			return 0, fmt.Errorf("cannot count the images of %s: %w", e.path, err)
		}
		n += m
	}
	return n, nil
}

// items is the number of items of the entry e (Count): one for a file; a
// Parquet file's rows, a tar's image members (a gzip-compressed one only
// if decompress: else an error), at least one for a container named as
// an input (its ErrNoImages item).
func (r *Reader) items(e entry, decompress bool) (int64, error) {
	var m int64
	var err error
	switch e.kind {
	case kindFile:
		return 1, nil
	case kindParquet:
		m, err = parquetRows(e, r.footer(e.path), r.opts)
	case kindTar:
		m, err = tarMembers(e.path, decompress)
	}
	if err != nil {
		return 0, err
	}
	return max(m, b2i(e.named)), nil
}

// HasParquet says whether any input is a Parquet file: then the id and
// image columns (Options.IDColumn, Options.ImageColumn) decide the ids and
// images of its rows.
func (r *Reader) HasParquet() bool {
	for _, e := range r.entries {
		if e.kind == kindParquet {
			return true
		}
	}
	return false
}

// ListRelative says whether a list of the inputs (a list file or "-")
// named a relative path: those ids are relative to the working directory,
// which is then part of what the inputs are (sinks.InputRoots).
func (r *Reader) ListRelative() bool { return r.listRelative }

// checkImageRoot refuses an --image-root that is not a directory before
// anything is read: otherwise every path row of every Parquet input would
// fail, each with an "outside the image root" that blames the path.
func checkImageRoot(root string) error {
	if root == "" {
		return nil
	}
	fi, err := os.Stat(root)
	switch {
	case err != nil:
		return fmt.Errorf("--image-root: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("--image-root %s: not a directory", root)
	}
	return nil
}

// Files is the number of entries found (images, tars and Parquet files) and
// whether that is exactly the number of items of the unsharded run (no
// containers), for progress bars.
func (r *Reader) Files() (n int, exact bool) {
	exact = true
	for _, e := range r.entries {
		if e.kind != kindFile {
			exact = false
		}
	}
	return len(r.entries), exact
}

// Total counts the items of this shard (before resume skips) for a progress
// bar: files count one, Parquet files their row count from the footer,
// uncompressed tars their image members (headers only, data is seeked
// over); a named container with none counts one (its ErrNoImages item).
// exact is false when a compressed or unreadable container could not
// be counted cheaply.
func (r *Reader) Total() (n int64, exact bool) {
	exact = true
	for _, e := range r.entries {
		m, err := r.items(e, false)
		if err != nil {
			exact = false
			continue
		}
		n += m
	}
	if s := r.opts.Shard; s.Count > 1 {
		n = (n - int64(s.Index) + int64(s.Count) - 1) / int64(s.Count)
		if n < 0 {
			n = 0
		}
	}
	return n, exact
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

var _ Budgeted = (*Reader)(nil)

// SetBudget makes the reader take the bytes of every item from b before it
// reads them (Budget); the item's Release gives them back. An item larger
// than the whole budget is not read: it is an error item. Call it before
// the first Next.
func (r *Reader) SetBudget(b Budget) { r.budget = b }

// hold is the budget's hold for this call of Next: its waits end with ctx.
func (r *Reader) hold(ctx context.Context) hold { return hold{ctx, r.budget} }

// Stats returns counters so far.
func (r *Reader) Stats() Stats {
	r.acks.mu.Lock()
	defer r.acks.mu.Unlock()
	return Stats{Seen: r.index, Emitted: r.emitted, Skipped: r.skipped, Ignored: r.ignored.Load(), Repeated: r.repeated, Acked: r.acks.acked, Failed: r.acks.failed}
}

// Ignored is Stats().Ignored, safe to call while another goroutine reads.
func (r *Reader) Ignored() int64 { return r.ignored.Load() }

// ReadError is set as Item.Err when a listed item exists in the sequence
// but its bytes could not be read; it should become an error row
// (stage "read") like a decode failure.
type ReadError struct {
	Path string
	Err  error
}

func (e *ReadError) Error() string {
	// An error from opening the path names it already: say it once.
	if pe, ok := e.Err.(*fs.PathError); ok && pe.Path == e.Path {
		return "read " + e.Path + ": " + pe.Err.Error()
	}
	return "read " + e.Path + ": " + e.Err.Error()
}
func (e *ReadError) Unwrap() error { return e.Err }

// wanted decides, for the item with the next global index, whether this
// shard emits it; it advances the index either way.
func (r *Reader) wanted(id string) bool { return r.wantedBy(id, r.opts.Done) }

// wantedBy is wanted with done deciding instead of Options.Done.
func (r *Reader) wantedBy(id string, done func(string) bool) bool {
	i := r.index
	r.index++
	if !r.opts.Shard.has(i) {
		return false
	}
	if done != nil && done(id) {
		r.skipped++
		return false
	}
	return true
}

// Next returns the next item of this shard that is not done yet, or io.EOF.
// An item whose bytes could not be read has Err set (*ReadError) and nil Data.
func (r *Reader) Next(ctx context.Context) (Item, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Item{}, err
		}
		if r.cur != nil {
			it, ok, err := r.nextMember(ctx)
			if err != nil || ok {
				return it, err
			}
			continue
		}
		if r.next >= len(r.entries) {
			return Item{}, io.EOF
		}
		e := r.entries[r.next]
		r.next++
		switch e.kind {
		case kindFile:
			idx := r.index
			id := EscapeID(e.id)
			took, first, n := r.take(id)
			if !took {
				continue
			}
			it := Item{ID: id, Pos: Position{Index: idx, Path: e.path, Row: -1}}
			switch {
			case first >= 0:
				it.Err = &ReadError{Path: e.path, Err: r.duplicateError(id, first, n, e.err)}
			case e.err != nil:
				it.Err = &ReadError{Path: e.path, Err: e.err}
			case !r.opts.NoData:
				data, release, err := readRegular(os.OpenFile, e.path, r.hold(ctx))
				if err != nil && ctx.Err() != nil {
					return Item{}, ctx.Err() // aborted while waiting for the budget
				}
				if err != nil {
					it.Err = &ReadError{Path: e.path, Err: err}
				}
				it.Data, it.Release = data, release
			}
			return r.emit(it), nil
		case kindTar, kindParquet:
			var c container
			var err error
			if e.kind == kindTar {
				c, err = openTar(e.path, &r.ignored)
			} else {
				c, err = r.openParquet(e.path)
			}
			if errors.Is(err, errNoImageColumn) && !e.named {
				// Found beside the images, without images: the dataset's
				// metadata (img2dataset writes one per shard).
				slog.Info("ignored a Parquet file without an image column", "path", e.path, "err", err)
				r.ignored.Add(1)
				continue
			}
			if err != nil {
				// An unreadable container is one error item under its own id.
				if it, ok := r.containerError(e, err); ok {
					return it, nil
				}
				continue
			}
			r.cur, r.curE, r.curSeen = c, e, false
		}
	}
}

// nextMember advances the open container. ok is false when it is exhausted.
func (r *Reader) nextMember(ctx context.Context) (it Item, ok bool, err error) {
	e := r.curE
	var idx int64
	var id string
	var took bool
	first, n := -1, 0 // the entry whose item had id first, if any, and which repeat this is (take)
	want := func(member string, row int64, key string) bool {
		r.curSeen = true
		idx = r.index
		id = memberID(e, member, row, key)
		if key != "" && member == "" && r.opts.RowKeyed != nil && r.opts.Shard.has(idx) {
			r.opts.RowKeyed(memberID(e, "", row, ""))
		}
		took, first, n = r.take(id)
		return took
	}
	// The container may pass over any number of members or rows (done,
	// another shard's) before the one it returns: what want decided last
	// may be about one of those. ask notes which one.
	var asked bool
	var askedMember string
	var askedRow int64
	ask := func(member string, row int64, key string) bool {
		asked, askedMember, askedRow = true, member, row
		return want(member, row, key)
	}
	member, row, data, release, err := r.cur.next(ask, !r.opts.NoData, r.hold(ctx))
	if err != nil && ctx.Err() != nil {
		return Item{}, false, ctx.Err() // aborted while waiting for the budget
	}
	if err == io.EOF {
		cerr := r.cur.close()
		r.cur = nil
		if cerr != nil {
			return Item{}, false, fmt.Errorf("close %s: %w", e.path, cerr)
		}
		if r.curSeen && r.opts.ContainerRead != nil {
			r.opts.ContainerRead(EscapeID(e.id))
		}
		if e.named && !r.curSeen {
			it, ok := r.containerError(e, ErrNoImages)
			return it, ok, nil
		}
		return Item{}, false, nil
	}
	if err != nil {
		r.curSeen = true // a failed member or a corrupt container is reported itself
	}
	if err != nil && (member != "" || row >= 0) && (!asked || askedMember != member || askedRow != row) {
		// Failed before want was asked about it: a row whose id could not
		// be read. idx, id and first are those of a row passed over before
		// it, or unset: this row has the next index, and its row id
		// (FILE/ROW), the same in every run; it is no repeat of anything.
		idx, id, first = r.index, memberID(e, member, row, ""), -1
		took = r.wanted(id)
	}
	var me *memberError
	if errors.As(err, &me) {
		if !took {
			return Item{}, false, nil // not ours (another shard's, or done): keep reading
		}
		pos := Position{Index: idx, Path: e.path, Member: member, Row: row}
		err := me.err
		if first >= 0 {
			err = r.duplicateError(id, first, n, err)
		}
		return r.emit(Item{ID: id, Pos: pos, Err: &ReadError{Path: pos.String(), Err: err}}), true, nil
	}
	if err != nil {
		// A corrupt archive ends that archive.
		r.cur.close()
		r.cur = nil
		if member == "" && row < 0 {
			// Not attributable to a member: one error item for the container.
			it, ok := r.containerError(e, err)
			return it, ok, nil
		}
		if !took {
			// The archive ends inside a member this run skips (done, or
			// another shard's): that member's error, recorded by the run
			// that takes it, as this run would have had it taken it.
			return Item{}, false, nil
		}
		pos := Position{Index: idx, Path: e.path, Member: member, Row: row}
		if first >= 0 {
			err = r.duplicateError(id, first, n, err)
		}
		return r.emit(Item{ID: id, Pos: pos, Err: &ReadError{Path: pos.String(), Err: err}}), true, nil
	}
	pos := Position{Index: idx, Path: e.path, Member: member, Row: row}
	if first >= 0 {
		// Both would be stored under one id, and a resumed run would take
		// the second for done: the first keeps the id, this one is an error.
		if release != nil {
			release()
		}
		return r.emit(Item{ID: id, Pos: pos, Err: &ReadError{Path: pos.String(), Err: r.duplicateError(id, first, n, nil)}}), true, nil
	}
	return r.emit(Item{ID: id, Pos: pos, Data: data, Release: release}), true, nil
}

// take is wanted for the item with id of the current entry (the last one
// opened), after the duplicate check that every kind of item shares:
// first is the index in entries of the input whose item had id earlier,
// -1 if none, and n which repeat of the id this item is (1 for the first
// repeat, counted over every shard; 0 when first is -1). Such a repeat is
// decided by Options.DoneRepeat, when set, instead of Done.
func (r *Reader) take(id string) (took bool, first, n int) {
	first, h := r.remember(id)
	done := r.opts.Done
	if first >= 0 {
		if r.repeats == nil {
			r.repeats = map[[2]uint64]int{}
		}
		r.repeats[h]++
		n = r.repeats[h]
		if r.opts.DoneRepeat != nil {
			done = func(id string) bool { return r.opts.DoneRepeat(id, n) }
		}
	}
	return r.wantedBy(id, done), first, n
}

// remember adds id, of an item of the current entry, to the ids seen and
// returns the index of the entry that had it first, or -1 when it is new,
// with the id's hash. A repeat across two inputs is counted in shared and,
// the first time for a pair, logged.
func (r *Reader) remember(id string) (first int, h [2]uint64) {
	cur := r.next - 1
	if r.entries[cur].kind == kindFile && !r.containers {
		return -1, h // expand refused two files with one id
	}
	h = [2]uint64{maphash.String(r.seeds[0], id), maphash.String(r.seeds[1], id)}
	f, dup := r.seenIDs[h]
	if !dup {
		r.seenIDs[h] = int32(cur)
		return -1, h
	}
	if int(f) != cur {
		pair := [2]int32{f, int32(cur)}
		i, ok := r.sharedAt[pair]
		if !ok {
			i = len(r.shared)
			r.sharedAt[pair] = i
			r.shared = append(r.shared, SharedIDs{Earlier: r.entries[f].path, Later: r.entries[cur].path})
			slog.Warn("an input repeats ids of an earlier input: ids are one namespace across all inputs, so its items with those ids are \"duplicate id\" error rows "+
				"(give the inputs distinct keys, e.g. an --id-column unique across them, or --id-column - for ids made of the file's id and row number)",
				"input", r.entries[cur].path, "earlier", r.entries[f].path, "id", id)
		}
		r.shared[i].Count++
	}
	return int(f), h
}

// SharedIDs lists the pairs of inputs where the later one repeats ids
// of the earlier one (their items are "duplicate id" error items), in the
// order first met, with how many items of the later repeat ids of the
// earlier; those of one input within itself (a tar with a member twice)
// are not listed. Call it after the last Next.
func (r *Reader) SharedIDs() []SharedIDs { return slices.Clone(r.shared) }

// containerError is the error item of a tar or Parquet file that could not
// be opened or read, under the file's own id; ok is false when this shard
// (or resume) does not take it.
func (r *Reader) containerError(e entry, err error) (Item, bool) {
	idx := r.index
	id := EscapeID(e.id)
	if !r.wanted(id) {
		return Item{}, false
	}
	return r.emit(Item{ID: id, Pos: Position{Index: idx, Path: e.path, Row: -1}, Err: &ReadError{Path: e.path, Err: err}}), true
}

// memberID is the id of a tar member or Parquet row: the row's key when
// the dataset has an id column, else "<container id>/<member or row>";
// escaped (EscapeID) as a whole.
func memberID(e entry, member string, row int64, key string) string {
	switch {
	case key != "":
		return EscapeID(key)
	case member != "":
		return EscapeID(e.id + "/" + member)
	}
	return EscapeID(e.id + "/" + fmt.Sprint(row))
}

func (r *Reader) emit(it Item) Item {
	r.emitted++
	return r.acks.withAck(it, r.opts.OnAck)
}

// Close closes any open container.
func (r *Reader) Close() error {
	if r.cur != nil {
		err := r.cur.close()
		r.cur = nil
		return err
	}
	return nil
}
