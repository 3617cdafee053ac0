package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/mae/weights"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/sources"
)

// Outputs shared between runs: a resume must continue the same run (same
// model however spelled, same inputs, same format and sharding), and
// anything else is refused with a message naming the remedy, never a
// silent skip or a second copy of an id.

// tinyImages writes the tiny fixture images named names into dir, each a
// different image.
func tinyImages(t *testing.T, dir string, names ...string) {
	t.Helper()
	for i, n := range names {
		copyFile(t, filepath.Join(fixtures, "tiny32", "images", []string{"img_000.png", "img_001.png", "img_002.png"}[i%3]), filepath.Join(dir, n))
	}
}

func embedArgs(out string, more ...string) []string {
	return append([]string{"embed", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "none", "-o", out}, more...)
}

// The model path spelled with a trailing slash, or through a symlink,
// resumes the run.
func TestResumeModelSpelledOtherwise(t *testing.T) {
	root := t.TempDir()
	in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
	tinyImages(t, in, "a.png", "b.png")
	hf, err := filepath.Abs(filepath.Join(fixtures, "tiny32", "hf"))
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "model")
	if err := os.Symlink(hf, link); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "embed", "-m", hf, "--resize", "none", "-o", out, filepath.Join(in, "a.png"), filepath.Join(in, "b.png"))
	for _, m := range []string{hf + "/", link, filepath.Join(fixtures, "tiny32", "hf")} {
		code, _, stderr := maeembed(t, "embed", "-m", m, "--resize", "none", "-o", out, filepath.Join(in, "a.png"), filepath.Join(in, "b.png"))
		if code != 0 || !strings.Contains(stderr, "nothing to do") {
			t.Errorf("resume with -m %s: exit %d\n%s", m, code, stderr)
		}
	}
}

// d1/x.png and d2/x.png have the same id: a run over d2 into d1's output
// would skip x.png as done. It is refused, naming the inputs and the
// remedy; the same inputs spelled otherwise resume.
func TestResumeOtherInputsRefused(t *testing.T) {
	root := t.TempDir()
	d1, d2, out := filepath.Join(root, "d1"), filepath.Join(root, "d2"), filepath.Join(root, "out")
	tinyImages(t, d1, "x.png", "y.png")
	tinyImages(t, d2, "z.png", "x.png")
	mustRun(t, embedArgs(out, d1)...)
	code, _, stderr := maeembed(t, embedArgs(out, d2)...)
	if code == 0 || !strings.Contains(stderr, d1) || !strings.Contains(stderr, d2) || !strings.Contains(stderr, "own output directory") {
		t.Errorf("a run over other inputs into %s: exit %d, want a refusal naming both inputs and the remedy\n%s", out, code, stderr)
	}
	wd, _ := os.Getwd()
	rel, _ := filepath.Rel(wd, d1)
	for _, in := range []string{d1 + "/", rel} {
		code, _, stderr := maeembed(t, embedArgs(out, in)...)
		if code != 0 || !strings.Contains(stderr, "nothing to do") {
			t.Errorf("resume with input %s: exit %d\n%s", in, code, stderr)
		}
	}
	// Each input set in its own directory: every image embedded.
	out2 := filepath.Join(root, "out2")
	mustRun(t, embedArgs(out2, d2)...)
	if got := visibleIDs(t, out2); got["x.png"] != 1 || got["z.png"] != 1 {
		t.Errorf("ids of d2: %v", got)
	}
}

// One directory holds one format: npy after Parquet (whose ids a resume
// would count as done, writing no embeddings.npy) and Parquet after npy
// are refused.
func TestOutputFormatsDoNotMix(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "in")
	tinyImages(t, in, "a.png", "b.png", "c.png")
	for _, tc := range []struct{ first, then string }{{"parquet", "npy"}, {"npy", "parquet"}, {"parquet", "arrow"}} {
		out := filepath.Join(root, tc.first+"-then-"+tc.then)
		mustRun(t, embedArgs(out, "--format", tc.first, in)...)
		code, _, stderr := maeembed(t, embedArgs(out, "--format", tc.then, in)...)
		if code == 0 || !strings.Contains(stderr, "holds "+tc.first+" output") || !strings.Contains(stderr, "another output directory") {
			t.Errorf("%s after %s: exit %d, want a refusal naming the formats and the remedy\n%s", tc.then, tc.first, code, stderr)
		}
		if tc.then == "npy" {
			if _, err := os.Stat(filepath.Join(out, "metadata.parquet")); err == nil {
				t.Errorf("%s: an npy set was written beside the Parquet parts", out)
			}
		}
	}
	// npy's own resume: everything done, nothing written twice.
	out := filepath.Join(root, "npy-then-npy")
	mustRun(t, embedArgs(out, "--format", "npy", in)...)
	if _, _, stderr := maeembed(t, embedArgs(out, "--format", "npy", in)...); !strings.Contains(stderr, "nothing to do") {
		t.Errorf("npy resume:\n%s", stderr)
	}
}

