package sources

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/maeembed/maeembed/config"
	"github.com/maeembed/maeembed/internal/filekind"
	"github.com/maeembed/maeembed/internal/realpath"
)

type kind uint8

const (
	kindFile kind = iota
	kindTar
	kindParquet
)

// entry is one file found on disk: an image, or a container of images.
type entry struct {
	path string
	id   string
	kind kind
	// named: given on the command line or in a list, not found by a walk
	// or a glob; such a file is always read, such a container always opened.
	named bool
	// err, if set, is why a walk could not list or stat this path (an
	// unreadable directory, a broken symlink): it becomes an error item.
	err error
	dir bool // err concerns a directory: kept whatever the extensions
	// key is the file's place on disk, the real path of its directory
	// and its name: one file reached from several inputs has one key.
	key string
	// root is the real path of the root its id is relative to; among
	// the entries of one key, the shortest root's (the outermost) wins.
	root string
	// links counts the symlinks to directories on the path from the
	// root to the file (a glob's matches): of the entries of one key and
	// root, the one with fewest wins, as in walks.
	links int
	// moved: the id is not the one its input gave, but the one under the
	// directory input that holds it (dirRoots.apply); of the entries of one
	// file, one that kept its own id (the directory's walk) is read.
	moved bool
}

// ImageExtensions are the extensions directories and globs take by default
// (Options.Extensions changes them): what the decoders read. A dataset
// folder's captions, metadata JSON and stats files are not inputs.
var ImageExtensions = []string{"jpg", "jpeg", "jfif", "png", "webp", "gif", "bmp", "tif", "tiff"}

