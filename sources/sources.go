// Package sources produces the items of a batch run: image bytes with a
// stable id and the position they came from, each carrying an ack (the
// Redpanda Connect input pattern). Files, directories, globs, list
// files, tar/WebDataset shards and Parquet datasets all go through one
// Reader, in one deterministic order, so --shard and resume are one piece of
// code.
package sources

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Position says where an item came from. Only the fields of its kind are set.
type Position struct {
	Index int64 // ordinal in the full, unsharded input sequence (a stream: the offset)

	// Path is the file, tar or Parquet file as found on disk; for a
	// stream, the message's place in it (Kafka: "topic/partition/offset").
	Path   string
	Member string // tar member name
	Row    int64  // Parquet row within Path (-1 when not Parquet)
}

// String is the human/metadata form: "path" (a file, or a stream's
// "topic/partition/offset"), "path:member" (tar) or "path#row" (Parquet).
func (p Position) String() string {
	switch {
	case p.Member != "":
		return p.Path + ":" + p.Member
	case p.Row >= 0:
		return p.Path + "#" + strconv.FormatInt(p.Row, 10)
	}
	return p.Path
}

// Item is one input. Ack must be called exactly once, when the item's output
// (or its error row) is durable (err == nil) or definitively not written
// (err != nil: it will be retried on resume). Extra calls are ignored.
type Item struct {
	ID   string
	Data []byte
	Pos  Position
	// Err is set (a *ReadError) when the item is part of the sequence but
	// its bytes could not be read: it becomes an error row, stage "read".
	Err error
	Ack func(error)
	// Release, when set, gives back the memory budget Data holds (see
	// Budget): call it once Data is no longer used. nil when the source
	// took nothing from a budget for it.
	Release func()
}

// Budget bounds the bytes a run holds in memory (stages.Budget implements
// it). A Reader given one (SetBudget) takes each item's bytes from it
// before reading them — a file's or tar member's size, a Parquet batch's
// column chunk share — and hands the hold on as Item.Release.
type Budget interface {
	// AcquireInput waits until n more bytes may be held and returns their
	// release; it fails when ctx ends, or at once for n larger than the
	// whole budget.
	AcquireInput(ctx context.Context, n int64) (release func(), err error)
	// Size is the whole budget in bytes.
	Size() int64
}

// Budgeted is a Source that takes its items' bytes from a Budget before it
// reads them (the engine gives its own budget to such a source).
type Budgeted interface {
	Source
	SetBudget(Budget)
}

// Source is what a run reads items from. Next returns io.EOF after the last
// item.
type Source interface {
	Next(ctx context.Context) (Item, error)
	Close() error
}

// Shard selects every Count-th item starting at Index (--shard i/n). The
// zero value selects everything.
type Shard struct{ Index, Count int }

// ParseShard parses "i/n" with 0 ≤ i < n.
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: want i/n with 0 <= i < n", s)
	}
	return Shard{Index: i, Count: n}, nil
}

