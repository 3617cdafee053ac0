package main

import (
	"archive/tar"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/maeembed/maeembed/sinks"
)

// partIDs counts the ids in the published part files of out matching pat.
func partIDs(t *testing.T, out, pat string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	parts, _ := filepath.Glob(filepath.Join(out, pat))
	for _, p := range parts {
		tbl, _, err := sinks.ReadParquet(p)
		if err != nil {
			t.Fatalf("visible file %s is corrupt: %v", p, err)
		}
		for _, ch := range tbl.Column(0).Data().Chunks() {
			s := ch.(*array.String)
			for i := 0; i < s.Len(); i++ {
				ids[s.Value(i)]++
			}
		}
		tbl.Release()
	}
	return ids
}

// retryInputs writes good.png, big.png (9 MB to decode, a small file: an
// error under a 4MiB memory budget only) and bad.jpg (never an image) to a
// new directory, and returns it with the model flags of the retry tests.
func retryInputs(t *testing.T) (root string, model []string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "in")
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(root, "good.png"))
	f, err := os.Create(filepath.Join(root, "big.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, image.NewNRGBA(image.Rect(0, 0, 1500, 1500))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bad.jpg"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, []string{"-m", filepath.Join(fixtures, "tiny32", "hf"), "--batch-size", "1"}
}

// An image refused under a small memory budget is an error row that a
// plain rerun with a larger budget skips as done (saying so); --retry-errors processes
// it again, and afterwards it is in the output once and no longer in
// errors/, while an input that fails again keeps exactly one error row.
func TestE2ERetryErrors(t *testing.T) {
	root, model := retryInputs(t)
	out := t.TempDir()
	stderr := runCounted(t, summary{1, 2, 0}, append([]string{"embed", "--memory-budget", "4MiB", "-o", out, root}, model...)...)
	// big.png can be retried (the budget), bad.jpg cannot (not an image).
	// The budget failed it, so a larger one is the example of a fix.
	if !strings.Contains(stderr, "1 is of a kind a retry can fix") || !strings.Contains(stderr, "--retry-errors") ||
		!strings.Contains(stderr, "the other is a bad input") || !strings.Contains(stderr, "(e.g. a larger --memory-budget)") {
		t.Errorf("the summary of a run with errors does not say which can be retried and how:\n%s", stderr)
	}
	if e := partIDs(t, out, "errors/part-*.parquet"); e["big.png"] != 1 || e["bad.jpg"] != 1 {
		t.Fatalf("error rows %v, want big.png and bad.jpg", e)
	}
	// The plain rerun has nothing to do, but says that two of the inputs
	// it skipped are error rows, where they are, and how to retry them.
	stderr = runCounted(t, summary{0, 0, 3}, append([]string{"embed", "--memory-budget", "256MiB", "-o", out, root}, model...)...)
	for _, want := range []string{"nothing to do: every input was already done, 2 of them as errors",
		"2 of the skipped inputs are recorded as failed in " + filepath.Join(out, "errors"), "1 is of a kind a retry can fix",
		"rerun with --retry-errors", "the other is a bad input"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("a rerun with nothing to do but earlier errors does not say %q:\n%s", want, stderr)
		}
	}
	runCounted(t, summary{1, 1, 1}, append([]string{"embed", "--memory-budget", "256MiB", "--retry-errors", "-o", out, root}, model...)...)
	outIDs, errIDs := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet")
	if outIDs["good.png"] != 1 || outIDs["big.png"] != 1 || len(outIDs) != 2 {
		t.Errorf("output ids after the retry %v, want good.png and big.png once", outIDs)
	}
	if errIDs["bad.jpg"] != 1 || len(errIDs) != 1 {
		t.Errorf("error ids after the retry %v, want bad.jpg once", errIDs)
	}
	// Nothing is left to retry but the input that fails again: the run
	// fails (every input it took failed) and its one row replaces the old.
	if code, _, stderr := maeembed(t, append([]string{"embed", "--retry-errors", "-o", out, root}, model...)...); code != 1 || !strings.Contains(stderr, "0 images written, 1 error, 2 skipped") {
		t.Errorf("second retry: exit %d\n%s", code, stderr)
	}
	if errIDs := partIDs(t, out, "errors/part-*.parquet"); errIDs["bad.jpg"] != 1 || len(errIDs) != 1 {
		t.Errorf("error ids after a second retry %v, want bad.jpg once", errIDs)
	}
	code, _, stderr := maeembed(t, append([]string{"embed", "--retry-errors", "--resume=false", "-o", t.TempDir(), root}, model...)...)
	if code != 2 || !strings.Contains(stderr, "--resume") {
		t.Errorf("--retry-errors --resume=false: exit %d, %s", code, stderr)
	}
}