// While a run of one kind (format, shard count) writes into a directory,
// a run of another kind is refused: --shard 0/3 beside a live 0/2 run
// would take id 0 again, an npy run would mix formats. Another shard of
// the same count goes ahead.
func TestOutputLiveRunOfAnotherKind(t *testing.T) {
	root := t.TempDir()
	in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
	tinyImages(t, in, "a.png", "b.png", "c.png", "d.png")
	// The live run: what a running "--shard 1/2" holds (flocks are per
	// open file, so this process holding it is as good as another).
	release, _, err := sinks.TakeOutputKind(out, "embed-parquet-2-shards")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for _, args := range [][]string{{"--shard", "0/3"}, {"--shard", "0/1"}, {"--format", "npy", "--shard", "0/2"}} {
		code, _, stderr := maeembed(t, embedArgs(out, append(args, in)...)...)
		if code == 0 || !strings.Contains(stderr, "another kind (embed-parquet-2-shards") {
			t.Errorf("%v beside a live parquet 0/2 run: exit %d, want a refusal\n%s", args, code, stderr)
		}
	}
	// A reconstruct shard of the same format and count would mix
	// reconstructions into the embeddings: the live embed run has
	// published nothing yet, so only its kind can tell.
	code, _, stderr := maeembed(t, "reconstruct", "-m", filepath.Join(fixtures, "tiny32", "hf"), "--resize", "none", "--format", "parquet", "--shard", "0/2", "-o", out, in)
	if code == 0 || !strings.Contains(stderr, "another kind (embed-parquet-2-shards; this run: reconstruct-parquet-2-shards)") {
		t.Errorf("reconstruct 0/2 beside a live embed 0/2 run: exit %d, want a refusal\n%s", code, stderr[max(0, len(stderr)-600):])
	}
	mustRun(t, embedArgs(out, "--shard", "0/2", in)...)
	release()
	// Once it is gone, a run of another kind may resume the directory.
	mustRun(t, embedArgs(out, in)...)
	ids := visibleIDs(t, out)
	checkNoDuplicates(t, ids, "after shard 0/2 and a full run")
	if len(ids) != 4 {
		t.Errorf("%d ids, want 4: %v", len(ids), ids)
	}
}

// --resume=false into a directory with outputs would write every id a
// second time: refused, naming the remedy. Into an empty one it runs.
func TestNoResumeRefusesNonEmptyOutput(t *testing.T) {
	root := t.TempDir()
	in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
	tinyImages(t, in, "a.png", "b.png")
	mustRun(t, embedArgs(out, "--resume=false", in)...)
	code, _, stderr := maeembed(t, embedArgs(out, "--resume=false", in)...)
	if code == 0 || !strings.Contains(stderr, "--resume=false would write their ids a second time") || !strings.Contains(stderr, "empty output directory") {
		t.Errorf("--resume=false into a non-empty output: exit %d\n%s", code, stderr)
	}
	ids := visibleIDs(t, out)
	checkNoDuplicates(t, ids, "after --resume=false twice")
	if len(ids) != 2 {
		t.Errorf("%d ids, want 2", len(ids))
	}
}

