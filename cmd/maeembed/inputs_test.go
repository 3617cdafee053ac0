package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Input cases from real datasets, end to end through embed with the tiny
// model; DuckDB reads the ids back.
var tinyModel = []string{"-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "center-crop"}

func embedIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for _, r := range duckQuery(t, "SELECT id FROM read_parquet("+sqlString(out+"/part-*.parquet")+") ORDER BY id") {
		ids = append(ids, jsonField[string](t, r, "id"))
	}
	return ids
}

// A folder as image downloaders write it: captions, metadata JSON, a stats
// file and a metadata Parquet beside the images. A healthy dataset passes
// --fail-on-error; what was left out is counted.
func TestEmbedDatasetFolderWithSidecars(t *testing.T) {
	out := t.TempDir()
	stderr := runCounted(t, summary{3, 0, 0}, append([]string{"embed", "--fail-on-error", "-o", out, "../../sources/testdata/img2dataset-files"}, tinyModel...)...)
	if !strings.Contains(stderr, "8 ignored") {
		t.Errorf("summary does not count the 8 ignored files:\n%s", stderr)
	}
	if got, want := embedIDs(t, out), []string{"00000/000000000.jpg", "00000/000000001.jpg", "00000/000000002.jpg"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
}

// An image-downloader Parquet shard (jpg, key) is read without options, and
// with the columns named by flags or by the YAML file.
func TestEmbedParquetColumns(t *testing.T) {
	shard := "../../sources/testdata/img2dataset-parquet/00000.parquet"
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("image_column: jpg\nid_column: key\nextensions: [jpg]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--image-column", "jpg", "--id-column", "key"}, {"--config-file", cfg}} {
		out := t.TempDir()
		args := append(append([]string{"embed", "--fail-on-error", "-o", out, shard}, extra...), tinyModel...)
		if code, _, stderr := maeembed(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", extra, code, stderr)
		}
		if got, want := embedIDs(t, out), []string{"000000000", "000000001", "000000002"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%v: ids %q, want %q", extra, got, want)
		}
	}
	out := t.TempDir()
	code, _, stderr := maeembed(t, append([]string{"embed", "-o", out, shard, "--image-column", "caption"}, tinyModel...)...)
	if code == 0 || !strings.Contains(stderr, `image column "caption" is utf8`) {
		t.Errorf("--image-column caption: exit %d\n%s", code, stderr)
	}
}