// A run whose only errors are bad inputs (a truncated JPEG) does not
// suggest --retry-errors, which would fail them again: it says the input
// is bad; so does its rerun, which skips the error row.
func TestE2ERetryHintOnlyForRetryableErrors(t *testing.T) {
	root := filepath.Join(t.TempDir(), "in")
	jpg, err := os.ReadFile("../../stages/testdata/odd/quadrants.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(root, "good.png"))
	if err := os.WriteFile(filepath.Join(root, "truncated.jpg"), jpg[:len(jpg)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, root}
	for i, want := range []summary{{1, 1, 0}, {0, 0, 2}} {
		stderr := runCounted(t, want, args...)
		if strings.Contains(stderr, "--retry-errors") || !strings.Contains(stderr, "the input itself is bad") {
			t.Errorf("run %d: a truncated image's error suggests a retry, or does not say the input is bad:\n%s", i+1, stderr)
		}
	}
}

// A listed file that is not there is no bad input: it may appear, so the
// summary suggests --retry-errors, and once it is there the retry embeds it.
func TestE2ERetryMissingListedFile(t *testing.T) {
	dir := t.TempDir()
	good, later := filepath.Join(dir, "good.png"), filepath.Join(dir, "later.png")
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), good)
	list := filepath.Join(dir, "l.txt")
	if err := os.WriteFile(list, []byte(good+"\n"+later+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, list}
	stderr := runCounted(t, summary{1, 1, 0}, args...)
	if !strings.Contains(stderr, "--retry-errors") || strings.Contains(stderr, "the input itself is bad") {
		t.Errorf("a missing listed file's error calls it a bad input, or suggests no retry:\n%s", stderr)
	}
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_001.png"), later)
	runCounted(t, summary{1, 0, 1}, append(args, "--retry-errors")...)
	if errIDs := partIDs(t, out, "errors/part-*.parquet"); len(errIDs) != 0 {
		t.Errorf("error ids after the retry: %v, want none", errIDs)
	}
}

// A retry run killed after it published an output but before it dropped
// the error rows leaves ids both in the output and in errors/ (simulated
// here by copying the output part of a finished retry of the same state).
// The next retry run does not count them as retried, and once it
// completes their error rows are gone.
func TestE2ERetryErrorsAfterInterruptedRetry(t *testing.T) {
	root, model := retryInputs(t)
	out := t.TempDir()
	runCounted(t, summary{1, 2, 0}, append([]string{"embed", "--memory-budget", "4MiB", "-o", out, root}, model...)...)
	before, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	// A finished retry of a copy of out; its new output part (big.png) is
	// what the killed retry of out had published.
	done := filepath.Join(t.TempDir(), "done")
	if err := os.CopyFS(done, os.DirFS(out)); err != nil {
		t.Fatal(err)
	}
	runCounted(t, summary{1, 1, 1}, append([]string{"embed", "--retry-errors", "-o", done, root}, model...)...)
	had := map[string]bool{}
	for _, e := range before {
		had[e.Name()] = true
	}
	parts, _ := filepath.Glob(filepath.Join(done, "part-*.parquet"))
	copied := 0
	for _, p := range parts {
		if !had[filepath.Base(p)] {
			copyFile(t, p, filepath.Join(out, filepath.Base(p)))
			copied++
		}
	}
	if copied != 1 {
		t.Fatalf("the retry published %d new parts, want 1", copied)
	}
	if e := partIDs(t, out, "errors/part-*.parquet"); e["big.png"] != 1 || partIDs(t, out, "part-*.parquet")["big.png"] != 1 {
		t.Fatalf("not the state of an interrupted retry: errors %v", e)
	}
	// Only bad.jpg is taken again (and fails again: exit 1).
	code, _, stderr := maeembed(t, append([]string{"embed", "--retry-errors", "-o", out, root}, model...)...)
	if code != 1 || !strings.Contains(stderr, "0 images written, 1 error, 2 skipped") || !strings.Contains(stderr, "retrying=1 ") {
		t.Errorf("retry after an interrupted retry: exit %d\n%s", code, stderr)
	}
	if e := partIDs(t, out, "errors/part-*.parquet"); e["bad.jpg"] != 1 || len(e) != 1 {
		t.Errorf("error ids after the retry %v, want bad.jpg once", e)
	}
	if o := partIDs(t, out, "part-*.parquet"); o["good.png"] != 1 || o["big.png"] != 1 || len(o) != 2 {
		t.Errorf("output ids after the retry %v, want good.png and big.png once", o)
	}
}

// --dry-run lists what a real run would process: everything on a new
// output, nothing on a finished one, the failed ids with --retry-errors;
// an id with a newline stays one (quoted) line.
func TestE2EDryRunResumes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "in")
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(root, "good.png"))
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(root, "two\nlines.png"))
	if err := os.WriteFile(filepath.Join(root, "bad.jpg"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	model := []string{"-m", filepath.Join(fixtures, "tiny32", "hf")}
	out := filepath.Join(t.TempDir(), "out")
	dry := func(args ...string) []string {
		t.Helper()
		// The run's model: a dry run refuses an output of another, as the run does.
		code, stdout, stderr := maeembed(t, append(append(append([]string{"embed", "--dry-run", "-o", out}, model...), args...), root)...)
		if code != 0 {
			t.Fatalf("dry run %v: exit %d\n%s", args, code, stderr)
		}
		return strings.Fields(stdout)
	}
	if got := dry(); strings.Join(got, " ") != `bad.jpg good.png "two\nlines.png"` {
		t.Errorf("dry run before any run: %q", got)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a dry run created the output directory")
	}
	runCounted(t, summary{2, 1, 0}, append([]string{"embed", "-o", out, root}, model...)...)
	if got := dry(); len(got) != 0 {
		t.Errorf("dry run on a finished output lists %q, want nothing", got)
	}
	if got := dry("--retry-errors"); strings.Join(got, " ") != "bad.jpg" {
		t.Errorf("dry run --retry-errors lists %q, want bad.jpg", got)
	}
	// --resume=false: the run is refused (it would write the ids again);
	// the dry run lists what it would take, then fails as the run does.
	args := append(append([]string{"embed", "--dry-run", "--resume=false", "-o", out}, model...), root)
	code, stdout, stderr := maeembed(t, args...)
	if got := strings.Fields(stdout); len(got) != 3 || code != 1 || !strings.Contains(stderr, "--resume=false would write their ids a second time") {
		t.Errorf("dry run --resume=false: exit %d, lists %q, want all 3 and exit 1 with the run's refusal\n%s", code, got, stderr)
	}
	if run, _, _ := maeembed(t, slices.DeleteFunc(args, func(a string) bool { return a == "--dry-run" })...); run != code {
		t.Errorf("dry run --resume=false exit %d, the run %d", code, run)
	}
}

// --fail-on-error fails a rerun that skips inputs an earlier run recorded
// as failed: a retried Job must not succeed by skipping its failures.
func TestE2EFailOnErrorRerunWithEarlierErrors(t *testing.T) {
	root, model := retryInputs(t)
	out := t.TempDir()
	args := append([]string{"embed", "--fail-on-error", "-o", out, root}, model...)
	if code, _, stderr := maeembed(t, args...); code != 1 {
		t.Fatalf("first run with bad.jpg: exit %d, want 1\n%s", code, stderr)
	}
	code, _, stderr := maeembed(t, args...)
	if code != 1 || !strings.Contains(stderr, "1 input failed in an earlier run") || !strings.Contains(stderr, "the input itself is bad") {
		t.Errorf("rerun with --fail-on-error over an earlier error: exit %d, want 1 naming it\n%s", code, stderr)
	}
	// Without --fail-on-error the rerun with something done succeeds.
	if code, _, stderr := maeembed(t, append([]string{"embed", "-o", out, root}, model...)...); code != 0 {
		t.Errorf("plain rerun: exit %d\n%s", code, stderr)
	}
}

// A run in which every input failed exits non-zero, and so does its
// rerun, which skips them all as error rows: the output holds no image.
func TestE2ERerunOfAllFailedRunFails(t *testing.T) {
	root := filepath.Join(t.TempDir(), "in")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bad.jpg"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// -o DIR/, as the README writes it: the messages say DIR/errors.
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out + "/", root}
	errDir := "(errors in " + filepath.Join(out, "errors") + ")"
	if code, _, stderr := maeembed(t, args...); code != 1 || !strings.Contains(stderr, errDir) {
		t.Fatalf("first run, every input bad: exit %d, want 1 and %q\n%s", code, errDir, stderr)
	}
	code, _, stderr := maeembed(t, args...)
	errDir = "(see " + filepath.Join(out, "errors") + ";"
	if code != 1 || !strings.Contains(stderr, "the only input failed in an earlier run") || !strings.Contains(stderr, errDir) {
		t.Errorf("rerun of a run in which every input failed: exit %d, want 1 and %q\n%s", code, errDir, stderr)
	}
}