// CheckExtensions refuses an extension (Options.Extensions, --extensions)
// that no file name ends with, which would make directories and globs take
// nothing without a word: one holding white space ("jpg png", two
// extensions in one value), a path separator, a glob character, or a dot
// after its leading one (a file's extension is what follows its last
// dot), or nothing at all. The error names --extensions and the value,
// and shows the comma-separated form; for a container's ("tar.gz") it
// says that containers are read anyway.
func CheckExtensions(exts []string) error {
	for _, x := range exts {
		name := strings.TrimPrefix(x, ".")
		var why string
		switch {
		case name == "":
			why = "is empty"
		case strings.IndexFunc(name, unicode.IsSpace) >= 0:
			why = "holds white space (several extensions are given comma-separated)"
		case strings.ContainsAny(name, `/\`):
			why = "holds a path separator"
		case strings.ContainsAny(name, `*?[]{}`):
			why = "holds a glob character"
		case strings.Contains(name, ".") && kindOf("x."+name) != kindFile:
			// "tar.gz": taking "gz" instead would add any .gz file as an
			// image, and the shards are read anyway.
			return fmt.Errorf("--extensions %q: an extension holds a dot, so it matches no file, and a directory's tar shards (.tar, .tar.gz, .tgz) and Parquet files are read whatever --extensions says (it picks the image files to take): leave %q out of --extensions",
				x, x)
		case strings.Contains(name, "."):
			why = "holds a dot (a file's extension is what follows the last dot of its name)"
		}
		if why != "" {
			return fmt.Errorf("--extensions %q: an extension %s, so it matches no file; give extensions (with or without the leading dot) without other dots or paths, comma-separated or repeated: --extensions %s",
				x, why, extensionsHint(exts))
		}
	}
	return nil
}

// extensionsHint is what CheckExtensions suggests for exts: the extensions
// they seem to mean, comma-separated ("jpg png" and "*.png" mean jpg,png).
func extensionsHint(exts []string) string {
	var out []string
	for _, x := range exts {
		for _, f := range strings.FieldsFunc(x, func(r rune) bool { return unicode.IsSpace(r) || r == ',' }) {
			f = f[strings.LastIndexAny(f, `/\.`)+1:]
			f = strings.Map(func(r rune) rune {
				if strings.ContainsRune(`*?[]{}`, r) {
					return -1
				}
				return r
			}, f)
			if f != "" && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	if len(out) == 0 {
		return "jpg,png"
	}
	return strings.Join(out, ",")
}

func kindOf(path string) kind {
	l := strings.ToLower(path)
	switch {
	case strings.HasSuffix(l, ".tar"), strings.HasSuffix(l, ".tar.gz"), strings.HasSuffix(l, ".tgz"):
		return kindTar
	case strings.HasSuffix(l, ".parquet"):
		return kindParquet
	}
	return kindFile
}

// compressedTar names the compression of a tar whose file name says it
// is one maeembed does not read (.tar.xz, .txz, .tar.bz2, .tbz2, .tbz,
// .tar.zst, .tzst), "" for any other name. Named as an input, such a file
// would otherwise be taken for an image and fail as "unknown format";
// its content decides for a .tar (see compression).
func compressedTar(path string) string {
	l := strings.ToLower(path)
	for _, c := range []struct {
		name string
		sufs []string
	}{
		{"xz", []string{".tar.xz", ".txz"}},
		{"bzip2", []string{".tar.bz2", ".tbz2", ".tbz"}},
		{"zstd", []string{".tar.zst", ".tzst"}},
	} {
		for _, s := range c.sufs {
			if strings.HasSuffix(l, s) {
				return c.name
			}
		}
	}
	return ""
}

// isListFile: inputs named *.txt, *.lst or *.list hold one path per line.
func isListFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".txt", ".lst", ".list":
		return true
	}
	return false
}

// InputsSubject names the command-line inputs as a message's subject,
// with its verb: one after a single input ("input d holds"), many after
// several ("inputs a b hold"). '-' is the list read from stdin: alone,
// the subject is stdin, a phrase with its verb ("the list on stdin
// names"); among other inputs it is "- (stdin)".
func InputsSubject(inputs []string, one, many, stdin string) string {
	switch {
	case len(inputs) == 1 && inputs[0] == "-":
		return stdin
	case len(inputs) == 1:
		return "input " + inputs[0] + " " + one
	}
	names := make([]string, len(inputs))
	for i, in := range inputs {
		names[i] = in
		if in == "-" {
			names[i] = "- (stdin)"
		}
	}
	return "inputs " + strings.Join(names, " ") + " " + many
}

// noImageFiles is the error of inputs that give no image file (subject
// says which: "input directory d holds"), with the count of files left out
// for their extension: OpenWith's for all inputs, expand's per directory.
func noImageFiles(subject string, ignored int) error {
	files := "files"
	if ignored == 1 {
		files = "file"
	}
	return fmt.Errorf("%s no image files (%d other %s ignored; --extensions sets what is taken)", subject, ignored, files)
}

// expand turns command-line inputs into the sorted, de-duplicated list of
// entries. Ids are the path relative to the input root: for a directory or
// glob, relative to it; for a file given directly, its base name; for paths
// read from a list (or stdin), the path as listed.
//
// A file whose real path lies under the real path of a directory input
// (a directory named on the command line) has its id relative to the
// outermost such directory, however it is reached (walked, listed,
// globbed, named directly) and whether or not that directory's walk takes
// it (extensions, skip rules, another run's output): its id depends on
// the directory inputs alone, so adding a list line or a file named
// beside its directory, or changing --extensions, never gives a file
// already done a second id (dirIDs). A file under no directory input that
// several inputs reach (a glob and a list naming one file) is one entry,
// whatever the order of the inputs: the one whose root is outermost, the
// shortest real path (a glob's directory part, or a directory a list
// names; for a list, the working directory, or the filesystem root for an
// absolute path; for a file named directly, the file itself). Files are
// the same when the real paths of their directories and their names are
// (a symlink to a file is a file of its own). Walks reach a directory by
// a path without symlinks when there is one (walkState.run), and of a
// glob's matches of one file, the path with fewest symlinks to
// directories is kept.
//
// Directories and globs contribute files whose extension is in exts
// (ImageExtensions when empty), plus tar and Parquet containers; a glob also
// takes the extension its own pattern names (*.heic). Files named directly
// or listed are always taken. ignored counts the files left out. A glob
// that matches nothing and a directory input (on the command line) that
// holds no such file, in it or below, are errors. The errors in what the
// inputs name (a path that does not exist, a glob refused or matching
// nothing, two inputs with one id, the output directory given as an input)
// wrap config.ErrUsage; an empty directory does not. Walks do not enter the
// directories of skip (Options.SkipDirs). repeated counts the paths met
// again (read once; a directory given again, or nested in another input,
// counts once), which ignored does not include. listRelative says
// whether a list (a list file or stdin) named a relative path: its ids
// are then relative to the working directory.
func expand(inputs []string, stdin io.Reader, exts, skip []string, hooks walkHooks) (entries []entry, ignored, repeated int, listRelative bool, err error) {
	var out []entry
	// Real paths of walked directories (symlink loops), and of skip with
	// the value false.
	visited := &walkState{visited: map[string]bool{}, walkHooks: hooks}
	for _, d := range skip {
		if real, err := realpath.Of(d); err == nil {
			visited.visited[real] = false
		}
	}
	reals := realDirs{}
	add := func(e entry) { e.named = true; out = append(out, e) }
	if len(exts) == 0 {
		exts = ImageExtensions
	}
	keep := map[string]bool{}
	for _, x := range exts {
		keep["."+strings.TrimPrefix(strings.ToLower(x), ".")] = true
	}
	filter := func(extra string) func(entry) bool {
		return func(e entry) bool {
			x := strings.ToLower(filepath.Ext(e.path))
			if e.dir || e.kind != kindFile || keep[x] || extra != "" && x == extra {
				out = append(out, e)
				return true
			}
			ignored++
			return false
		}
	}
	found := filter("") // for directory results
	// The directories to walk, in the order of the inputs: walked once
	// all are known, outermost first (walkState.run).
	var jobs []*walkJob
	for _, in := range inputs {
		if in == "-" {
			if stdin == nil {
				return nil, 0, 0, false, fmt.Errorf("input -: no standard input")
			}
			if err := expandList("stdin", stdin, reals, &listRelative, add, found, &jobs); err != nil {
				return nil, 0, 0, false, err
			}
			continue
		}
		fi, err := os.Stat(in)
		switch {
		case err == nil && fi.IsDir():
			real, rerr := realpath.Of(in)
			if rerr == nil {
				if walked, ok := visited.visited[real]; ok && !walked {
					// Not walked, as the output inside an input is not:
					// say so rather than that it holds no image files.
					return nil, 0, 0, false, fmt.Errorf("%w: input directory %s is the run's output directory: give the output a directory of its own (the inputs' files would be taken for outputs, and outputs for inputs on a rerun)", config.ErrUsage, in)
				}
			}
			dir := filepath.Clean(in)
			jobs = append(jobs, &walkJob{dir: dir, root: dir, real: real, rootReal: real, keep: found, input: in})
		case err == nil && isListFile(in):
			f, err := os.Open(in)
			if err != nil {
				return nil, 0, 0, false, fmt.Errorf("list %s: %w", in, err)
			}
			err = expandList(in, f, reals, &listRelative, add, found, &jobs)
			f.Close()
			if err != nil {
				return nil, 0, 0, false, err
			}
		case err == nil:
			p := filepath.Clean(in)
			if name := compressedTar(p); name != "" {
				return nil, 0, 0, false, fmt.Errorf("%w: input %s: a tar compressed with %s, which maeembed does not read: decompress it, or recompress it with gzip (.tar.gz)", config.ErrUsage, in, name)
			}
			key := reals.key(p)
			add(entry{path: p, id: filepath.Base(p), kind: kindOf(p), key: key, root: key})
		case os.IsNotExist(err) && hasMeta(in):
			if slices.Contains(strings.Split(filepath.ToSlash(in), "/"), "**") {
				// Shells with globstar and Python's glob(recursive=True)
				// read '**' as any depth; filepath.Glob as one level, which
				// would quietly leave out the images above and below it.
				return nil, 0, 0, false, fmt.Errorf("%w: glob %q: '**' is not recursive here (it matches one directory level, like '*'): %s, or '*' for one level", config.ErrUsage, in, recursiveHint(in))
			}
			matches, gerr := filepath.Glob(in)
			if gerr != nil {
				return nil, 0, 0, false, fmt.Errorf("%w: glob %q: %w", config.ErrUsage, in, gerr)
			}
			if len(matches) == 0 {
				return nil, 0, 0, false, fmt.Errorf("%w: glob %q matches nothing", config.ErrUsage, in)
			}
			root := globRoot(in)
			rootReal := reals.of(root)
			globbed := filter(patternExt(in))
			links := symlinkCounter{}
			for _, m := range matches {
				rel, _ := filepath.Rel(root, m)
				fi, err := os.Stat(m)
				switch {
				case err != nil: // a broken symlink
					globbed(entry{path: m, id: filepath.ToSlash(rel), kind: kindOf(m), err: err, key: reals.key(m), root: rootReal, links: links.on(root, filepath.Dir(rel))})
				case fi.IsDir():
					real, _ := realpath.Of(m)
					jobs = append(jobs, &walkJob{dir: m, root: root, real: real, rootReal: rootReal, keep: found, links: links.on(root, rel)})
				default:
					e := regularEntry(m, filepath.ToSlash(rel), fi)
					e.key, e.root, e.links = reals.key(m), rootReal, links.on(root, filepath.Dir(rel))
					globbed(e)
				}
			}
		case os.IsNotExist(err):
			return nil, 0, 0, false, fmt.Errorf("%w: input %s: %w", config.ErrUsage, in, err)
		default:
			return nil, 0, 0, false, fmt.Errorf("input %s: %w", in, err)
		}
	}
	visited.run(jobs)
	for _, j := range jobs {
		if j.input != "" && j.walked && j.added == 0 {
			// As a glob that matches nothing: most likely a wrong path.
			return nil, 0, 0, false, noImageFiles("input directory "+j.input+" holds", j.ignored)
		}
	}
	// The ids of the files under a directory input: relative to the
	// outermost one, however they were reached.
	ids := dirIDs(jobs)
	for i := range out {
		if out[i].key == "" {
			out[i].key = absPath(out[i].path)
		}
		ids.apply(&out[i])
	}
	if hooks.listed != nil {
		for _, d := range visited.listedDirs {
			ids.apply(&d)
			hooks.listed(d.id)
		}
	}
	// One entry per file (key): the outermost root's. The others are the
	// same image met again (a list line repeated, a file named beside its
	// directory): it is read once, and the repeat is counted as repeated
	// and logged, never silently dropped. A file named or listed stays
	// named when another input's id wins.
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case a.key != b.key:
			return a.key < b.key
		case a.root != b.root:
			return outerFirst(a.root, b.root) < 0
		case a.links != b.links:
			return a.links < b.links
		case a.moved != b.moved:
			return !a.moved
		case a.id != b.id:
			return a.id < b.id
		}
		return a.path < b.path
	})
	repeated = visited.repeatedRoots // a directory given again (walk)
	dedup := out[:0]
	for i, e := range out {
		if i > 0 && e.key == out[i-1].key {
			repeated++
			slog.Warn("input given twice: read once", "path", e.path, "id", e.id, "read_as", dedup[len(dedup)-1].id)
			dedup[len(dedup)-1].named = dedup[len(dedup)-1].named || e.named
			continue
		}
		dedup = append(dedup, e)
	}
	// Lexicographic order of paths.
	sort.SliceStable(dedup, func(i, j int) bool { return dedup[i].path < dedup[j].path })
	byID := map[string]string{}
	for _, e := range dedup {
		if other, ok := byID[e.id]; ok {
			return nil, 0, 0, false, fmt.Errorf("%w: inputs %s and %s have the same id %q: pass their common parent directory instead", config.ErrUsage, other, e.path, EscapeID(e.id))
		}
		byID[e.id] = e.path
	}
	return dedup, ignored, repeated, listRelative, nil
}

// dirRoots are the real paths of the directory inputs, shortest first.
type dirRoots []string

// dirIDs are the directory inputs of jobs (those named on the command
// line whose real path is known).
func dirIDs(jobs []*walkJob) dirRoots {
	var d dirRoots
	for _, j := range jobs {
		if j.input != "" && j.real != "" && !slices.Contains(d, j.real) {
			d = append(d, j.real)
		}
	}
	slices.SortFunc(d, outerFirst)
	return d
}

// outerFirst orders real paths outermost first: the shorter first (a
// directory before what it holds), then lexicographically. It is the
// order of the roots that decide ids (dirIDs, the entries of one file in
// expand) and of the walks (walkState.run), so that neither depends on
// the order of the inputs.
func outerFirst(a, b string) int {
	return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
}

// apply gives e, if its key (real path) lies under a directory input, the
// id relative to the outermost one and that directory as root; any other
// entry keeps its id and root.
func (d dirRoots) apply(e *entry) {
	for _, r := range d {
		rest, ok := strings.CutPrefix(e.key, r)
		if !ok {
			continue
		}
		if !strings.HasSuffix(r, string(filepath.Separator)) {
			// r is not the filesystem root: a separator follows it.
			if rest, ok = strings.CutPrefix(rest, string(filepath.Separator)); !ok {
				continue
			}
		}
		if rest == "" {
			continue // the directory itself: its walk names it
		}
		id := filepath.ToSlash(rest)
		e.moved = e.id != id || e.root != r
		e.id, e.root, e.links = id, r, 0
		return
	}
}

// symlinkCounter counts the symlinks on paths below a glob's root,
// caching what it learns of each directory.
type symlinkCounter map[string]bool

// on is the number of symlinks among the components of rel (a relative
// path; "." has none) below root.
func (c symlinkCounter) on(root, rel string) int {
	if rel == "." || rel == "" {
		return 0
	}
	n, p := 0, root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		link, ok := c[p]
		if !ok {
			fi, err := os.Lstat(p)
			link = err == nil && fi.Mode()&os.ModeSymlink != 0
			c[p] = link
		}
		if link {
			n++
		}
	}
	return n
}

// realDirs caches the real paths of the directories of files named,
// listed or globbed, for their entries' keys.
type realDirs map[string]string

// of is dir's real path; absolute only, if it cannot be resolved (a
// missing listed file's directory).
func (c realDirs) of(dir string) string {
	if r, ok := c[dir]; ok {
		return r
	}
	r, err := realpath.Of(dir)
	if err != nil {
		r = absPath(dir)
	}
	c[dir] = r
	return r
}

// key is the key of the file at p: its directory's real path and its name.
func (c realDirs) key(p string) string {
	return filepath.Join(c.of(filepath.Dir(p)), filepath.Base(p))
}

// absPath is p absolute, or p if the working directory is unknown.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// regularEntry is the entry of a path a walk or glob found; what is not a
// regular file (a FIFO, a device, a socket) is an error entry rather than
// something to open, which could block or never end.
func regularEntry(p, id string, fi os.FileInfo) entry {
	e := entry{path: p, id: id, kind: kindOf(p)}
	if !fi.Mode().IsRegular() {
		e.err = fmt.Errorf("not a regular file but %s", filekind.Of(fi.Mode()))
	}
	return e
}

// patternExt is the extension a glob pattern names literally ("*.HEIC" →
// ".heic"), or "" when its last element has none or a wildcard in it.
func patternExt(pattern string) string {
	x := filepath.Ext(pattern)
	if hasMeta(x) || strings.ContainsRune(x, filepath.Separator) {
		return ""
	}
	return strings.ToLower(x)
}

// expandList reads one path per line (blank lines and #comments skipped;
// a UTF-8 byte-order mark before the first line is dropped).
// Relative paths are relative to the working directory, not to the list
// file's directory (as tar -T, and as a list on stdin must be). Listed
// files keep the listed path (cleaned) as id; listed directories are
// appended to jobs, to be walked with ids under the listed path. A
// relative path sets *relative.
func expandList(name string, r io.Reader, reals realDirs, relative *bool, add func(entry), found func(entry) bool, jobs *[]*walkJob) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 {
			// Editors on Windows save UTF-8 text with a byte-order mark
			// first: it is no part of the first path (nor of a comment).
			line = strings.TrimPrefix(line, "\ufeff")
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := filepath.Clean(line)
		// The root of the listed path's id: the working directory, or
		// the filesystem root.
		root := filepath.VolumeName(p) + string(filepath.Separator)
		if !filepath.IsAbs(p) {
			*relative = true
			root = reals.of(".")
		}
		fi, err := os.Stat(p)
		if err == nil && fi.IsDir() {
			real, _ := realpath.Of(p)
			*jobs = append(*jobs, &walkJob{dir: p, root: p, idPrefix: filepath.ToSlash(p), real: real, rootReal: root, keep: found})
			continue
		}
		// Missing or unreadable listed files become per-item read errors.
		add(entry{path: p, id: filepath.ToSlash(p), kind: kindOf(p), key: reals.key(p), root: root})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("list %s: %w", name, err)
	}
	return nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[`) }

// globRoot is the directory part of a pattern before its first wildcard.
func globRoot(pattern string) string {
	i := strings.IndexAny(pattern, `*?[`)
	dir := filepath.Dir(pattern[:i] + "x")
	return filepath.Clean(dir)
}

// walkHooks are what walks report besides entries: the ids of the
// directories listed in full (Options.ContainerRead) and which directories
// are another run's output (Options.OtherOutput); nil fields are not
// called.
type walkHooks struct {
	listed func(id string)
	other  func(dir string, names []string) string
}

// walkState is what the walks of one expand share: the real paths of the
// directories walked (true) or not to walk (false: Options.SkipDirs), and
// the hooks.
type walkState struct {
	visited map[string]bool
	// repeatedRoots counts the directories named as inputs (on the
	// command line, in a list, by a glob) that another input's walk
	// listed (run walks the outermost first): each is a path given
	// again, as a repeated file is.
	repeatedRoots int
	// listedDirs are the directories listed in full, by key (real path),
	// id and root: for walkHooks.listed once the ids are settled.
	listedDirs []entry
	walkHooks
}

// walkJob is a directory an input walks: a directory input, one a glob
// matched or a list names.
type walkJob struct {
	dir, root, idPrefix string // ids: idPrefix/ the path relative to root
	real                string // dir's real path ("" if unresolved)
	rootReal            string // entry.root of the files found
	keep                func(entry) bool
	// input is the command-line input, for a directory named there:
	// one that holds no file taken is an error.
	input string
	// links counts the symlinks on the path from root to dir (a glob's
	// match): of the jobs of one directory, the one with fewest walks it.
	links int
	// walked: dir was listed, not skipped as met before; added and
	// ignored count the files taken and left out.
	walked         bool
	added, ignored int
}

func (j *walkJob) add(e entry) {
	e.root = j.rootReal
	if j.keep(e) {
		j.added++
	} else {
		j.ignored++
	}
}

// symlinkDir is a symlink to a directory that a walk met: walked once
// every path without symlinks has been.
type symlinkDir struct {
	path string
	job  *walkJob
}

// run walks the directories of jobs, so that which walk lists a directory
// (and so its files' ids) depends on what the inputs are, not on their
// order or on the names beside a symlink: outermost first (the shortest
// real path; of one directory, the job with the shortest root), every
// path without symlinks before any through a symlink, then the paths
// through one symlink, and so on, in order of their roots and paths.
func (w *walkState) run(jobs []*walkJob) {
	order := slices.Clone(jobs)
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		switch {
		case a.real != b.real:
			return outerFirst(a.real, b.real) < 0
		case a.rootReal != b.rootReal:
			return outerFirst(a.rootReal, b.rootReal) < 0
		case a.links != b.links:
			return a.links < b.links
		case a.idPrefix != b.idPrefix:
			return a.idPrefix < b.idPrefix
		}
		return a.dir < b.dir
	})
	var links []symlinkDir
	for _, j := range order {
		if j.walked = w.walk(j.dir, j, &links); !j.walked && w.visited[j.real] {
			w.repeatedRoots++ // an input's directory another walk listed
		}
	}
	for len(links) > 0 {
		round := links
		links = nil
		sort.SliceStable(round, func(i, j int) bool {
			a, b := round[i], round[j]
			switch {
			case a.job.rootReal != b.job.rootReal:
				return outerFirst(a.job.rootReal, b.job.rootReal) < 0
			case a.job.idPrefix != b.job.idPrefix:
				return a.job.idPrefix < b.job.idPrefix
			}
			return a.path < b.path
		})
		for _, l := range round {
			w.walk(l.path, l.job, &links)
		}
	}
}