func (s Shard) String() string {
	if s.Count <= 1 {
		return "0/1"
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

func (s Shard) has(index int64) bool {
	return s.Count <= 1 || index%int64(s.Count) == int64(s.Index)
}

// Options configure a Reader. The fields with a yaml key are user options
// (flags of the same name: --extensions, --image-column, --id-column,
// --image-root); the others are set by the program.
type Options struct {
	Shard Shard `yaml:"-"`
	// Done reports ids already finished by an earlier run (resume); they are
	// skipped after sharding, so shards are stable across reruns.
	Done func(id string) bool `yaml:"-"`
	// DoneRepeat, if set, decides instead of Done for an item (a file,
	// tar member or Parquet row) whose id an earlier item has, of the same
	// input or another: the n-th repeat
	// of the id (n >= 1, counted over the unsharded sequence, so the same
	// item has the same n in every shard and run). A run that takes it
	// makes it an error item ("duplicate id": the first keeps the id)
	// whose error says "(repeat n)", so it is done when an earlier run
	// (of any shard) recorded that row; Done, which tells of the id,
	// would take it for done with the first one's output alone.
	DoneRepeat func(id string, n int) bool `yaml:"-"`
	// OnAck, if set, is called once per item when its Ack is called.
	OnAck func(it Item, err error) `yaml:"-"`
	// ContainerRead, if set, is called with the id of each tar or Parquet
	// file that was read to its end with at least one member or row, in
	// any shard (its members may have failed, each under its own id), and
	// of each directory a walk listed in full (when Open expands the
	// inputs): an error row under that id from an earlier run (the file
	// could not be opened, was cut short, or had no image; the directory
	// could not be listed) no longer holds.
	ContainerRead func(id string) `yaml:"-"`
	// RowKeyed, if set, is called with the row id (FILE/ROW, the id a row
	// gets when its key cannot be read) of each Parquet row of this shard
	// whose key was read: an error row under that row id from an earlier
	// run (whose read of the row failed before its key) no longer holds,
	// since the row now has its output or error row under its key.
	RowKeyed func(rowID string) `yaml:"-"`
	// NoData leaves Item.Data nil (for --dry-run listings): files are not
	// read. Tar and Parquet contents are still scanned for their members.
	NoData bool `yaml:"-"`
	// Extensions (e.g. jpg, png; default ImageExtensions) are the files
	// directories and globs take, so the sidecar files of a dataset folder
	// (.txt captions, .json metadata, stats) are not read as broken images.
	// Each may have its leading dot or not (.jpg is jpg) and is matched
	// in any letter case, of it and of the file name (JPG takes a.jpg).
	// A glob also takes the extension its pattern names (photos/*.heic).
	// Tar and Parquet files, and files named directly or in a list, are
	// always taken.
	Extensions []string `yaml:"extensions"`
	// ImageColumn names the Parquet column holding images: binary, or a
	// struct with a binary "bytes" field (Hugging Face datasets). Default:
	// the first of ImageColumns the file has.
	ImageColumn string `yaml:"image_column"`
	// IDColumn names a Parquet string column used as the id instead of
	// "<file id>/<row>". Default: the first of IDColumns the file has.
	// "-" means none: ids are always "<file id>/<row>".
	IDColumn string `yaml:"id_column"`
	// ImageRoot is the directory inside which the path of a Hugging Face
	// image struct with null bytes may point. Default: the directory of
	// the Parquet file itself. Paths outside it are refused, and so is
	// anything but a regular file of at most the member size limit.
	ImageRoot string `yaml:"image_root" config:"path"`
	// ParquetBatch is the number of Parquet rows decoded at a time
	// (bounds memory); default 32.
	ParquetBatch int `yaml:"-"`
	// SkipDirs are directories a directory walk or glob does not enter:
	// the run's own output directory, so that a rerun with the output
	// inside an input directory does not read (or count as ignored) what
	// an earlier run wrote. Missing ones are left out.
	SkipDirs []string `yaml:"-"`
	// OtherOutput, if set, says whether a directory a walk enters, whose
	// entries are names, is another maeembed run's output directory, and
	// what marks it ("" if not; sinks.OutputOf): such a directory below an
	// input directory is skipped with a warning naming it (reconstruct's
	// PNG panels would be taken for images). One named as an input (on the
	// command line or in a list) is read.
	OtherOutput func(dir string, names []string) string `yaml:"-"`
}

// Stats counts what a Reader did so far.
type Stats struct {
	Seen    int64 // items in the full sequence up to now
	Emitted int64
	Skipped int64 // in the shard but already done
	// Ignored counts files in directories and globs left out for their
	// extension (Options.Extensions), members of tar shards that are not
	// images (a WebDataset's .json, .cls, .txt; counted as they are read)
	// and Parquet files found in directories without an image column (a
	// dataset's metadata), and paths given again (a repeated list line;
	// read once): not inputs, not errors.
	Ignored int64
	// Repeated is the part of Ignored that is paths given again.
	Repeated int64
	Acked    int64
	Failed   int64 // acked with an error
}

type ackCounter struct {
	mu     sync.Mutex
	acked  int64
	failed int64
}

// withAck attaches a once-only ack to it that counts and forwards to onAck.
func (c *ackCounter) withAck(it Item, onAck func(Item, error)) Item {
	var once sync.Once
	meta := it
	meta.Data, meta.Release = nil, nil // the ack outlives the bytes' usefulness; don't pin them
	it.Ack = func(err error) {
		once.Do(func() {
			c.mu.Lock()
			c.acked++
			if err != nil {
				c.failed++
			}
			c.mu.Unlock()
			if onAck != nil {
				onAck(meta, err)
			}
		})
	}
	return it
}