// A tar file whose error row is under its own id (named as an input but
// empty, cut short or unreadable when first read) and that reads to its
// end in a --retry-errors run loses that row, as a retried image does: its
// members now have their outputs. A container that fails again keeps
// exactly one row, the new one.
func TestE2ERetryErrorsDropsContainerRows(t *testing.T) {
	root := t.TempDir()
	good := filepath.Join(root, "good.png")
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), good)
	shard, empty := filepath.Join(root, "shard.tar"), filepath.Join(root, "empty.tar")
	for _, p := range []string{shard, empty} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, good, shard, empty}
	runCounted(t, summary{1, 2, 0}, args...)
	if e := partIDs(t, out, "errors/part-*.parquet"); len(e) != 2 || e["shard.tar"] != 1 || e["empty.tar"] != 1 {
		t.Fatalf("error rows %v, want shard.tar and empty.tar", e)
	}
	// The shard is complete now.
	writeTar(t, shard, "img_001.png", "img_002.png")
	runCounted(t, summary{2, 1, 1}, append(args, "--retry-errors")...)
	if e := partIDs(t, out, "errors/part-*.parquet"); len(e) != 1 || e["empty.tar"] != 1 {
		t.Errorf("error rows after the retry %v, want empty.tar once (shard.tar's row superseded)", e)
	}
	if o := partIDs(t, out, "part-*.parquet"); len(o) != 3 || o["good.png"] != 1 || o["shard.tar/img_001.png"] != 1 || o["shard.tar/img_002.png"] != 1 {
		t.Errorf("outputs %v", o)
	}
}

