package sources

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"

	"github.com/maeembed/maeembed/config"
)

func write(t testing.TB, path string, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readAll drains r and returns "id=data" strings (or "id!err").
func readAll(t *testing.T, r *Reader) []string {
	t.Helper()
	var out []string
	for {
		it, err := r.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if it.Err != nil {
			out = append(out, it.ID+"!"+it.Err.Error())
		} else {
			out = append(out, it.ID+"="+string(it.Data))
		}
		it.Ack(nil)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func chdir(t *testing.T, dir string) {
	t.Helper()
	old, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(old) })
}

// tree builds:
//
//	root/b.jpg root/a/2.png root/a/10.png root/a/sub/x.jpg
//	root/loop -> root (symlink loop)   root/a/sub/up -> .. (loop)
//	root/link.jpg -> b.jpg (file symlink)   root/broken -> nowhere
func tree(t *testing.T) string {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	write(t, filepath.Join(root, "b.jpg"), "B")
	write(t, filepath.Join(root, "a", "2.png"), "A2")
	write(t, filepath.Join(root, "a", "10.png"), "A10")
	write(t, filepath.Join(root, "a", "sub", "x.jpg"), "X")
	for _, l := range [][2]string{{root, filepath.Join(root, "loop")}, {"..", filepath.Join(root, "a", "sub", "up")},
		{"b.jpg", filepath.Join(root, "link.jpg")}, {"nowhere", filepath.Join(root, "broken")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFilesDirectoryOrderAndSymlinks(t *testing.T) {
	dir := tree(t)
	r, err := Open([]string{filepath.Join(dir, "root")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	// Lexicographic by path: "a/10.png" < "a/2.png"; loops are entered once.
	want := []string{"a/10.png=A10", "a/2.png=A2", "a/sub/x.jpg=X", "b.jpg=B", "link.jpg=B"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if n, exact := r.Files(); n != 5 || !exact {
		t.Fatalf("Files() = %d %v", n, exact)
	}
	r, err = Open([]string{filepath.Join(dir, "root"), filepath.Join(dir, "root", "a", "2.png")}, Options{Extensions: []string{"JPG", ".jpeg"}})
	if err != nil {
		t.Fatal(err)
	}
	// 2.png is named directly, so kept (in path order), with the id it has
	// in the directory that holds it, though that directory's walk takes
	// only .jpg.
	if got, want := readAll(t, r), []string{"a/2.png=A2", "a/sub/x.jpg=X", "b.jpg=B", "link.jpg=B"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Extensions: got %q, want %q", got, want)
	}
}

func TestFilesSingleFileGlobListStdin(t *testing.T) {
	dir := tree(t)
	chdir(t, dir)
	tests := []struct {
		name   string
		inputs []string
		stdin  string
		want   []string
	}{
		{"single file id is base name", []string{"root/a/sub/x.jpg"}, "", []string{"x.jpg=X"}},
		{"glob ids relative to glob root", []string{"root/a/*.png"}, "", []string{"10.png=A10", "2.png=A2"}},
		// sub/up -> .. reaches root/a, not yet listed: walked once, then the loop stops.
		{"glob matching a directory walks it", []string{"root/a/s*"}, "", []string{"sub/up/10.png=A10", "sub/up/2.png=A2", "sub/x.jpg=X"}},
		{"stdin list keeps listed paths", []string{"-"}, "root/b.jpg\n\n# comment\nroot/a/2.png\n", []string{"root/a/2.png=A2", "root/b.jpg=B"}},
		// A list saved by an editor that writes a UTF-8 byte-order mark:
		// the mark is no part of the first path.
		{"stdin list with a BOM", []string{"-"}, "\ufeffroot/b.jpg\r\nroot/a/2.png\r\n", []string{"root/a/2.png=A2", "root/b.jpg=B"}},
		{"stdin list with a BOM before a comment", []string{"-"}, "\ufeff# paths\nroot/b.jpg\n", []string{"root/b.jpg=B"}},
		{"duplicates collapse", []string{"root/b.jpg", "root/./b.jpg"}, "", []string{"b.jpg=B"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := OpenWith(tc.inputs, strings.NewReader(tc.stdin), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, r); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	write(t, "list.txt", "\ufeffroot/a/sub/x.jpg\nroot/missing.jpg\nroot/a\n")
	r, err := Open([]string{"list.txt"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	want := []string{"root/a/10.png=A10", "root/a/2.png=A2", "root/a/sub/x.jpg=X", "root/missing.jpg!read root/missing.jpg: no such file or directory"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("list file: got %q\nwant %q", got, want)
	}
}

func TestFilesErrors(t *testing.T) {
	dir := tree(t)
	chdir(t, dir)
	write(t, "other/b.jpg", "B2")
	write(t, "shards/s.tar.xz", "\xfd7zXZ\x00")
	write(t, "shards/s.TBZ2", "BZh9")
	for _, tc := range []struct {
		inputs []string
		want   string
	}{
		{[]string{"nothing-here"}, "no such file"},
		{[]string{"root/*.gif"}, "matches nothing"},
		// '**' would match root/a/10.png only, not root/b.jpg nor
		// root/a/sub/x.jpg: refused rather than read in part.
		{[]string{"root/**/*.jpg"}, "'**' is not recursive"},
		{[]string{"root/**"}, "'**' is not recursive"},
		// The hint names what to pass instead.
		{[]string{"root/**/*.jpg"}, "pass root, which is walked recursively, with --extensions jpg"},
		{[]string{"**/*.png"}, "pass ., which is walked recursively, with --extensions png"},
		{[]string{"root/a/**"}, "pass root/a, which is walked recursively (--extensions"},
		{[]string{"root/b.jpg", "other/b.jpg"}, `same id "b.jpg"`},
		// Not an image of an unknown format: a tar it cannot read.
		{[]string{"shards/s.tar.xz"}, "input shards/s.tar.xz: a tar compressed with xz, which maeembed does not read"},
		{[]string{"root", "shards/s.TBZ2"}, "a tar compressed with bzip2"},
	} {
		// Each is a mistake in the command line: a usage error (exit 2).
		if _, err := Open(tc.inputs, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, config.ErrUsage) {
			t.Errorf("%v: err = %v, want %q, a usage error", tc.inputs, err, tc.want)
		}
	}
	if _, err := ParseShard("2/2"); err == nil {
		t.Error("ParseShard(2/2) accepted")
	}
	if s, err := ParseShard("1/3"); err != nil || s != (Shard{1, 3}) {
		t.Errorf("ParseShard(1/3) = %v, %v", s, err)
	}
}

// TestShardsPartitionAndResume: shards are disjoint, cover everything, keep
// the global order, and are unchanged by skipping done ids.
func TestShardsPartitionAndResume(t *testing.T) {
	dir := t.TempDir()
	var all []string
	for i := 0; i < 23; i++ {
		name := filepath.Join(dir, string(rune('a'+i))+".jpg")
		write(t, name, "x")
		all = append(all, filepath.Base(name))
	}
	seen := map[string]int{}
	for i := 0; i < 3; i++ {
		r, err := Open([]string{dir}, Options{Shard: Shard{i, 3}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range readAll(t, r) {
			id := strings.TrimSuffix(s, "=x")
			ids = append(ids, id)
			seen[id]++
		}
		for k, id := range ids {
			if id != all[i+3*k] {
				t.Fatalf("shard %d item %d = %s, want %s", i, k, id, all[i+3*k])
			}
		}
	}
	if n, exact := mustOpen(t, dir, Shard{1, 3}).Total(); n != 8 || !exact {
		t.Fatalf("Total() of shard 1/3 = %d %v, want 8", n, exact)
	}
	if len(seen) != 23 {
		t.Fatalf("shards cover %d of 23", len(seen))
	}
	done := map[string]bool{all[1]: true, all[4]: true, all[5]: true}
	var acked atomic.Int64
	r, err := Open([]string{dir}, Options{Shard: Shard{1, 3}, Done: func(id string) bool { return done[id] },
		OnAck: func(it Item, err error) { acked.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	// Shard 1/3 holds indices 1,4,7,…,22 (8 items); 1 and 4 are done, 5 is not ours.
	if len(got) != 6 || !strings.HasPrefix(got[0], all[7]) {
		t.Fatalf("resumed shard 1/3 = %q", got)
	}
	st := r.Stats()
	if st.Skipped != 2 || st.Emitted != 6 || st.Acked != 6 || acked.Load() != 6 || st.Seen != 23 {
		t.Fatalf("stats %+v, OnAck %d", st, acked.Load())
	}
}

func TestAckOnce(t *testing.T) {
	dir := tree(t)
	var calls atomic.Int64
	r, err := Open([]string{filepath.Join(dir, "root", "b.jpg")}, Options{OnAck: func(it Item, err error) {
		calls.Add(1)
		if it.ID != "b.jpg" || it.Data != nil || err == nil {
			t.Errorf("OnAck(%+v, %v)", it, err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	it, err := r.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	it.Ack(errors.New("sink failed"))
	it.Ack(nil)
	if calls.Load() != 1 || r.Stats().Failed != 1 {
		t.Fatalf("ack calls %d, stats %+v", calls.Load(), r.Stats())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on cancelled ctx: %v", err)
	}
}

func writeTar(t *testing.T, path string, gz bool, members [][2]string) {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m[0], Mode: 0o644, Size: int64(len(m[1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(m[1]))
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	write(t, path, buf.String())
}

func TestTarWebDataset(t *testing.T) {
	dir := t.TempDir()
	// WebDataset: samples grouped by key, images among metadata members.
	writeTar(t, filepath.Join(dir, "shard-000.tar"), false, [][2]string{
		{"000001.jpg", "J1"}, {"000001.json", "{}"}, {"000001.txt", "cap"},
		{"./000002.PNG", "P2"}, {"000002.cls", "3"}, {"sub/000003.webp", "W3"},
	})
	writeTar(t, filepath.Join(dir, "shard-001.tar.gz"), true, [][2]string{{"000004.jpg", "J4"}})
	write(t, filepath.Join(dir, "shard-002.tar"), "this is not a tar archive, not at all, no header here......"+strings.Repeat("x", 600))
	r, err := Open([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	want := []string{"shard-000.tar/000001.jpg=J1", "shard-000.tar/000002.PNG=P2", "shard-000.tar/sub/000003.webp=W3",
		"shard-001.tar.gz/000004.jpg=J4"}
	if len(got) != 5 || !reflect.DeepEqual(got[:4], want) || !strings.HasPrefix(got[4], "shard-002.tar!read") {
		t.Fatalf("got %q\nwant %q + shard-002.tar error", got, want)
	}
	if n, exact := mustOpen(t, dir, Shard{}).Total(); n != 3 || exact {
		t.Fatalf("Total() = %d %v, want 3 inexact (gz and corrupt tars uncounted)", n, exact)
	}
	// Sharding counts members across archives.
	r, _ = Open([]string{dir}, Options{Shard: Shard{1, 2}})
	if got := readAll(t, r); !reflect.DeepEqual(got, []string{"shard-000.tar/000002.PNG=P2", "shard-001.tar.gz/000004.jpg=J4"}) {
		t.Fatalf("shard 1/2: %q", got)
	}
	// Dry-run listing reads no bytes but yields the same ids.
	r, _ = Open([]string{filepath.Join(dir, "shard-000.tar")}, Options{NoData: true})
	if got := readAll(t, r); !reflect.DeepEqual(got, []string{"shard-000.tar/000001.jpg=", "shard-000.tar/000002.PNG=", "shard-000.tar/sub/000003.webp="}) {
		t.Fatalf("NoData: %q", got)
	}
}

// writeHFParquet writes the Hugging Face `datasets` Image layout:
// image: struct<bytes: binary, path: string>, plus a label column.
func writeHFParquet(t testing.TB, path string, rows []struct {
	bytes []byte
	path  string
	null  bool
}) {
	t.Helper()
	imgType := arrow.StructOf(arrow.Field{Name: "bytes", Type: arrow.BinaryTypes.Binary, Nullable: true},
		arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true})
	schema := arrow.NewSchema([]arrow.Field{{Name: "image", Type: imgType, Nullable: true},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	sb := b.Field(0).(*array.StructBuilder)
	for i, r := range rows {
		if r.null {
			sb.AppendNull()
		} else {
			sb.Append(true)
			if r.bytes == nil {
				sb.FieldBuilder(0).AppendNull()
			} else {
				sb.FieldBuilder(0).(*array.BinaryBuilder).Append(r.bytes)
			}
			sb.FieldBuilder(1).(*array.StringBuilder).Append(r.path)
		}
		b.Field(1).(*array.Int64Builder).Append(int64(i))
	}
	rec := b.NewRecord()
	defer rec.Release()
	// Small row groups so reading crosses row-group and batch boundaries.
	write(t, path, string(parquetBytes(t, rec, parquet.WithMaxRowGroupLength(3))))
}

func TestParquetHuggingFaceLayout(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "side.jpg"), "SIDE")
	type row = struct {
		bytes []byte
		path  string
		null  bool
	}
	rows := []row{{bytes: []byte("R0"), path: "a.jpg"}, {bytes: []byte("R1"), path: "b.jpg"}, {null: true},
		{bytes: nil, path: "side.jpg"}, {bytes: []byte("R4")}, {bytes: []byte("R5")}, {bytes: []byte("R6")}}
	writeHFParquet(t, filepath.Join(dir, "train-00000-of-00001.parquet"), rows)
	r, err := Open([]string{dir}, Options{ParquetBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	p := "train-00000-of-00001.parquet/"
	want := []string{"side.jpg=SIDE", p + "0=R0", p + "1=R1", p + "2!read " + filepath.Join(dir, "train-00000-of-00001.parquet") + "#2: row 2: image is null",
		p + "3=SIDE", p + "4=R4", p + "5=R5", p + "6=R6"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	r, _ = Open([]string{dir}, Options{Shard: Shard{0, 3}, ImageColumn: "image"})
	// Global indices: side.jpg 0, rows 0..6 → 1..7; shard 0/3 takes 0, 3, 6.
	if got := readAll(t, r); !reflect.DeepEqual(got, []string{"side.jpg=SIDE", p + "2!read " + filepath.Join(dir, p[:len(p)-1]) + "#2: row 2: image is null", p + "5=R5"}) {
		t.Fatalf("shard 0/3: %q", got)
	}
	r, _ = Open([]string{dir}, Options{ImageColumn: "pixels"})
	if got := readAll(t, r); len(got) != 2 || !strings.Contains(got[1], `no column "pixels"`) {
		t.Fatalf("missing column: %q", got)
	}
}

func mustOpen(t *testing.T, dir string, s Shard) *Reader {
	t.Helper()
	r, err := Open([]string{dir}, Options{Shard: s})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A member or row over the size limit is one error item that says so; the
// items after it are still read.
func TestOversizedMembers(t *testing.T) {
	defer func(n int) { maxMemberBytes = n }(maxMemberBytes)
	maxMemberBytes = 2
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "a.tar"), false, [][2]string{{"1.jpg", "OK"}, {"2.jpg", "BIG"}, {"3.jpg", "OK"}})
	writeHFParquet(t, filepath.Join(dir, "b.parquet"), []struct {
		bytes []byte
		path  string
		null  bool
	}{{bytes: []byte("OK")}, {bytes: []byte("BIG")}, {bytes: []byte("OK")}})
	r, err := Open([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	pq := filepath.Join(dir, "b.parquet")
	want := []string{"a.tar/1.jpg=OK", "a.tar/2.jpg!read " + filepath.Join(dir, "a.tar") + ":2.jpg: member is 3 B, over the 2 B limit on one image (a fixed limit, not an option)", "a.tar/3.jpg=OK",
		"b.parquet/0=OK", "b.parquet/1!read " + pq + "#1: row 1: image is 3 B, over the 2 B limit on one image (a fixed limit, not an option)", "b.parquet/2=OK"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// A tar or Parquet file named as an input that holds no image (an empty
// file, a tar of captions only, a Parquet with no rows) is one error item
// under its own id; found by a directory walk it adds nothing.
func TestNamedContainerWithoutImages(t *testing.T) {
	dir := t.TempDir()
	chdir(t, dir)
	write(t, "empty.tar", "")
	writeTar(t, "captions.tar", false, [][2]string{{"a.txt", "a caption"}})
	writeTar(t, "empty.tar.gz", true, nil)
	writeHFParquet(t, "norows.parquet", nil)
	writeTar(t, "ok.tar", false, [][2]string{{"x.jpg", "X"}, {"x.txt", "cap"}})
	named := []string{"captions.tar", "empty.tar", "empty.tar.gz", "norows.parquet", "ok.tar"}
	r, err := Open(named, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, exact := r.Total(); n != 4 || exact {
		t.Errorf("Total() = %d %v, want 4 false (one item for each named container without images; the .gz is not counted)", n, exact)
	}
	got := readAll(t, r)
	if len(got) != 5 || got[4] != "ok.tar/x.jpg=X" {
		t.Fatalf("items %q", got)
	}
	for i, id := range named[:4] {
		if !strings.HasPrefix(got[i], id+"!") || !strings.Contains(got[i], "no images") {
			t.Errorf("item %d = %q, want an error item %q saying it has no images", i, got[i], id)
		}
	}

	// The same files found in a directory are not errors.
	os.Mkdir("d", 0o755)
	for _, f := range named {
		if err := os.Rename(f, filepath.Join("d", f)); err != nil {
			t.Fatal(err)
		}
	}
	r, err = Open([]string{"d"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !reflect.DeepEqual(got, []string{"ok.tar/x.jpg=X"}) {
		t.Errorf("walked: %q", got)
	}
}

// A path given twice (a repeated list line, a file beside its directory)
// is read once, and the repeat is counted as ignored, not dropped
// silently.
func TestRepeatedPathCountedIgnored(t *testing.T) {
	dir := tree(t)
	chdir(t, dir)
	write(t, "twice.txt", "root/b.jpg\nroot/a/2.png\nroot/b.jpg\n")
	r, err := Open([]string{"twice.txt"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readAll(t, r), []string{"root/a/2.png=A2", "root/b.jpg=B"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if st := r.Stats(); st.Ignored != 1 {
		t.Errorf("a repeated list line: %d ignored, want 1", st.Ignored)
	}
	if st := r.Stats(); st.Repeated != 1 {
		t.Errorf("a repeated list line: %d repeated, want 1", st.Repeated)
	}

	// A directory given twice (also spelled otherwise) is walked once,
	// and the repeat counts as one ignored input.
	once, err := Open([]string{"root"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, once)
	r, err = Open([]string{"root", "./root/"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !reflect.DeepEqual(got, want) {
		t.Fatalf("a directory given twice: got %q, want %q", got, want)
	}
	if st, st1 := r.Stats(), once.Stats(); st.Ignored != st1.Ignored+1 || st.Repeated != 1 {
		t.Errorf("a directory given twice: %d ignored, %d repeated; want %d and 1", st.Ignored, st.Repeated, st1.Ignored+1)
	}
}

// A directory a glob matches that another input walks is a path given
// again, as one named on the command line is: counted as repeated, in
// either order of the inputs.
func TestGlobbedDirectoryRepeated(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "d", "a", "x.png"), "x")
	write(t, filepath.Join(dir, "d", "y.png"), "y")
	d, glob := filepath.Join(dir, "d"), filepath.Join(dir, "d", "*")
	for _, inputs := range [][]string{{d, glob}, {glob, d}, {d, filepath.Join(dir, "d", "a"), filepath.Join(dir, "d", "y.png")}} {
		entries, _, repeated, _, err := expand(inputs, nil, nil, nil, walkHooks{})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 || repeated != 2 {
			t.Errorf("inputs %q: %d entries, %d repeated; want 2 and 2 (d/a and d/y.png given again)", inputs, len(entries), repeated)
		}
	}
}

// A file over the per-image limit is one error naming its path once, with
// both sizes readable: "read huge/sparse.jpg: 600 MiB, over the 512 MiB
// limit on one image (...)", not the path twice and raw byte counts.
func TestOverLimitErrorIsReadable(t *testing.T) {
	dir := t.TempDir()
	chdir(t, dir)
	if err := os.Mkdir("huge", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join("huge", "sparse.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 600 MiB long, no blocks written.
	if err := f.Truncate(600 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := Open([]string{"huge/sparse.jpg"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	want := []string{"sparse.jpg!read huge/sparse.jpg: 600 MiB, over the 512 MiB limit on one image (a fixed limit, not an option)"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if err := overLimit(512<<20 + 1); !strings.Contains(err.Error(), "512.0 MiB (536870913 bytes), over the 512 MiB limit") {
		t.Errorf("one byte over: %v", err)
	}
}

// The members of a WebDataset tar that are not images (its .json, .cls)
// are counted as ignored, as the same files in a directory are; the
// tar's directory entry is structure, as a subdirectory is in a walk.
func TestTarNonImageMembersIgnoredAsDirectoryFiles(t *testing.T) {
	dir := t.TempDir()
	tr, err := os.Open("testdata/wds-gnutar.tar") // ./, 3 images, 2 .json
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	rd := tar.NewReader(tr)
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(rd)
			write(t, filepath.Join(dir, "extracted", h.Name), string(b))
		}
	}
	wds, err := os.ReadFile("testdata/wds-gnutar.tar")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "shards", "wds.tar"), string(wds))
	writeTar(t, filepath.Join(dir, "shards", "cls.tar.gz"), true, [][2]string{{"a.jpg", "A"}, {"a.cls", "3"}, {"b.jpg", "B"}, {"b.cls", "7"}})
	for _, c := range []struct {
		input string
		items int
	}{{"extracted", 3}, {"testdata/wds-gnutar.tar", 3}, {filepath.Join(dir, "shards"), 5}} {
		in := c.input
		if in == "extracted" {
			in = filepath.Join(dir, in)
		}
		r, err := Open([]string{in}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r); len(got) != c.items {
			t.Errorf("%s: %d items %q, want %d", c.input, len(got), got, c.items)
		}
		want := int64(2) // the two .json (or .cls)
		if c.items == 5 {
			want = 4
		}
		if st := r.Stats(); st.Ignored != want || r.Ignored() != want {
			t.Errorf("%s: %d ignored, want %d (the members that are not images)", c.input, st.Ignored, want)
		}
	}
}