// Two images whose names differ only in a byte that is not UTF-8 are two
// rows with two ids; a resumed run after the first embeds the second.
func TestEmbedNonUTF8NamesAndResume(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	src, _ := filepath.Glob("../../sources/testdata/img2dataset-files/00000/*.jpg")
	sort.Strings(src)
	copyFile(t, src[0], filepath.Join(in, "caf\xe9.jpg"))
	mustRun(t, append([]string{"embed", "-o", out, in}, tinyModel...)...)
	copyFile(t, src[1], filepath.Join(in, "caf\xe8.jpg"))
	runCounted(t, summary{1, 0, 1}, append([]string{"embed", "-o", out, in}, tinyModel...)...) // resumed
	if got, want := embedIDs(t, out), []string{`caf\xE8.jpg`, `caf\xE9.jpg`}; !reflect.DeepEqual(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
}

// --extensions "jpg png" (two extensions in one value, which would take
// no file) is a usage error in every command that walks inputs, from the
// flag or the YAML file, naming the value and the comma form; nothing is
// created. The comma form, spaces after the commas included, runs.
func TestExtensionsRefuseWhatMatchesNothing(t *testing.T) {
	imgs := filepath.Join(fixtures, "tiny32", "images")
	out := filepath.Join(t.TempDir(), "out")
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("extensions: [jpg png]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"embed", "--extensions", "jpg png"},
		{"embed", "--dry-run", "--extensions", "jpg png"},
		{"embed", "--config-file", cfg},
		{"reconstruct", "--extensions", "jpg png"},
		{"pretrain", "--extensions", "jpg png"},
	} {
		model := filepath.Join(fixtures, "tiny32", "hf")
		if args[0] == "pretrain" {
			model = filepath.Join(model, "config.json") // an architecture
		}
		code, _, stderr := maeembed(t, append(args, "-m", model, "-o", out, imgs)...)
		if code != 2 || !strings.Contains(stderr, `--extensions "jpg png"`) || !strings.Contains(stderr, "--extensions jpg,png") {
			t.Errorf("%q: exit %d, want 2 naming the value and the comma form\n%s", args, code, stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused run created %s", out)
	}
	mustRun(t, append([]string{"embed", "--extensions", "jpg, png", "-o", t.TempDir(), imgs}, tinyModel...)...)
}

// A list on stdin of relative paths names files relative to the working
// directory: the output records that directory among its inputs, so the
// same list read from another directory (other files, same ids) is
// refused rather than skipped as done, while a rerun from the first
// directory resumes, and so does a list of absolute paths from anywhere.
func TestStdinListRecordsWorkingDirectory(t *testing.T) {
	model, err := filepath.Abs(filepath.Join(fixtures, "tiny32", "hf"))
	if err != nil {
		t.Fatal(err)
	}
	imgs, _ := filepath.Abs(filepath.Join(fixtures, "tiny32", "images"))
	base := t.TempDir()
	for i, d := range []string{"a", "b"} {
		copyFile(t, filepath.Join(imgs, fmt.Sprintf("img_%03d.png", i)), filepath.Join(base, d, "x.png"))
	}
	out := filepath.Join(base, "out")
	embed := func(dir, list string) (int, string) {
		t.Chdir(filepath.Join(base, dir))
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"embed", "-m", model, "-o", out, "-"}, strings.NewReader(list), &stdout, &stderr)
		return code, stderr.String()
	}
	if code, stderr := embed("a", "x.png\n"); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, stderr)
	}
	if code, stderr := embed("b", "x.png\n"); code == 0 || !strings.Contains(stderr, "holds the outputs of the inputs") {
		t.Errorf("the same relative list from another directory: exit %d, want a refusal naming the inputs\n%s", code, stderr)
	}
	if code, stderr := embed("a", "x.png\n"); code != 0 || !strings.Contains(stderr, "1 skipped") {
		t.Errorf("the same list from the same directory: exit %d, want it resumed\n%s", code, stderr)
	}
	abs := filepath.Join(base, "a", "x.png") + "\n"
	out = filepath.Join(base, "out-abs")
	for _, dir := range []string{"a", "b"} {
		if code, stderr := embed(dir, abs); code != 0 {
			t.Errorf("a list of absolute paths from %s: exit %d\n%s", dir, code, stderr)
		}
	}
}

// What the command line names and is wrong — a missing input, a glob
// refused, two inputs with one id, a model name that names nothing, a
// missing --mask-noise file, an --output that is a file — is a usage
// error (exit 2), as a missing --config-file is, with the message naming
// it; nothing is created. An input directory without images is the
// state of the inputs, not a usage error (exit 1).
func TestCommandLineMistakesExitTwo(t *testing.T) {
	model := filepath.Join(fixtures, "tiny32", "hf")
	dir := t.TempDir()
	for _, d := range []string{"a", "b"} {
		copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(dir, d, "x.png"))
	}
	file := filepath.Join(dir, "file")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(file, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, c := range []struct {
		code int
		args []string
		want string
	}{
		{2, []string{"embed", filepath.Join(dir, "nonexist")}, "nonexist: no such file or directory"},
		{2, []string{"embed", filepath.Join(dir, "**")}, "'**' is not recursive"},
		{2, []string{"embed", filepath.Join(dir, "*.gif")}, "matches nothing"},
		{2, []string{"embed", filepath.Join(a, "x.png"), filepath.Join(b, "x.png")}, `have the same id "x.png"`},
		{2, []string{"embed", "-m", "nosuchmodel", a}, `model "nosuchmodel": no such file or directory, and not builtin`},
		{2, []string{"reconstruct", "--mask-noise", filepath.Join(dir, "nope.npy"), a}, "--mask-noise: open " + filepath.Join(dir, "nope.npy") + ": no such file"},
		{2, []string{"embed", "-o", file, a}, "--output " + file + " is a file"},
		{2, []string{"reconstruct", "--dry-run", "-o", file, a}, "--output " + file + " is a file"},
		{2, []string{"embed", "--config-file", filepath.Join(dir, "nonexist.yaml"), a}, "nonexist.yaml: no such file"},
		{1, []string{"embed", empty}, "holds no image files"},
	} {
		args := append([]string{}, c.args...)
		if !slices.Contains(args, "-m") {
			args = append(args, "-m", model)
		}
		out := filepath.Join(dir, "out")
		if !slices.Contains(args, "-o") {
			args = append(args, "-o", out)
		}
		code, _, stderr := maeembed(t, args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, want %d and %q\n%s", c.args, code, c.code, c.want, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%q created %s", c.args, out)
		}
	}
}