// writeTar writes the named images of the tiny32 fixture into a tar at path.
func writeTar(t *testing.T, path string, names ...string) {
	t.Helper()
	var members []tarMember
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(fixtures, "tiny32", "images", n))
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, tarMember{n, b})
	}
	writeTarMembers(t, path, members...)
}

// tarMember is a member of a tar that writeTarMembers writes.
type tarMember struct {
	name string
	data []byte
}

// writeTarMembers writes a tar of members, in order, at path.
func writeTarMembers(t *testing.T, path string, members ...tarMember) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, m := range members {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A plain rerun (no --retry-errors) opens a tar file with an error row
// under its own id again (its members are not done); when the file now
// reads to its end, its members get their rows and the file's own row,
// no longer true, is removed once the run has published everything. Every
// other error row stays: those of images (a plain rerun skips them) and
// that of a container that still holds no image.
// (A drained or failed rerun removes nothing: RunBatch drops rows only
// after a complete run, as for --retry-errors.)
func TestE2ERerunDropsContainerRowOnceItReads(t *testing.T) {
	root := t.TempDir()
	good := filepath.Join(root, "good.png")
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), good)
	bad := filepath.Join(root, "bad.jpg")
	if err := os.WriteFile(bad, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	shard, empty := filepath.Join(root, "shard.tar"), filepath.Join(root, "empty.tar")
	for _, p := range []string{shard, empty} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, good, bad, shard, empty}
	runCounted(t, summary{1, 3, 0}, args...)
	writeTar(t, shard, "img_001.png", "img_002.png")
	runCounted(t, summary{2, 0, 3}, args...)
	if e := partIDs(t, out, "errors/part-*.parquet"); len(e) != 2 || e["bad.jpg"] != 1 || e["empty.tar"] != 1 {
		t.Errorf("error rows after the plain rerun %v, want bad.jpg and empty.tar once (shard.tar's row superseded)", e)
	}
	if o := partIDs(t, out, "part-*.parquet"); len(o) != 3 || o["good.png"] != 1 || o["shard.tar/img_001.png"] != 1 || o["shard.tar/img_002.png"] != 1 {
		t.Errorf("outputs %v", o)
	}
}