// walk lists regular files under dir recursively into j, never entering a
// directory twice (which also breaks symlink loops: what a second path
// leads to is listed under the first, so nothing is lost), and returns
// whether it listed dir (false: met before). Symlinks to directories are
// appended to links rather than followed (run walks them later). A
// directory that cannot be listed and a broken symlink are error entries,
// so what a walk could not see is counted as failed, never silently absent;
// one listed in full is recorded for w.listed (called by expand once the
// ids are settled) under its id (an error entry's
// id when it could not be listed). A directory below root that w.other
// recognises as another run's output is skipped with a warning; root itself
// (named as an input) is walked whatever it is.
func (w *walkState) walk(dir string, j *walkJob, links *[]symlinkDir) bool {
	root, idPrefix := j.root, j.idPrefix
	idOf := func(p string) string {
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			rel = filepath.Base(p)
		}
		id := filepath.ToSlash(rel)
		if idPrefix != "" {
			id = idPrefix + "/" + id
		}
		return id
	}
	failed := func(p, key string, err error) {
		// kindFile whatever the name: there is nothing to open.
		j.add(entry{path: p, id: idOf(p), kind: kindFile, err: err, dir: true, key: key})
	}
	real, err := realpath.Of(dir)
	if err != nil {
		failed(dir, "", fmt.Errorf("directory: %w", err))
		return true
	}
	if walked, ok := w.visited[real]; ok {
		if walked {
			slog.Warn("skipping directory already listed under another path (a symlink to it or a loop, or an input given again or nested in another)", "path", dir, "target", real)
		} else {
			slog.Info("skipping the run's output directory inside an input", "path", dir)
		}
		return false
	}
	w.visited[real] = true
	ents, err := os.ReadDir(dir)
	if err != nil {
		// ReadDir returns what it read before the error: those still count.
		failed(dir, real, fmt.Errorf("directory: %w", err))
	}
	if w.other != nil && len(ents) > 0 {
		names := make([]string, len(ents))
		for i, e := range ents {
			names[i] = e.Name()
		}
		if what := w.other(dir, names); what != "" {
			if dir != root {
				slog.Warn("skipping a maeembed output directory inside an input: its files are another run's outputs, not inputs (name it as an input to read it anyway)",
					"path", dir, "marked_by", what)
				return true
			}
			slog.Info("the input directory is a maeembed output directory: reading it, as it is named as an input", "path", dir, "marked_by", what)
		}
	}
	if err == nil && w.listed != nil {
		w.listedDirs = append(w.listedDirs, entry{id: idOf(dir), key: real, root: j.rootReal})
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		key := filepath.Join(real, e.Name())
		mode := e.Type()
		var fi os.FileInfo
		if mode&os.ModeSymlink != 0 {
			fi, err = os.Stat(p)
			if err != nil {
				j.add(entry{path: p, id: idOf(p), kind: kindOf(p), err: fmt.Errorf("broken symlink: %w", err), key: key})
				continue
			}
			mode = fi.Mode().Type()
			if mode.IsDir() {
				*links = append(*links, symlinkDir{path: p, job: j})
				continue
			}
		}
		switch {
		case mode.IsDir():
			w.walk(p, j, links)
		case mode.IsRegular():
			j.add(entry{path: p, id: idOf(p), kind: kindOf(p), key: key})
		default: // FIFO, device, socket
			if fi == nil {
				if fi, err = e.Info(); err != nil {
					j.add(entry{path: p, id: idOf(p), kind: kindOf(p), err: err, key: key})
					continue
				}
			}
			e := regularEntry(p, idOf(p), fi)
			e.key = key
			j.add(e)
		}
	}
	return true
}

// recursiveHint says what to pass instead of a glob with a '**' component:
// the directory before the first '**' (".", if none), which is walked
// recursively, and --extensions for a last component "*.EXT".
func recursiveHint(glob string) string {
	parts := strings.Split(filepath.ToSlash(glob), "/")
	i := slices.Index(parts, "**")
	dir := filepath.FromSlash(strings.Join(parts[:i], "/"))
	if dir == "" {
		dir = "."
		if strings.HasPrefix(glob, "/") {
			dir = "/"
		}
	}
	hint := fmt.Sprintf("pass %s, which is walked recursively", dir)
	last := parts[len(parts)-1]
	if ext, ok := strings.CutPrefix(last, "*."); ok && i < len(parts)-1 && ext != "" && !hasMeta(ext) {
		return hint + fmt.Sprintf(", with --extensions %s to take only those files", ext)
	}
	return hint + " (--extensions chooses the files)"
}