// An existing file as -o, or on the way to it, is refused, by the run and
// its dry run alike, as a usage error naming --output (not a bare "not a
// directory").
func TestOutputIsAFile(t *testing.T) {
	root := t.TempDir()
	in, out := filepath.Join(root, "in"), filepath.Join(root, "emb.parquet")
	tinyImages(t, in, "a.png")
	if err := os.WriteFile(out, []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--dry-run"}} {
		code, _, stderr := maeembed(t, embedArgs(out, append(extra, in)...)...)
		if code != 2 || !strings.Contains(stderr, "--output "+out+" is a file") {
			t.Errorf("embed %v -o FILE: exit %d, want 2\n%s", extra, code, stderr)
		}
		// A path under the file: no directory can be made there either.
		under := filepath.Join(out, "b", "c")
		code, _, stderr = maeembed(t, embedArgs(under, append(extra, in)...)...)
		if code != 2 || !strings.Contains(stderr, "--output "+under+": "+out+" is a file") {
			t.Errorf("embed %v -o FILE/b/c: exit %d, want 2\n%s", extra, code, stderr)
		}
	}
	if b, _ := os.ReadFile(out); string(b) != "a file" {
		t.Errorf("the file became %q", b)
	}
}

// reconstruct resumes exactly: a run that did half the inputs (here shard
// 0/2), then a rerun over all of them, holds every input once with the
// reference's masks, predictions and losses (each mask depends on the
// input's place in the whole sequence, which resume keeps).
func TestReconstructResumes(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny32")
	out := t.TempDir()
	args := func(more ...string) []string {
		return append([]string{"reconstruct", "-m", filepath.Join(dir, "hf"), "--mask-noise", filepath.Join(dir, "noise.npy"),
			"--format", "npy", "--resize", "none", "--batch-size", "2", "-o", out}, append(more, filepath.Join(dir, "images"))...)
	}
	mustRun(t, args("--shard", "0/2")...)
	first := len(metadataIDs(t, out))
	ents, _ := os.ReadDir(filepath.Join(dir, "images"))
	runCounted(t, summary{len(ents) - first, 0, first}, args()...) // resumed
	ids := metadataIDs(t, out)
	if len(ids) != len(ents) {
		t.Fatalf("%d rows after resume, want %d", len(ids), len(ents))
	}
	for _, name := range []string{"pred", "mask", "loss"} {
		shape, got := npy(t, filepath.Join(out, name+".npy"))
		_, want := npy(t, filepath.Join(dir, name+".npy"))
		per := len(got) / shape[0]
		for row, id := range ids {
			ref := -1
			for i, e := range ents {
				if e.Name() == id {
					ref = i
				}
			}
			if ref < 0 {
				t.Fatalf("unknown id %q", id)
			}
			if d := maxAbs(t, got[row*per:(row+1)*per], want[ref*per:(ref+1)*per]); d > 1e-4 {
				t.Errorf("%s of %s after resume: max diff %g from the reference", name, id, d)
			}
		}
	}
}

// A resumed reconstruct --format png skips the ids whose PNG the first run
// published: they are counted as skipped and their files are left as they
// were (not drawn again and renamed over).
func TestReconstructPNGResumeSkipsPublished(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny32")
	out := t.TempDir()
	args := func(more ...string) []string {
		return append([]string{"reconstruct", "-m", filepath.Join(dir, "hf"), "--format", "png", "--resize", "none",
			"--batch-size", "2", "-o", out}, append(more, filepath.Join(dir, "images"))...)
	}
	mustRun(t, args("--shard", "0/2")...)
	first := map[string]os.FileInfo{}
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".png") {
			first[p], _ = os.Stat(p)
		}
		return nil
	})
	ents, _ := os.ReadDir(filepath.Join(dir, "images"))
	if len(first) == 0 || len(first) >= len(ents) {
		t.Fatalf("shard 0/2 wrote %d of %d PNGs", len(first), len(ents))
	}
	runCounted(t, summary{len(ents) - len(first), 0, len(first)}, args()...) // resumed
	for p, before := range first {
		after, err := os.Stat(p)
		if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("%s was written again on resume (%v)", p, err)
		}
	}
	for _, e := range ents {
		if _, err := os.Stat(sinks.PNGPath(out, e.Name())); err != nil {
			t.Errorf("after resume: %v", err)
		}
	}
}