// A tar cut short inside a member's body: the first run records the end
// of the archive as that member's error row; a plain rerun skips the
// member as done, meets the same end while skipping its body, and
// records it under the same id, so it has nothing to do and exits 0
// (not a new row under the tar's own id, and "all inputs failed").
func TestE2ETruncatedTarRerunAgrees(t *testing.T) {
	root := t.TempDir()
	shard := filepath.Join(root, "trunc.tar")
	writeTar(t, shard, "img_001.png", "img_002.png")
	b, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.Stat(filepath.Join(fixtures, "tiny32", "images", "img_001.png"))
	if err != nil {
		t.Fatal(err)
	}
	// Two headers, the first body padded to a block, then half a block of
	// the second body.
	cut := 512 + (first.Size()+511)/512*512 + 512 + 256
	if err := os.WriteFile(shard, b[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, shard}
	// The dry run lists the ids the run takes, the cut member's too.
	if stdout := mustRun(t, append(args, "--dry-run")...); stdout != "trunc.tar/img_001.png\ntrunc.tar/img_002.png\n" {
		t.Errorf("dry run listed %q, want the two members", stdout)
	}
	runCounted(t, summary{1, 1, 0}, args...)
	if e := partIDs(t, out, "errors/part-*.parquet"); len(e) != 1 || e["trunc.tar/img_002.png"] != 1 {
		t.Fatalf("error rows %v, want trunc.tar/img_002.png once", e)
	}
	stderr := runCounted(t, summary{0, 0, 2}, args...)
	if !strings.Contains(stderr, "nothing to do: every input was already done, 1 of them as errors") {
		t.Errorf("the rerun of a truncated tar does not say it has nothing to do:\n%s", stderr)
	}
	if e := partIDs(t, out, "errors/part-*.parquet"); len(e) != 1 || e["trunc.tar/img_002.png"] != 1 {
		t.Errorf("error rows after the rerun %v, want trunc.tar/img_002.png once", e)
	}
	// A dry run now lists nothing and says what the rerun said.
	if code, stdout, stderr := maeembed(t, append(args, "--dry-run")...); code != 0 || stdout != "" ||
		!strings.Contains(stderr, "embed: nothing to do: every input was already done, 1 of them as errors\n") {
		t.Errorf("dry run on the finished output: exit %d, listed %q\n%s", code, stdout, stderr)
	}
}

// A tar holding a member twice: the first is embedded, the second is an
// error row under the same id, so the id is in the parts and in errors/
// at once (README, Output files). A plain rerun skips both, counting the
// second among the inputs done as errors, as a duplicate id (with
// --fail-on-error, the rerun fails as the first run did); a retry run
// does not embed the id again (it has an output) and drops its error
// row, leaving the first member's embedding as the id's only row.
func TestE2EDuplicateMemberInPartsAndErrors(t *testing.T) {
	root := t.TempDir()
	shard := filepath.Join(root, "dup.tar")
	writeTar(t, shard, "img_001.png", "img_002.png", "img_001.png")
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, shard}
	runCounted(t, summary{2, 1, 0}, args...)
	const id = "dup.tar/img_001.png"
	if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 2 || e[id] != 1 || len(e) != 1 {
		t.Fatalf("outputs %v, error rows %v: want %s once in each", o, e, id)
	}
	stderr := runCounted(t, summary{0, 0, 3}, args...)
	if want := "embed: nothing to do: every input was already done, 1 of them as errors (1 duplicate id)\n"; !strings.Contains(stderr, want) {
		t.Errorf("the rerun does not say %q:\n%s", want, stderr)
	}
	if code, stdout, stderr := maeembed(t, append(args, "--dry-run")...); code != 0 || stdout != "" ||
		!strings.Contains(stderr, "1 of them as errors (1 duplicate id)") {
		t.Errorf("dry run: exit %d, listed %q\n%s", code, stdout, stderr)
	}
	for _, dry := range []string{"--dry-run=false", "--dry-run"} {
		if code, _, stderr := maeembed(t, append(args, "--fail-on-error", dry)...); code != 1 || !strings.Contains(stderr, "1 input failed in an earlier run") ||
			!strings.Contains(stderr, "a duplicate id keeps the output of the first member or row that has it, and --retry-errors drops its error row") {
			t.Errorf("rerun with --fail-on-error %s: exit %d, want 1\n%s", dry, code, stderr)
		}
	}
	stderr = runCounted(t, summary{0, 0, 3}, append(args, "--retry-errors")...)
	if strings.Contains(stderr, "as errors") {
		t.Errorf("the retry run counts the duplicate id as an error:\n%s", stderr)
	}
	if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 2 || len(e) != 0 {
		t.Errorf("after the retry: outputs %v, error rows %v: want %s once in the outputs only", o, e, id)
	}
}

// Shards that run one after the other into one output: a repeat of an
// id in shard 1 is not done because shard 0 recorded another repeat of
// the id (its "(repeat n)" row is not this one's), so each repeat gets
// its own error row, once, and reruns of either shard find both done.
func TestE2EDuplicateRepeatsAcrossShards(t *testing.T) {
	shard := filepath.Join(t.TempDir(), "dup.tar")
	// Indices 0 and 2 are shard 0/2's (the first and repeat 2), 1 and 3
	// shard 1/2's (repeat 1 and img_002.png).
	writeTar(t, shard, "img_001.png", "img_001.png", "img_001.png", "img_002.png")
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, shard}
	runCounted(t, summary{1, 1, 0}, append(args, "--shard", "0/2")...)
	runCounted(t, summary{1, 1, 0}, append(args, "--shard", "1/2")...)
	const id = "dup.tar/img_001.png"
	if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 2 || e[id] != 2 || len(e) != 1 {
		t.Fatalf("outputs %v, error rows %v: want %s once in the outputs and twice in the error rows", o, e, id)
	}
	for _, s := range []string{"0/2", "1/2"} {
		runCounted(t, summary{0, 0, 2}, append(args, "--shard", s)...)
	}
	if e := partIDs(t, out, "errors/part-*.parquet"); e[id] != 2 || len(e) != 1 {
		t.Errorf("error rows after the reruns %v, want %s twice", e, id)
	}
}