// Two Parquet files with the same keys (splits that each number their rows
// from 0): ids are one namespace, so every row of the second is a
// duplicate id's error row; the summary says so, names the two files and
// how to give them distinct ids, and does not call the inputs bad.
func TestEmbedParquetFilesSharingKeys(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	for _, n := range []string{"a.parquet", "b.parquet"} {
		copyFile(t, "../../sources/testdata/img2dataset-parquet/00000.parquet", filepath.Join(in, n))
	}
	code, _, stderr := maeembed(t, append([]string{"embed", "-o", out, in}, tinyModel...)...)
	if w, f, _ := summaryCounts(t, stderr); code != 0 || w != 3 || f != 3 {
		t.Fatalf("exit %d, %d written, %d errors; want 0, 3, 3\n%s", code, w, f, stderr)
	}
	for _, want := range []string{"3 are duplicate ids (" + filepath.Join(in, "b.parquet") + " repeats 3 ids of " + filepath.Join(in, "a.parquet") + ")",
		"--id-column", "new output directory"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the summary does not say %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "themselves are bad") {
		t.Errorf("the summary calls the inputs bad:\n%s", stderr)
	}
	// --id-column - gives the rows ids of their own (file id and row).
	out = t.TempDir()
	code, _, stderr = maeembed(t, append([]string{"embed", "-o", out, in, "--id-column", "-"}, tinyModel...)...)
	if w, f, _ := summaryCounts(t, stderr); code != 0 || w != 6 || f != 0 {
		t.Errorf("--id-column -: exit %d, %d written, %d errors; want 0, 6, 0\n%s", code, w, f, stderr)
	}
}

// Another run's output inside an input directory is not inputs: embed
// px/ after reconstruct --format png -o px/recon/ px/ takes px's images,
// not the reconstructions, and warns once, naming px/recon; so does a
// rerun beside an embedding output (px/emb2 holds part files). Named as an
// input, an output directory is read: its PNG panels are images.
func TestOtherRunsOutputInsideAnInput(t *testing.T) {
	px := t.TempDir()
	for _, n := range []string{"img_000.png", "img_001.png"} {
		copyFile(t, filepath.Join(fixtures, "tiny32", "images", n), filepath.Join(px, n))
	}
	mustRun(t, append([]string{"reconstruct", "--format", "png", "-o", filepath.Join(px, "recon"), px}, tinyModel...)...)
	mustRun(t, append([]string{"embed", "-o", filepath.Join(px, "emb2"), px}, tinyModel...)...)
	out := filepath.Join(px, "emb")
	stderr := runCounted(t, summary{2, 0, 0}, append([]string{"embed", "-o", out, px}, tinyModel...)...)
	if got := strings.Join(embedIDs(t, out), " "); got != "img_000.png img_001.png" {
		t.Errorf("ids %q, want px's two images only", got)
	}
	for _, d := range []string{"recon", "emb2"} {
		if n := strings.Count(stderr, "skipping a maeembed output directory inside an input"); n != 2 ||
			!strings.Contains(stderr, "path="+filepath.Join(px, d)+" ") {
			t.Errorf("%d warnings, want one for each of recon and emb2, naming %s:\n%s", n, d, stderr)
		}
	}
	named := t.TempDir()
	runCounted(t, summary{2, 0, 0}, append([]string{"embed", "-o", named, filepath.Join(px, "recon")}, tinyModel...)...)
	if got := strings.Join(embedIDs(t, named), " "); got != "img_000.png.png img_001.png.png" {
		t.Errorf("recon named as an input: ids %q, want its two panels (ID.png)", got)
	}
}