// A directory of reconstruct's PNG panels holds one format too: an npy or
// Parquet reconstruct into it is refused (it took the panels' ids for done
// and wrote nothing), and so is --resume=false (it would draw every panel
// again over the published ones).
func TestReconstructPNGOutputIsAFormat(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny32")
	out := t.TempDir()
	args := func(more ...string) []string {
		return append([]string{"reconstruct", "-m", filepath.Join(dir, "hf"), "--resize", "none", "-o", out},
			append(more, filepath.Join(dir, "images"))...)
	}
	mustRun(t, args("--format", "png")...)
	for _, more := range [][]string{{"--format", "npy"}, {"--format", "parquet"}, {"--format", "npy", "--dry-run"}} {
		code, _, stderr := maeembed(t, args(more...)...)
		if code == 0 || !strings.Contains(stderr, "holds png output") {
			t.Errorf("%v into a PNG output: exit %d, want a refusal naming png\n%s", more, code, stderr)
		}
	}
	code, _, stderr := maeembed(t, args("--format", "png", "--resume=false")...)
	if code == 0 || !strings.Contains(stderr, "--resume=false would write their ids a second time") {
		t.Errorf("--resume=false into a PNG output: exit %d, want a refusal\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "metadata.parquet")); err == nil {
		t.Error("an npy set was written beside the PNG panels")
	}
}

// reconstruct --dry-run refuses an output that the run would refuse to
// continue (another seed, mask ratio or precision), with the run's exit
// code, in every format; with the output's own settings it lists nothing
// left to do. It listed 0 inputs and exited 0 where the run refused.
func TestReconstructDryRunChecksSettings(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny32")
	for _, format := range []string{"npy", "parquet", "png"} {
		out := t.TempDir()
		args := func(more ...string) []string {
			return append([]string{"reconstruct", "-m", filepath.Join(dir, "hf"), "--resize", "none", "--format", format, "-o", out},
				append(more, filepath.Join(dir, "images"))...)
		}
		mustRun(t, args()...)
		for _, more := range [][]string{{"--seed", "7"}, {"--mask-ratio", "0.5"}, {"--precision", "int8"}} {
			code, stdout, stderr := maeembed(t, args(append(more, "--dry-run")...)...)
			run, _, _ := maeembed(t, args(more...)...)
			if code == 0 || code != run || stdout != "" || !strings.Contains(stderr, "use another output directory") {
				t.Errorf("%s: dry run %v: exit %d (the run %d), listed %q, want the run's refusal\n%s", format, more, code, run, stdout, stderr)
			}
		}
		if code, stdout, stderr := maeembed(t, args("--dry-run")...); code != 0 || stdout != "" {
			t.Errorf("%s: dry run with the output's settings: exit %d, listed %q, want nothing left\n%s", format, code, stdout, stderr)
		}
	}
}

// Masks drawn from --seed and masks given by --mask-noise do not mix in
// one output: the noise rows are recorded (maeembed.mask_noise, their
// fingerprint), so a resume with the other kind, or other rows, is
// refused, dry run included; the same rows resume.
func TestReconstructMaskNoiseRecorded(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny32")
	noise := filepath.Join(dir, "noise.npy")
	for _, format := range []string{"npy", "parquet", "png"} {
		for _, first := range []string{"seed", "noise"} {
			out := t.TempDir()
			args := func(kind string, more ...string) []string {
				a := []string{"reconstruct", "-m", filepath.Join(dir, "hf"), "--resize", "none", "--format", format, "-o", out}
				if kind == "noise" {
					a = append(a, "--mask-noise", noise)
				}
				return append(a, append(more, filepath.Join(dir, "images"))...)
			}
			mustRun(t, args(first, "--shard", "0/2")...)
			other := map[string]string{"seed": "noise", "noise": "seed"}[first]
			for _, more := range [][]string{{"--dry-run"}, nil} {
				code, _, stderr := maeembed(t, args(other, more...)...)
				if code == 0 || !strings.Contains(stderr, "maeembed.mask_noise") {
					t.Errorf("%s: %s masks after %s masks %v: exit %d, want a refusal naming maeembed.mask_noise\n%s", format, other, first, more, code, stderr)
				}
			}
			mustRun(t, args(first)...) // the same kind resumes
		}
	}
}

// metadataIDs are the ids of an npy set, in row order.
func metadataIDs(t *testing.T, dir string) []string {
	t.Helper()
	tbl, _, err := sinks.ReadParquet(filepath.Join(dir, "metadata.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	var ids []string
	for _, c := range tbl.Column(0).Data().Chunks() {
		s := c.(*array.String)
		for i := 0; i < s.Len(); i++ {
			ids = append(ids, s.Value(i))
		}
	}
	return ids
}

// The checkpoint behind one --model path replaced by other weights (a
// retrain into the same directory): a run into the first run's output is
// refused naming both fingerprints; the same weights resume.
func TestResumeOtherWeightsRefused(t *testing.T) {
	root := t.TempDir()
	in, out, mdl := filepath.Join(root, "in"), filepath.Join(root, "out"), filepath.Join(root, "mdl")
	tinyImages(t, in, "a.png", "b.png")
	hf := filepath.Join(fixtures, "tiny32", "hf")
	copyFile(t, filepath.Join(hf, "config.json"), filepath.Join(mdl, "config.json"))
	copyFile(t, filepath.Join(hf, "model.safetensors"), filepath.Join(mdl, "model.safetensors"))
	args := []string{"embed", "-m", mdl, "--resize", "none", "-o", out, in}
	mustRun(t, args...)
	parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
	if len(parts) == 0 {
		t.Fatalf("no part in %s", out)
	}
	tbl, kv, err := sinks.ReadParquet(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	tbl.Release()
	first := kv["maeembed.weights"]
	if len(first) != 16 {
		t.Fatalf("maeembed.weights = %q, want 16 hex digits", first)
	}
	if code, _, stderr := maeembed(t, args...); code != 0 || !strings.Contains(stderr, "nothing to do") {
		t.Errorf("resume with the same weights: exit %d\n%s", code, stderr)
	}

	// Other weights at the same path: one value of one tensor changed.
	st := filepath.Join(mdl, "model.safetensors")
	ts, err := weights.ReadSafetensorsFile(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		x.Data[0] += 0.5
		break
	}
	if err := weights.SaveSafetensors(st, ts, nil); err != nil {
		t.Fatal(err)
	}
	tinyImages(t, in, "a.png", "b.png", "c.png")
	// The dry run, which otherwise reads only the checkpoint's headers,
	// reads the weights here to refuse them as the run does.
	dry, stdout, dryErr := maeembed(t, append(args, "--dry-run")...)
	code, _, stderr := maeembed(t, args...)
	if code == 0 || !strings.Contains(stderr, first) || !strings.Contains(stderr, "maeembed.weights") || !strings.Contains(stderr, "another output directory") {
		t.Fatalf("a run with other weights into %s: exit %d, want a refusal naming the fingerprints and the remedy\n%s", out, code, stderr)
	}
	if dry != code || stdout != "" || !strings.Contains(dryErr, first) {
		t.Errorf("dry run with other weights: exit %d (the run %d), listed %q\n%s", dry, code, stdout, dryErr)
	}
	if got := visibleIDs(t, out); got["c.png"] != 0 {
		t.Errorf("the refused run wrote c.png: %v", got)
	}
}

// --dry-run refuses the output the run would refuse, with the run's exit
// code: a live run of another kind, a live run of the same shard, another
// format. It takes no lock (a run goes ahead after it) and leaves the
// directory as it was.
func TestDryRunChecksOutputLocks(t *testing.T) {
	root := t.TempDir()
	in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
	tinyImages(t, in, "a.png", "b.png")
	dry := func(want string, args ...string) {
		t.Helper()
		args = embedArgs(out, append(args, in)...)
		before, _ := os.ReadDir(out)
		code, stdout, stderr := maeembed(t, append(args, "--dry-run")...)
		if code == 0 || stdout != "" || !strings.Contains(stderr, want) {
			t.Errorf("dry run %v: exit %d, listed %q, want a refusal naming %q\n%s", args, code, stdout, want, stderr)
		}
		if after, _ := os.ReadDir(out); len(after) != len(before) {
			t.Errorf("dry run %v: %d entries in the output before, %d after", args, len(before), len(after))
		}
		if run, _, _ := maeembed(t, args...); run != code {
			t.Errorf("dry run %v: exit %d, the run %d", args, code, run)
		}
	}
	// What a live "--shard 1/2" run holds (flocks are per open file, so
	// this process holding them is as good as another).
	release, err := engine.TakeOutputDir(engine.OutputDir{Dir: out, Format: "parquet", Shard: sources.Shard{Index: 1, Count: 2}, Resume: true, Command: "embed"})
	if err != nil {
		t.Fatal(err)
	}
	dry("another kind (embed-parquet-2-shards", "--shard", "0/3")
	dry("another kind (embed-parquet-2-shards", "--format", "npy")
	dry("another running process (shard-1-of-2)", "--shard", "1/2")
	// Another shard of the same count may run beside it.
	if code, stdout, stderr := maeembed(t, embedArgs(out, "--dry-run", "--shard", "0/2", in)...); code != 0 || stdout == "" {
		t.Errorf("dry run of shard 0/2 beside 1/2: exit %d, listed %q\n%s", code, stdout, stderr)
	}
	release(false)
	// The dry runs held nothing: the run goes ahead.
	mustRun(t, embedArgs(out, in)...)
	dry("holds parquet output", "--format", "arrow")
}

// reconstruct's error parts carry its own metadata (mask ratio, seed,
// patches: what its outputs carry), not an embedding run's pool and dim;
// a rerun resumes such an output (skipping the error row as done), and a
// rerun with another mask ratio is refused even where only error parts
// record the first one.
func TestReconstructErrorPartsCarryItsMetadata(t *testing.T) {
	root := filepath.Join(t.TempDir(), "in")
	copyFile(t, filepath.Join(fixtures, "tiny32", "images", "img_000.png"), filepath.Join(root, "good.png"))
	if err := os.WriteFile(filepath.Join(root, "bad.jpg"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	args := func(more ...string) []string {
		return append([]string{"reconstruct", "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out}, append(more, root)...)
	}
	runCounted(t, summary{1, 1, 0}, args()...)
	parts, _ := filepath.Glob(filepath.Join(out, "errors", "part-*.parquet"))
	if len(parts) != 1 {
		t.Fatalf("error parts %v, want one", parts)
	}
	tbl, kv, err := sinks.ReadParquet(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	tbl.Release()
	for _, k := range []string{"maeembed.pool", "maeembed.dim"} {
		if v, ok := kv[k]; ok {
			t.Errorf("reconstruct's error part records %s=%q, a key its outputs do not carry", k, v)
		}
	}
	for _, k := range []string{"maeembed.mask_ratio", "maeembed.seed", "maeembed.patches", "maeembed.model", "maeembed.inputs"} {
		if kv[k] == "" {
			t.Errorf("reconstruct's error part lacks %s", k)
		}
	}
	runCounted(t, summary{0, 0, 2}, args()...) // resumed: both done
	// Only the error part remains: it alone tells the mask ratio.
	matches, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
	for _, m := range matches {
		os.Remove(m)
	}
	code, _, stderr := maeembed(t, args("--mask-ratio", "0.5")...)
	if code == 0 || !strings.Contains(stderr, "maeembed.mask_ratio") {
		t.Errorf("rerun with another mask ratio over reconstruct's error parts: exit %d, want a refusal naming maeembed.mask_ratio\n%s", code, stderr)
	}
}

// An npy set is single files, written by one run at a time: shards run
// one after the other into one directory make one set (each appends
// after the rows before it), while a shard beside a live npy run is
// refused, naming both remedies.
func TestNpyShardsOneAfterTheOther(t *testing.T) {
	root := t.TempDir()
	in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
	tinyImages(t, in, "a.png", "b.png", "c.png", "d.png")
	mustRun(t, embedArgs(out, "--format", "npy", "--shard", "0/2", in)...)
	mustRun(t, embedArgs(out, "--format", "npy", "--shard", "1/2", in)...)
	if got, want := strings.Join(metadataIDs(t, out), " "), "a.png c.png b.png d.png"; got != want {
		t.Errorf("ids after shards 0/2 then 1/2: %s, want %s (each shard's in input order)", got, want)
	}
	shape, _, err := sinks.ReadNpyFloat32(filepath.Join(out, "embeddings.npy"))
	if err != nil || len(shape) != 2 || shape[0] != 4 {
		t.Errorf("embeddings.npy: shape %v, err %v; want 4 rows", shape, err)
	}

	// What a live "--format npy --shard 0/2" run holds (flocks are per
	// open file, so this process holding them is as good as another).
	live := filepath.Join(root, "live")
	release, err := engine.TakeOutputDir(engine.OutputDir{Dir: live, Format: "npy", Shard: sources.Shard{Index: 0, Count: 2}, Resume: true, Command: "embed"})
	if err != nil {
		t.Fatal(err)
	}
	defer release(false)
	code, _, stderr := maeembed(t, embedArgs(live, "--format", "npy", "--shard", "1/2", in)...)
	if code == 0 || !strings.Contains(stderr, "another running process (npy)") || !strings.Contains(stderr, "one after the other") {
		t.Errorf("npy shard 1/2 beside a live 0/2 run: exit %d, want a refusal naming the remedies\n%s", code, stderr)
	}
}