// A run whose only items are duplicate ids (shard 1/2 of a tar that holds
// one image twice: shard 0/2 reads the first) has not failed: each is an
// error row, as any repeat is, and the id has the first one's output, so
// the run and its rerun exit 0 as a run with some bad inputs does, and
// fail with --fail-on-error only. Duplicates beside a real failure and
// nothing written still fail (TestE2EDuplicateOfAFailedMember).
func TestE2EShardOfDuplicatesOnly(t *testing.T) {
	shard := filepath.Join(t.TempDir(), "dup.tar")
	writeTar(t, shard, "img_001.png", "img_001.png")
	for _, order := range [][]string{{"1/2", "0/2"}, {"0/2", "1/2"}} {
		out := t.TempDir()
		args := func(s string, more ...string) []string {
			return append([]string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, "--shard", s, shard}, more...)
		}
		want := map[string]summary{"0/2": {1, 0, 0}, "1/2": {0, 1, 0}}
		for _, s := range order {
			stderr := runCounted(t, want[s], args(s)...)
			if s == "1/2" && !strings.Contains(stderr, "1 is a duplicate id") {
				t.Errorf("shard %s of %v: the summary does not name the duplicate id\n%s", s, order, stderr)
			}
		}
		const id = "dup.tar/img_001.png"
		if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 1 || e[id] != 1 || len(e) != 1 {
			t.Errorf("%v: outputs %v, error rows %v: want %s once in each", order, o, e, id)
		}
		stderr := runCounted(t, summary{0, 0, 1}, args("1/2")...)
		if !strings.Contains(stderr, "nothing to do: every input was already done, 1 of them as errors (1 duplicate id)") {
			t.Errorf("%v: the rerun of shard 1/2 does not count the duplicate id among the inputs done as errors\n%s", order, stderr)
		}
		if code, _, stderr := maeembed(t, args("1/2", "--fail-on-error")...); code != 1 || !strings.Contains(stderr, "1 input failed in an earlier run") {
			t.Errorf("%v: the rerun of shard 1/2 with --fail-on-error: exit %d, want 1\n%s", order, code, stderr)
		}
	}
	out := t.TempDir()
	code, _, stderr := maeembed(t, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, "--shard", "1/2", "--fail-on-error", shard)
	if code != 1 || !strings.Contains(stderr, "1 input failed") {
		t.Errorf("shard 1/2 alone with --fail-on-error: exit %d, want 1\n%s", code, stderr)
	}
}

// A tar that holds a bad member twice: the first is a decode error row,
// the second a duplicate id's, and the id has no output. A rerun counts
// both among the inputs done as errors, but not as a duplicate id whose
// error row --retry-errors drops (the id keeps no first output): a retry
// reads both again, and both fail again, as the rerun's hint says.
func TestE2EDuplicateOfAFailedMember(t *testing.T) {
	shard := filepath.Join(t.TempDir(), "dup.tar")
	good, err := os.ReadFile(filepath.Join(fixtures, "tiny32", "images", "img_001.png"))
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte("not an image")
	writeTarMembers(t, shard, tarMember{"bad.jpg", bad}, tarMember{"img_001.png", good}, tarMember{"bad.jpg", bad})
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, shard}
	runCounted(t, summary{1, 2, 0}, args...)
	stderr := runCounted(t, summary{0, 0, 3}, args...)
	if want := "nothing to do: every input was already done, 2 of them as errors\n"; !strings.Contains(stderr, want) ||
		strings.Contains(stderr, "duplicate id") || !strings.Contains(stderr, "fails them again") {
		t.Errorf("the rerun does not say %q, and that a retry fails both again, without a duplicate id:\n%s", want, stderr)
	}
	code, _, stderr := maeembed(t, append(args, "--retry-errors")...)
	if w, f, s := summaryCounts(t, stderr); code != 1 || w != 0 || f != 2 || s != 1 {
		t.Errorf("the retry run: exit %d, %d written, %d errors, %d skipped; want exit 1 with both members failed again\n%s", code, w, f, s, stderr)
	}
}

// A shard that writes nothing, whose error rows are a duplicate id (of a
// bad member another shard reads first) and a real failure, fails for the
// real one: its error counts and cites that one only, and says the
// duplicate apart.
func TestE2EShardOfADuplicateAndAFailure(t *testing.T) {
	shard := filepath.Join(t.TempDir(), "dup.tar")
	good, err := os.ReadFile(filepath.Join(fixtures, "tiny32", "images", "img_001.png"))
	if err != nil {
		t.Fatal(err)
	}
	// Shard 1/2 reads indices 1 (the repeat of bad.jpg) and 3 (worse.jpg).
	writeTarMembers(t, shard, tarMember{"bad.jpg", []byte("not an image")}, tarMember{"bad.jpg", []byte("not an image")},
		tarMember{"img_001.png", good}, tarMember{"worse.jpg", []byte("not an image either")})
	out := t.TempDir()
	code, _, stderr := maeembed(t, "embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, "--shard", "1/2", shard)
	want := "nothing was written: 1 input failed, not counting 1 duplicate id (errors in " + filepath.Join(out, "errors") + "): dup.tar/worse.jpg: "
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, want 1 with %q\n%s", code, want, stderr)
	}
}