// Nested inputs in the other order are the same inputs with the same ids:
// the rerun writes nothing new and the output holds each image once, and
// neither order is refused for a file name in both.
func TestRerunNestedInputsInOtherOrder(t *testing.T) {
	root := t.TempDir()
	n, out := filepath.Join(root, "N"), filepath.Join(root, "O")
	sub := filepath.Join(n, "sub")
	tinyImages(t, n, "calla.png")
	tinyImages(t, sub, "fossa.png")
	runCounted(t, summary{2, 0, 0}, embedArgs(out, sub, n)...)
	runCounted(t, summary{0, 0, 2}, embedArgs(out, n, sub)...)
	if got, want := partIDs(t, out, "part-*.parquet"), map[string]int{"calla.png": 1, "sub/fossa.png": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("ids %v, want %v", got, want)
	}
	// A file named beside its directory, as well.
	out2 := filepath.Join(root, "O2")
	runCounted(t, summary{2, 0, 0}, embedArgs(out2, filepath.Join(sub, "fossa.png"), n)...)
	runCounted(t, summary{0, 0, 2}, embedArgs(out2, n, filepath.Join(sub, "fossa.png"))...)
	if got, want := partIDs(t, out2, "part-*.parquet"), map[string]int{"calla.png": 1, "sub/fossa.png": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("file beside its directory: ids %v, want %v", got, want)
	}

	tinyImages(t, n, "x.png", "fossa.png")
	runCounted(t, summary{2, 0, 2}, embedArgs(out, sub, n)...)
	runCounted(t, summary{0, 0, 4}, embedArgs(out, n, sub)...)
	if got, want := partIDs(t, out, "part-*.parquet"), map[string]int{"calla.png": 1, "fossa.png": 1, "sub/fossa.png": 1, "x.png": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("ids %v, want %v", got, want)
	}
}

// The README's workflow of a directory and a list: a list line naming a
// file of the directory input, added for a rerun (in a list file or on
// stdin), gives it no second id, so the rerun writes nothing new; nor
// does naming a file of the directory beside it with another
// --extensions.
func TestRerunListLineInsideDirectoryInput(t *testing.T) {
	model, err := filepath.Abs(filepath.Join(fixtures, "tiny32", "hf"))
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	tinyImages(t, filepath.Join(base, "photos"), "calla.png", "fossa.png")
	tinyImages(t, filepath.Join(base, "photos", "sub"), "goldfish.png", "kleiber.png")
	tinyImages(t, filepath.Join(base, "extra"), "painting-colors.png")
	tinyImages(t, filepath.Join(base, "p6"), "coffee.bmp")
	tinyImages(t, filepath.Join(base, "p6", "sub"), "kleiber.png")
	t.Chdir(base)
	embed := func(want summary, stdin string, args ...string) {
		t.Helper()
		args = append([]string{"embed", "-m", model, "--resize", "none"}, args...)
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr); code != 0 {
			t.Fatalf("maeembed %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
		}
		var got summary
		got.written, got.failed, got.skipped = summaryCounts(t, stderr.String())
		if got != want {
			t.Fatalf("maeembed %s (stdin %q): %d written, %d errors, %d skipped; want %v\n%s", strings.Join(args, " "), stdin,
				got.written, got.failed, got.skipped, want, stderr.String())
		}
	}
	wantIDs := map[string]int{"extra/painting-colors.png": 1, "calla.png": 1, "fossa.png": 1, "sub/goldfish.png": 1, "sub/kleiber.png": 1}
	if err := os.WriteFile("l.txt", []byte("extra/painting-colors.png\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	embed(summary{5, 0, 0}, "", "-o", "o1", "photos", "l.txt")
	if err := os.WriteFile("l.txt", []byte("extra/painting-colors.png\nphotos/calla.png\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	embed(summary{0, 0, 5}, "", "-o", "o1", "photos", "l.txt")
	if got := partIDs(t, "o1", "part-*.parquet"); !reflect.DeepEqual(got, wantIDs) {
		t.Errorf("list file: ids %v, want %v", got, wantIDs)
	}

	embed(summary{5, 0, 0}, "extra/painting-colors.png\n", "-o", "o2", "photos", "-")
	embed(summary{0, 0, 5}, "extra/painting-colors.png\nphotos/calla.png\n", "-o", "o2", "photos", "-")
	if got := partIDs(t, "o2", "part-*.parquet"); !reflect.DeepEqual(got, wantIDs) {
		t.Errorf("list on stdin: ids %v, want %v", got, wantIDs)
	}

	embed(summary{2, 0, 0}, "", "-o", "o6b", "--extensions", "bmp", "p6", "p6/sub/kleiber.png")
	embed(summary{0, 0, 2}, "", "-o", "o6b", "p6", "p6/sub/kleiber.png")
	if got, want := partIDs(t, "o6b", "part-*.parquet"), map[string]int{"coffee.bmp": 1, "sub/kleiber.png": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("--extensions: ids %v, want %v", got, want)
	}
}
