package sources

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// expand turns command-line inputs into the sorted, de-duplicated list of
// entries. Ids are the path relative to the input root: for a directory or
// glob, relative to it; for a file given directly, its base name; for paths
// read from a list (or stdin), the path as listed.
//
// exts, if not empty, restricts what directories and globs contribute to
// files with those extensions (plus tar and Parquet containers); files named
// directly or listed are always taken.
func expand(inputs []string, stdin io.Reader, exts []string) ([]entry, error) {
	var out []entry
	visited := map[string]bool{} // real paths of walked directories (symlink loops)
	add := func(e entry) { out = append(out, e) }
	found := add // for directory and glob results
	if len(exts) > 0 {
		keep := map[string]bool{}
		for _, x := range exts {
			keep["."+strings.TrimPrefix(strings.ToLower(x), ".")] = true
		}
		found = func(e entry) {
			if e.kind != kindFile || keep[strings.ToLower(filepath.Ext(e.path))] {
				out = append(out, e)
			}
		}
	}
	for _, in := range inputs {
		if in == "-" {
			if stdin == nil {
				return nil, fmt.Errorf("input -: no standard input")
			}
			if err := expandList("stdin", stdin, visited, add); err != nil {
				return nil, err
			}
			continue
		}
		fi, err := os.Stat(in)
		switch {
		case err == nil && fi.IsDir():
			walk(filepath.Clean(in), filepath.Clean(in), "", visited, found)
		case err == nil && isListFile(in):
			f, err := os.Open(in)
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", in, err)
			}
			err = expandList(in, f, visited, add)
			f.Close()
			if err != nil {
				return nil, err
			}
		case err == nil:
			p := filepath.Clean(in)
			add(entry{path: p, id: filepath.Base(p), kind: kindOf(p)})
		case os.IsNotExist(err) && hasMeta(in):
			matches, gerr := filepath.Glob(in)
			if gerr != nil {
				return nil, fmt.Errorf("glob %q: %w", in, gerr)
			}
			if len(matches) == 0 {
				return nil, fmt.Errorf("glob %q matches nothing", in)
			}
			root := globRoot(in)
			for _, m := range matches {
				fi, err := os.Stat(m)
				if err != nil {
					slog.Warn("skipping glob match", "path", m, "err", err)
					continue
				}
				rel, _ := filepath.Rel(root, m)
				if fi.IsDir() {
					walk(m, root, "", visited, found)
				} else if fi.Mode().IsRegular() {
					found(entry{path: m, id: filepath.ToSlash(rel), kind: kindOf(m)})
				}
			}
		default:
			return nil, fmt.Errorf("input %s: %w", in, err)
		}
	}
	// Lexicographic order of paths; the first occurrence of a path wins.
	sort.SliceStable(out, func(i, j int) bool { return out[i].path < out[j].path })
	dedup := out[:0]
	byID := map[string]string{}
	for i, e := range out {
		if i > 0 && e.path == out[i-1].path {
			continue
		}
		if other, ok := byID[e.id]; ok {
			return nil, fmt.Errorf("inputs %s and %s have the same id %q: pass their common parent directory instead", other, e.path, e.id)
		}
		byID[e.id] = e.path
		dedup = append(dedup, e)
	}
	return dedup, nil
}

// expandList reads one path per line (blank lines and #comments skipped).
// Listed files keep the listed path as id; listed directories are walked
// with ids under the listed path.
func expandList(name string, r io.Reader, visited map[string]bool, add func(entry)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := filepath.Clean(line)
		fi, err := os.Stat(p)
		if err == nil && fi.IsDir() {
			walk(p, p, filepath.ToSlash(p), visited, add)
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

// walk lists regular files under dir recursively, following symlinks but
// never entering a directory twice (which also breaks symlink loops).
func walk(dir, root, idPrefix string, visited map[string]bool, add func(entry)) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		slog.Warn("skipping directory", "path", dir, "err", err)
		return
	}
	if abs, err := filepath.Abs(real); err == nil {
		real = abs
	}
	if visited[real] {
		slog.Warn("skipping directory already listed (symlink loop or duplicate)", "path", dir, "target", real)
		return
	}
	visited[real] = true
	ents, err := os.ReadDir(dir)
	if err != nil {
		slog.Warn("skipping unreadable directory", "path", dir, "err", err)
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		mode := e.Type()
		if mode&os.ModeSymlink != 0 {
			fi, err := os.Stat(p)
			if err != nil {
				slog.Warn("skipping broken symlink", "path", p, "err", err)
				continue
			}
			mode = fi.Mode().Type()
		}
		switch {
		case mode.IsDir():
			walk(p, root, idPrefix, visited, add)
		case mode.IsRegular():
			rel, _ := filepath.Rel(root, p)
			id := filepath.ToSlash(rel)
			if idPrefix != "" {
				id = idPrefix + "/" + id
			}
			add(entry{path: p, id: id, kind: kindOf(p)})
		}
	}
}