// Ids are one namespace over all kinds of input: a plain file whose id is
// a tar member's (s.tar holds img_001.png, and t/s.tar/img_001.png is a
// file, id s.tar/img_001.png) is a duplicate id like a member met twice:
// the tar member, read first, is embedded, the file is an error row that
// names the tar; reruns and --retry-errors treat it as they treat a member
// met twice.
func TestE2EFileDuplicatesTarMember(t *testing.T) {
	root := t.TempDir()
	shard := filepath.Join(root, "s.tar")
	writeTar(t, shard, "img_001.png")
	b, err := os.ReadFile(filepath.Join(fixtures, "tiny32", "images", "img_002.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "t", "s.tar"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "t", "s.tar", "img_001.png"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, shard, filepath.Join(root, "t")}
	stderr := runCounted(t, summary{1, 1, 0}, args...)
	const id = "s.tar/img_001.png"
	if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 1 || e[id] != 1 || len(e) != 1 {
		t.Fatalf("outputs %v, error rows %v: want %s once in each\n%s", o, e, id, stderr)
	}
	stderr = runCounted(t, summary{0, 0, 2}, args...)
	if want := "embed: nothing to do: every input was already done, 1 of them as errors (1 duplicate id)\n"; !strings.Contains(stderr, want) {
		t.Errorf("the rerun does not say %q:\n%s", want, stderr)
	}
	runCounted(t, summary{0, 0, 2}, append(args, "--retry-errors")...)
	if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 1 || len(e) != 0 {
		t.Errorf("after the retry: outputs %v, error rows %v: want %s once in the outputs only", o, e, id)
	}
}

// A tar that holds a member twice whose first fails of a kind a retry can
// get past (over the memory budget): the second is a duplicate id's error
// row, which a retry fails again as a duplicate whatever the first one's
// error. A rerun counts both as errors but only the first as retryable;
// the retry embeds the first and keeps one row for the second, which the
// next rerun names as a duplicate id.
func TestE2EDuplicateOfARetryableFailure(t *testing.T) {
	root, model := retryInputs(t)
	big, err := os.ReadFile(filepath.Join(root, "big.png"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(root, "good.png"))
	if err != nil {
		t.Fatal(err)
	}
	shard := filepath.Join(t.TempDir(), "dup.tar")
	writeTarMembers(t, shard, tarMember{"big.png", big}, tarMember{"good.png", good}, tarMember{"big.png", big})
	out := t.TempDir()
	args := append([]string{"embed", "-o", out, shard}, model...)
	runCounted(t, summary{1, 2, 0}, append(args, "--memory-budget", "4MiB")...)
	stderr := runCounted(t, summary{0, 0, 3}, append(args, "--memory-budget", "256MiB")...)
	for _, want := range []string{"every input was already done, 2 of them as errors\n", "1 is of a kind a retry can fix", "the other is a bad input"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the rerun does not say %q:\n%s", want, stderr)
		}
	}
	runCounted(t, summary{1, 1, 1}, append(args, "--memory-budget", "256MiB", "--retry-errors")...)
	const id = "dup.tar/big.png"
	if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 2 || e[id] != 1 || len(e) != 1 {
		t.Errorf("after the retry: outputs %v, error rows %v: want %s once in each", o, e, id)
	}
	stderr = runCounted(t, summary{0, 0, 3}, append(args, "--memory-budget", "256MiB")...)
	if want := "every input was already done, 1 of them as errors (1 duplicate id)\n"; !strings.Contains(stderr, want) {
		t.Errorf("the rerun after the retry does not say %q:\n%s", want, stderr)
	}
}

// A run cut between publishing the outputs of a tar that holds a member
// twice and publishing its error part (simulated by moving the error part
// away) left the second member without its duplicate id's error row: the
// rerun records it, once (and exits 0, as the first run did: a duplicate
// id is no failure of the run, its id has the first one's output), and
// the next rerun has nothing to do. Cut the
// other way round (the error part published, not the output part), the
// rerun embeds the first member and keeps the one duplicate row.
func TestE2EDuplicateRowOfACutRun(t *testing.T) {
	shard := filepath.Join(t.TempDir(), "dup.tar")
	writeTar(t, shard, "img_001.png", "img_002.png", "img_001.png")
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, shard}
	runCounted(t, summary{2, 1, 0}, args...)
	const id = "dup.tar/img_001.png"
	aside := t.TempDir()
	moveParts := func(pat string) {
		t.Helper()
		parts, _ := filepath.Glob(filepath.Join(out, pat))
		if len(parts) == 0 {
			t.Fatalf("no %s in %s", pat, out)
		}
		for _, p := range parts {
			if err := os.Rename(p, filepath.Join(aside, filepath.Base(p))); err != nil {
				t.Fatal(err)
			}
		}
	}
	moveParts("errors/part-*.parquet")
	// The rerun's only input is a duplicate id: an error row, but not a
	// failed run (TestE2EShardOfDuplicatesOnly).
	runCounted(t, summary{0, 1, 2}, args...)
	if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 2 || e[id] != 1 || len(e) != 1 {
		t.Fatalf("after the rerun of the cut run: outputs %v, error rows %v: want %s once in each", o, e, id)
	}
	stderr := runCounted(t, summary{0, 0, 3}, args...)
	if want := "every input was already done, 1 of them as errors (1 duplicate id)\n"; !strings.Contains(stderr, want) {
		t.Errorf("the next rerun does not say %q:\n%s", want, stderr)
	}
	if e := partIDs(t, out, "errors/part-*.parquet"); e[id] != 1 || len(e) != 1 {
		t.Errorf("after the next rerun: error rows %v, want %s once", e, id)
	}

	moveParts("part-*.parquet")
	runCounted(t, summary{2, 0, 1}, args...)
	if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 2 || e[id] != 1 || len(e) != 1 {
		t.Errorf("after the rerun without the outputs: outputs %v, error rows %v: want %s once in each", o, e, id)
	}
}

// A tar cut short inside the body of a member that repeats an earlier
// one's name: its error row is the duplicate id's (the cut kept in its
// text), so a rerun counts it as the id's repeat and skips it: the row
// stays one, however many reruns follow.
func TestE2ECutRepeatRecordedOnce(t *testing.T) {
	shard := filepath.Join(t.TempDir(), "dup.tar")
	writeTar(t, shard, "img_001.png", "img_002.png", "img_001.png")
	b, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, n := range []string{"img_001.png", "img_002.png"} {
		fi, err := os.Stat(filepath.Join(fixtures, "tiny32", "images", n))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, 512+(fi.Size()+511)/512*512)
	}
	// Both members, the third's header and half a block of its body.
	if err := os.WriteFile(shard, b[:sizes[0]+sizes[1]+512+256], 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, shard}
	runCounted(t, summary{2, 1, 0}, args...)
	const id = "dup.tar/img_001.png"
	for run := 1; run <= 2; run++ {
		stderr := runCounted(t, summary{0, 0, 3}, args...)
		if want := "every input was already done, 1 of them as errors (1 duplicate id)\n"; !strings.Contains(stderr, want) {
			t.Errorf("rerun %d does not say %q:\n%s", run, want, stderr)
		}
		if o, e := partIDs(t, out, "part-*.parquet"), partIDs(t, out, "errors/part-*.parquet"); o[id] != 1 || len(o) != 2 || e[id] != 1 || len(e) != 1 {
			t.Errorf("after rerun %d: outputs %v, error rows %v: want %s once in each", run, o, e, id)
		}
	}
}

