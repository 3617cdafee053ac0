package sources

import (
	"bufio"
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
// again (read once; a directory given again counts once), which ignored
// does not include. listRelative says
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
	add := func(e entry) { e.named = true; out = append(out, e) }
	if len(exts) == 0 {
		exts = ImageExtensions
	}
	keep := map[string]bool{}
	for _, x := range exts {
		keep["."+strings.TrimPrefix(strings.ToLower(x), ".")] = true
	}
	filter := func(extra string) func(entry) {
		return func(e entry) {
			x := strings.ToLower(filepath.Ext(e.path))
			if e.dir || e.kind != kindFile || keep[x] || extra != "" && x == extra {
				out = append(out, e)
			} else {
				ignored++
			}
		}
	}
	found := filter("") // for directory results
	for _, in := range inputs {
		if in == "-" {
			if stdin == nil {
				return nil, 0, 0, false, fmt.Errorf("input -: no standard input")
			}
			if err := expandList("stdin", stdin, visited, &listRelative, add, found); err != nil {
				return nil, 0, 0, false, err
			}
			continue
		}
		fi, err := os.Stat(in)
		switch {
		case err == nil && fi.IsDir():
			if real, rerr := realpath.Of(in); rerr == nil {
				if walked, ok := visited.visited[real]; ok && !walked {
					// Not walked, as the output inside an input is not:
					// say so rather than that it holds no image files.
					return nil, 0, 0, false, fmt.Errorf("%w: input directory %s is the run's output directory: give the output a directory of its own (the inputs' files would be taken for outputs, and outputs for inputs on a rerun)", config.ErrUsage, in)
				}
			}
			n, walked, skipped := len(out), len(visited.visited), ignored
			walk(filepath.Clean(in), filepath.Clean(in), "", visited, found)
			if len(out) == n && len(visited.visited) > walked {
				// As a glob that matches nothing: most likely a wrong path.
				return nil, 0, 0, false, noImageFiles("input directory "+in+" holds", ignored-skipped)
			}
		case err == nil && isListFile(in):
			f, err := os.Open(in)
			if err != nil {
				return nil, 0, 0, false, fmt.Errorf("list %s: %w", in, err)
			}
			err = expandList(in, f, visited, &listRelative, add, found)
			f.Close()
			if err != nil {
				return nil, 0, 0, false, err
			}
		case err == nil:
			p := filepath.Clean(in)
			add(entry{path: p, id: filepath.Base(p), kind: kindOf(p)})
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
			globbed := filter(patternExt(in))
			for _, m := range matches {
				rel, _ := filepath.Rel(root, m)
				fi, err := os.Stat(m)
				switch {
				case err != nil: // a broken symlink
					globbed(entry{path: m, id: filepath.ToSlash(rel), kind: kindOf(m), err: err})
				case fi.IsDir():
					walk(m, root, "", visited, found)
				default:
					globbed(regularEntry(m, filepath.ToSlash(rel), fi))
				}
			}
		case os.IsNotExist(err):
			return nil, 0, 0, false, fmt.Errorf("%w: input %s: %w", config.ErrUsage, in, err)
		default:
			return nil, 0, 0, false, fmt.Errorf("input %s: %w", in, err)
		}
	}
	// Lexicographic order of paths; the first occurrence of a path wins.
	// A path met again (a list line repeated, a file named beside its
	// directory) is the same image: it is read once, and the repeat is
	// counted as repeated and logged, never silently dropped.
	sort.SliceStable(out, func(i, j int) bool { return out[i].path < out[j].path })
	repeated = visited.repeatedRoots // a directory given again (walk)
	dedup := out[:0]
	byID := map[string]string{}
	for i, e := range out {
		if i > 0 && e.path == out[i-1].path {
			repeated++
			slog.Warn("input given twice: read once", "path", e.path)
			continue
		}
		if other, ok := byID[e.id]; ok {
			return nil, 0, 0, false, fmt.Errorf("%w: inputs %s and %s have the same id %q: pass their common parent directory instead", config.ErrUsage, other, e.path, EscapeID(e.id))
		}
		byID[e.id] = e.path
		dedup = append(dedup, e)
	}
	return dedup, ignored, repeated, listRelative, nil
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

// expandList reads one path per line (blank lines and #comments skipped).
// Relative paths are relative to the working directory, not to the list
// file's directory (as tar -T, and as a list on stdin must be). Listed
// files keep the listed path (cleaned) as id; listed directories are
// walked with ids under the listed path. A relative path sets *relative.
func expandList(name string, r io.Reader, visited *walkState, relative *bool, add, found func(entry)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := filepath.Clean(line)
		if !filepath.IsAbs(p) {
			*relative = true
		}
		fi, err := os.Stat(p)
		if err == nil && fi.IsDir() {
			walk(p, p, filepath.ToSlash(p), visited, found)
			continue
		}
		// Missing or unreadable listed files become per-item read errors.
		add(entry{path: p, id: filepath.ToSlash(p), kind: kindOf(p)})
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
	// command line, in a list, by a glob) that an earlier input walked
	// already: each is a path given again, as a repeated file is.
	repeatedRoots int
	walkHooks
}

// walk lists regular files under dir recursively, following symlinks but
// never entering a directory twice (which also breaks symlink loops: what a
// second path leads to is listed under the first, so nothing is lost). A
// directory that cannot be listed and a broken symlink are error entries,
// so what a walk could not see is counted as failed, never silently absent;
// one listed in full is reported to w.listed under its id (an error entry's
// id when it could not be listed). A directory below root that w.other
// recognises as another run's output is skipped with a warning; root itself
// (named as an input) is walked whatever it is.
func walk(dir, root, idPrefix string, w *walkState, add func(entry)) {
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
	failed := func(p string, err error) {
		// kindFile whatever the name: there is nothing to open.
		add(entry{path: p, id: idOf(p), kind: kindFile, err: err, dir: true})
	}
	real, err := realpath.Of(dir)
	if err != nil {
		failed(dir, fmt.Errorf("directory: %w", err))
		return
	}
	if walked, ok := w.visited[real]; ok {
		if walked {
			slog.Warn("skipping directory already listed (symlink loop or duplicate)", "path", dir, "target", real)
			if dir == root {
				w.repeatedRoots++
			}
		} else {
			slog.Info("skipping the run's output directory inside an input", "path", dir)
		}
		return
	}
	w.visited[real] = true
	ents, err := os.ReadDir(dir)
	if err != nil {
		// ReadDir returns what it read before the error: those still count.
		failed(dir, fmt.Errorf("directory: %w", err))
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
				return
			}
			slog.Info("the input directory is a maeembed output directory: reading it, as it is named as an input", "path", dir, "marked_by", what)
		}
	}
	if err == nil && w.listed != nil {
		w.listed(idOf(dir))
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		mode := e.Type()
		var fi os.FileInfo
		if mode&os.ModeSymlink != 0 {
			fi, err = os.Stat(p)
			if err != nil {
				add(entry{path: p, id: idOf(p), kind: kindOf(p), err: fmt.Errorf("broken symlink: %w", err)})
				continue
			}
			mode = fi.Mode().Type()
		}
		switch {
		case mode.IsDir():
			walk(p, root, idPrefix, w, add)
		case mode.IsRegular():
			add(entry{path: p, id: idOf(p), kind: kindOf(p)})
		default: // FIFO, device, socket
			if fi == nil {
				if fi, err = e.Info(); err != nil {
					add(entry{path: p, id: idOf(p), kind: kindOf(p), err: err})
					continue
				}
			}
			add(regularEntry(p, idOf(p), fi))
		}
	}
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
