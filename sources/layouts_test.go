package sources

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// A dataset folder as image downloaders write it: only the images are
// inputs; captions, metadata JSON, the stats file and the metadata Parquet
// (no image column) are left out, counted, and are not errors.
func TestDatasetFolderSidecars(t *testing.T) {
	img := func(n string) string {
		b, err := os.ReadFile("testdata/img2dataset-files/00000/" + n)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	r, err := Open([]string{"testdata/img2dataset-files"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, exact := r.Total(); n != 3 || !exact {
		t.Errorf("Total() = %d %v, want 3 (the metadata Parquet has no images)", n, exact)
	}
	got := readAll(t, r)
	var want []string
	for _, n := range []string{"000000000.jpg", "000000001.jpg", "000000002.jpg"} {
		want = append(want, "00000/"+n+"="+img(n))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %.60q\nwant %.60q", got, want)
	}
	if st := r.Stats(); st.Ignored != 8 || st.Failed != 0 {
		t.Fatalf("stats %+v, want 8 ignored (3 .txt, 3 .json, stats .json, metadata .parquet)", st)
	}

	// A glob takes the extension it names; --extensions changes the list;
	// a file named directly is read whatever it is.
	for _, tc := range []struct {
		inputs []string
		exts   []string
		want   []string
	}{
		{[]string{"testdata/img2dataset-files/00000/*.txt"}, nil, []string{"000000000.txt", "000000001.txt", "000000002.txt"}},
		{[]string{"testdata/img2dataset-files/00000/*"}, nil, []string{"000000000.jpg", "000000001.jpg", "000000002.jpg"}},
		{[]string{"testdata/img2dataset-files/00000"}, []string{"json"}, []string{"000000000.json", "000000001.json", "000000002.json"}},
		{[]string{"testdata/img2dataset-files/00000_stats.json"}, nil, []string{"00000_stats.json"}},
	} {
		r, err := Open(tc.inputs, Options{Extensions: tc.exts, NoData: true})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range readAll(t, r) {
			ids = append(ids, strings.TrimSuffix(s, "="))
		}
		if !reflect.DeepEqual(ids, tc.want) {
			t.Errorf("%v %v: %q, want %q", tc.inputs, tc.exts, ids, tc.want)
		}
	}

	// The metadata Parquet named directly is opened: it has no images, and
	// the error says which columns it has and which flag to set.
	r, err = Open([]string{"testdata/img2dataset-files/00000.parquet"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got = readAll(t, r)
	if len(got) != 1 || !strings.Contains(got[0], "key, caption, url, status") || !strings.Contains(got[0], "--image-column") {
		t.Fatalf("named metadata Parquet: %q", got)
	}
}

// An image-downloader Parquet shard keeps the image in "jpg" and the id in
// "key": both are found without options; options can name others.
func TestParquetColumnNames(t *testing.T) {
	const shard = "testdata/img2dataset-parquet/00000.parquet"
	files, err := filepath.Glob("testdata/img2dataset-files/00000/*.jpg")
	if err != nil || len(files) != 3 {
		t.Fatal(files, err)
	}
	var want, wantRows []string
	for i, f := range files {
		b, err := os.ReadFile(f) // the same images
		if err != nil {
			t.Fatal(err)
		}
		key := strings.TrimSuffix(filepath.Base(f), ".jpg")
		want = append(want, key+"="+string(b))
		wantRows = append(wantRows, "00000.parquet/"+string(rune('0'+i))+"="+string(b))
	}
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"found", Options{}, want},
		{"named", Options{ImageColumn: "jpg", IDColumn: "key"}, want},
		{"no id column", Options{IDColumn: "-"}, wantRows},
	} {
		r, err := Open([]string{shard}, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %.50q\nwant %.50q", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{ImageColumn: "caption"}, `image column "caption" is utf8, which cannot hold the image`},
		{Options{IDColumn: "ident"}, `no column "ident" (columns: key, caption, jpg, status; set --id-column)`},
	} {
		r, err := Open([]string{shard}, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r); len(got) != 1 || !strings.Contains(got[0], tc.want) {
			t.Errorf("%+v: %q, want %q", tc.opts, got, tc.want)
		}
	}
}

// An image struct whose bytes are null names a file by path. The Parquet
// file may come from anyone: the path must stay inside the dataset's
// directory (or Options.ImageRoot) and name a regular file within the size
// limit. Everything else is that row's error, and reading goes on.
func TestParquetImagePathsStayInside(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "ds")
	write(t, filepath.Join(dir, "side.jpg"), "SIDE")
	write(t, filepath.Join(dir, "big.jpg"), "TOO BIG FOR THE LIMIT")
	write(t, filepath.Join(base, "other", "x.jpg"), "OTHER")
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "escape.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("side.jpg", filepath.Join(dir, "inside.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := mkfifo(filepath.Join(dir, "fifo.jpg")); err != nil {
		t.Fatal(err)
	}
	paths := []string{"/etc/shadow", "../../etc/passwd", "/proc/self/environ", "/dev/zero", "side.jpg",
		filepath.Join(dir, "side.jpg"), "escape.jpg", "fifo.jpg", ".", "big.jpg", "inside.jpg", "../other/x.jpg"}
	var rows []struct {
		bytes []byte
		path  string
		null  bool
	}
	for _, p := range paths {
		rows = append(rows, struct {
			bytes []byte
			path  string
			null  bool
		}{path: p})
	}
	pq := filepath.Join(dir, "data.parquet")
	writeHFParquet(t, pq, rows)
	defer func(n int) { maxMemberBytes = n }(maxMemberBytes)
	maxMemberBytes = 10

	outside := "outside the dataset directory"
	want := []string{outside, outside, outside, outside, "=SIDE", "=SIDE", "symlink escape.jpg -> /etc/passwd points " + outside, "not a regular file but a named pipe (FIFO)",
		"not a regular file but a directory", "21 B, over the 10 B limit on one image", "=SIDE", outside}
	check := func(opts Options, want []string) {
		t.Helper()
		r, err := Open([]string{pq}, opts)
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, r)
		if len(got) != len(want) {
			t.Fatalf("%d items: %q", len(got), got)
		}
		for i, g := range got {
			if !strings.Contains(g, want[i]) || strings.HasPrefix(want[i], "=") != strings.Contains(g, "=") {
				t.Errorf("path %q: %q, want %q", paths[i], g, want[i])
			}
		}
	}
	check(Options{}, want)
	// A wider root lets ../other in, and nothing else that was refused;
	// the refusals name that root as the flag's, not as the file's folder.
	want[len(want)-1] = "=OTHER"
	for i, w := range want {
		if w == outside {
			want[i] = "outside the image root " + base + " (--image-root)"
		}
	}
	want[6] = "symlink ds/escape.jpg -> /etc/passwd points outside the image root " + base + " (--image-root)"
	check(Options{ImageRoot: base}, want)
}

// An --image-root that is missing or not a directory is refused when the
// inputs are opened, naming the flag, rather than failing every path row
// with "outside the image root" (which blames the rows' paths).
func TestImageRootMustBeADirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "side.jpg"), "SIDE")
	pq := filepath.Join(dir, "data.parquet")
	writeHFParquet(t, pq, []struct {
		bytes []byte
		path  string
		null  bool
	}{{path: "side.jpg"}})
	for root, want := range map[string]string{
		filepath.Join(dir, "missing"):  "--image-root: stat " + filepath.Join(dir, "missing") + ": no such file or directory",
		filepath.Join(dir, "side.jpg"): "--image-root " + filepath.Join(dir, "side.jpg") + ": not a directory",
	} {
		if _, err := Open([]string{pq}, Options{ImageRoot: root}); err == nil || err.Error() != want {
			t.Errorf("--image-root %s: %v, want %q", root, err, want)
		}
	}
	r, err := Open([]string{pq}, Options{ImageRoot: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 1 || !strings.Contains(got[0], "=SIDE") {
		t.Errorf("--image-root %s: %q", dir, got)
	}
}

// Files of the kernel's pseudo file systems are not images, even named.
func TestKernelFilesAreRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	inputs := []string{"/proc/self/environ"}
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err == nil {
		inputs = append(inputs, "/sys/kernel/mm/transparent_hugepage/enabled")
	}
	r, err := Open(inputs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range readAll(t, r) {
		if !strings.Contains(got, "a kernel file (/proc, /sys), not an image") {
			t.Errorf("%q", got)
		}
	}
}

// A symlink with an absolute target is followed when the target stays
// inside the directory image paths may use (the Parquet file's, or
// Options.ImageRoot), as a relative one is: datasets made with `ln -s
// "$PWD/…"` have them. One whose target leaves it, absolute or relative,
// directly or through another link, is refused naming the link.
func TestParquetImagePathAbsoluteSymlinks(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "ds")
	write(t, filepath.Join(dir, "imgs", "real.png"), "REAL")
	write(t, filepath.Join(dir, "sub", "deep.png"), "DEEP")
	write(t, filepath.Join(base, "other", "x.png"), "OTHER")
	links := [][2]string{
		{"imgs/abs_in.png", filepath.Join(dir, "imgs", "real.png")},
		{"imgs/rel_in.png", "real.png"},
		{"imgs/abs_dir", filepath.Join(dir, "sub")},                      // a directory, absolute
		{"imgs/abs_chain.png", filepath.Join(dir, "imgs", "rel_in.png")}, // absolute, then relative
		{"imgs/abs_dotdot.png", dir + "/sub/../imgs/real.png"},
		{"imgs/abs_out.png", filepath.Join(base, "other", "x.png")},
		{"imgs/rel_out.png", "../../other/x.png"},
		{"imgs/abs_to_out.png", filepath.Join(dir, "imgs", "rel_out.png")}, // inside, then out
		{"imgs/loop.png", filepath.Join(dir, "imgs", "loop.png")},
		{"imgs/top.png", dir}, // the directory itself
		// Through top.png, then up from the directory: the kernel would
		// pass through its parent, which is outside unless the root is.
		{"imgs/via_top.png", "top.png/../ds/imgs/real.png"},
	}
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(dir, filepath.FromSlash(l[0]))); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{"imgs/abs_in.png", "imgs/rel_in.png", "imgs/abs_dir/deep.png", "imgs/abs_chain.png",
		"imgs/abs_dotdot.png", "imgs/abs_out.png", "imgs/rel_out.png", "imgs/abs_to_out.png", "imgs/loop.png",
		filepath.Join(dir, "imgs", "abs_in.png"), "imgs/top.png", "imgs/via_top.png"}
	var rows []struct {
		bytes []byte
		path  string
		null  bool
	}
	for _, p := range paths {
		rows = append(rows, struct {
			bytes []byte
			path  string
			null  bool
		}{path: p})
	}
	in := filepath.Join(dir, "data.parquet")
	writeHFParquet(t, in, rows)
	out := func(link, target, where string) string {
		return fmt.Sprintf("symlink %s -> %s points outside %s", link, target, where)
	}
	check := func(opts Options, want []string) {
		t.Helper()
		r, err := Open([]string{in}, opts)
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, r)
		if len(got) != len(want) {
			t.Fatalf("%d items: %q", len(got), got)
		}
		for i, g := range got {
			if !strings.Contains(g, want[i]) || strings.HasPrefix(want[i], "=") != strings.Contains(g, "=") {
				t.Errorf("path %q: %q, want %q", paths[i], g, want[i])
			}
		}
	}
	ds := "the dataset directory " + dir
	check(Options{}, []string{"=REAL", "=REAL", "=DEEP", "=REAL", "=REAL",
		out("imgs/abs_out.png", filepath.Join(base, "other", "x.png"), ds),
		out("imgs/rel_out.png", "../../other/x.png", ds),
		out("imgs/rel_out.png", "../../other/x.png", ds),
		"too many levels of symbolic links", "=REAL", "not a regular file but a directory",
		out("imgs/top.png", dir, ds)})
	// A wider root takes in what pointed out of the file's directory.
	check(Options{ImageRoot: base}, []string{"=REAL", "=REAL", "=DEEP", "=REAL", "=REAL",
		"=OTHER", "=OTHER", "=OTHER", "too many levels of symbolic links", "=REAL", "not a regular file but a directory", "=REAL"})
	// A narrower one refuses the absolute link that leaves it as it
	// refuses a relative one, and one whose ".." comes back into it
	// through a directory outside (which may be a symlink itself).
	imgs := filepath.Join(dir, "imgs")
	check(Options{ImageRoot: imgs}, []string{"=REAL", "=REAL",
		out("abs_dir", filepath.Join(dir, "sub"), "the image root "+imgs),
		"=REAL",
		out("abs_dotdot.png", dir+"/sub/../imgs/real.png", "the image root "+imgs),
		out("abs_out.png", filepath.Join(base, "other", "x.png"), "the image root "+imgs),
		out("rel_out.png", "../../other/x.png", "the image root "+imgs),
		out("rel_out.png", "../../other/x.png", "the image root "+imgs),
		"too many levels of symbolic links", "=REAL", out("top.png", dir, "the image root "+imgs),
		out("top.png", dir, "the image root "+imgs)})
	// The dataset read through a symlink to its directory: the links'
	// targets, and the last row's path, name the real one, which is as
	// much inside.
	alias := filepath.Join(base, "alias")
	if err := os.Symlink(dir, alias); err != nil {
		t.Fatal(err)
	}
	in = filepath.Join(alias, "data.parquet")
	check(Options{}, []string{"=REAL", "=REAL", "=DEEP", "=REAL", "=REAL",
		out("imgs/abs_out.png", filepath.Join(base, "other", "x.png"), "the dataset directory "+alias),
		out("imgs/rel_out.png", "../../other/x.png", "the dataset directory "+alias),
		out("imgs/rel_out.png", "../../other/x.png", "the dataset directory "+alias),
		"too many levels of symbolic links", "=REAL", "not a regular file but a directory",
		out("imgs/top.png", dir, "the dataset directory "+alias)})
}