// A retry that processes every failed input successfully leaves no empty
// errors/ behind (DuckDB refuses a glob errors/*.parquet that matches
// nothing); the output reads as before, and a rerun resumes it.
func TestE2ERetryThatFixesAllRemovesErrorsDir(t *testing.T) {
	root, model := retryInputs(t)
	if err := os.Remove(filepath.Join(root, "bad.jpg")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	runCounted(t, summary{1, 1, 0}, append([]string{"embed", "--memory-budget", "4MiB", "-o", out, root}, model...)...)
	if e := partIDs(t, out, "errors/part-*.parquet"); e["big.png"] != 1 {
		t.Fatalf("error rows %v, want big.png", e)
	}
	runCounted(t, summary{1, 0, 1}, append([]string{"embed", "--memory-budget", "256MiB", "--retry-errors", "-o", out, root}, model...)...)
	if _, err := os.Stat(filepath.Join(out, "errors")); !os.IsNotExist(err) {
		t.Errorf("%s/errors after a retry that fixed every error: %v, want it gone", out, err)
	}
	if got := embedIDs(t, out); !slices.Equal(got, []string{"big.png", "good.png"}) {
		t.Errorf("ids %q, want big.png, good.png", got)
	}
	runCounted(t, summary{0, 0, 2}, append([]string{"embed", "-o", out, root}, model...)...)
}
