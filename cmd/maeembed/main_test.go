package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/maeembed/maeembed/sinks"
)

const fixtures = "../../mae/testdata/fixtures"

// maeembed runs the command in-process and returns its exit code and
// stderr.
func maeembed(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, stderr := maeembed(t, args...)
	if code != 0 {
		t.Fatalf("maeembed %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return out
}

func npy(t *testing.T, path string) ([]int, []float32) {
	t.Helper()
	shape, data, err := sinks.ReadNpyFloat32(path)
	if err != nil {
		t.Fatal(err)
	}
	return shape, data
}

func maxAbs(t *testing.T, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	m := 0.0
	for i := range got {
		d := float64(got[i] - want[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

// embed --format npy on the fixture PNGs gives the PyTorch reference's
// embeddings, for every pool and both checkpoint layouts.
func TestEmbedNpyMatchesReference(t *testing.T) {
	for _, cfg := range []string{"tiny32", "small48"} {
		dir := filepath.Join(fixtures, cfg)
		for _, model := range [][]string{{"--model", filepath.Join(dir, "model.pth"), "--config", filepath.Join(dir, "hf", "config.json")}, {"-m", filepath.Join(dir, "hf")}} {
			for _, pool := range []string{"mean", "cls", "tokens"} {
				out := t.TempDir()
				args := append([]string{"embed"}, model...)
				mustRun(t, append(args, "--pool", pool, "--format", "npy", "--resize", "none", "--batch-size", "2", "-o", out, filepath.Join(dir, "images"))...)
				shape, got := npy(t, filepath.Join(out, "embeddings.npy"))
				wshape, want := npy(t, filepath.Join(dir, "embed_"+pool+".npy"))
				if len(shape) != len(wshape) {
					t.Fatalf("%s %s: shape %v, want %v", cfg, pool, shape, wshape)
				}
				if d := maxAbs(t, got, want); d > 1e-4 {
					t.Errorf("%s pool %s: max diff %g", cfg, pool, d)
				}
				tbl, _, err := sinks.ReadParquet(filepath.Join(out, "metadata.parquet"))
				if err != nil {
					t.Fatal(err)
				}
				ids := tbl.Column(0).Data().Chunk(0).(*array.String)
				if tbl.NumRows() != 3 || ids.Value(0) != "img_000.png" || ids.Value(2) != "img_002.png" {
					t.Errorf("metadata ids wrong: %v rows, first %q", tbl.NumRows(), ids.Value(0))
				}
				tbl.Release()
			}
		}
	}
}

// The Parquet output holds the same vectors as the npy output, with the
// contract's metadata, and a rerun into it resumes without duplicates.
func TestEmbedParquetAndResume(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny32")
	out, outNpy := t.TempDir(), t.TempDir()
	imgs := filepath.Join(dir, "images")
	model := []string{"-m", filepath.Join(dir, "hf")}
	mustRun(t, append([]string{"embed", "--format", "npy", "--resize", "none", "-o", outNpy, imgs}, model...)...)
	_, want := npy(t, filepath.Join(outNpy, "embeddings.npy"))
	mustRun(t, append([]string{"embed", "--resize", "none", "-o", out, imgs}, model...)...)
	parts, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
	if len(parts) != 1 {
		t.Fatalf("want one part file, got %v", parts)
	}
	tbl, meta, err := sinks.ReadParquet(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	for _, k := range []string{"maeembed.model", "maeembed.pool", "maeembed.preprocess", "maeembed.version", "maeembed.precision"} {
		if meta[k] == "" {
			t.Errorf("file metadata %s missing (%v)", k, meta)
		}
	}
	emb := tbl.Column(1).Data().Chunk(0).(*array.FixedSizeList)
	vals := emb.ListValues().(*array.Float32).Float32Values()
	if d := maxAbs(t, vals, want); d != 0 {
		t.Errorf("parquet and npy embeddings differ by %g", d)
	}
	// Resume: a second run finds everything done and writes nothing new.
	mustRun(t, append([]string{"embed", "--resize", "none", "-o", out, imgs}, model...)...)
	parts2, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
	if len(parts2) != 1 {
		t.Errorf("rerun wrote more part files: %v", parts2)
	}
}

// reconstruct with the reference's noise reproduces its masks, predictions
// and per-image losses.
func TestReconstructNpyMatchesReference(t *testing.T) {
	for _, cfg := range []string{"tiny32", "small48"} {
		dir := filepath.Join(fixtures, cfg)
		out := t.TempDir()
		mustRun(t, "reconstruct", "-m", filepath.Join(dir, "hf"), "--mask-noise", filepath.Join(dir, "noise.npy"),
			"--format", "npy", "--resize", "none", "-o", out, filepath.Join(dir, "images"))
		for _, name := range []string{"pred", "mask", "loss"} {
			_, got := npy(t, filepath.Join(out, name+".npy"))
			_, want := npy(t, filepath.Join(dir, name+".npy"))
			if d := maxAbs(t, got, want); d > 1e-4 {
				t.Errorf("%s %s: max diff %g", cfg, name, d)
			}
		}
		// norm_pix_loss targets.
		out2 := t.TempDir()
		mustRun(t, "reconstruct", "-m", filepath.Join(dir, "hf"), "--mask-noise", filepath.Join(dir, "noise.npy"), "--norm-pix-loss",
			"--format", "npy", "--resize", "none", "-o", out2, filepath.Join(dir, "images"))
		_, got := npy(t, filepath.Join(out2, "loss.npy"))
		_, want := npy(t, filepath.Join(dir, "loss_normpix.npy"))
		if d := maxAbs(t, got, want); d > 1e-4 {
			t.Errorf("%s norm-pix loss: max diff %g", cfg, d)
		}
	}
}

// The same seed gives the same masks whatever the batch size.
func TestReconstructSeedIndependentOfBatching(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny32")
	var masks [][]float32
	for _, bs := range []string{"1", "3"} {
		out := t.TempDir()
		mustRun(t, "reconstruct", "-m", filepath.Join(dir, "hf"), "--seed", "7", "--batch-size", bs,
			"--resize", "none", "-o", out, filepath.Join(dir, "images"))
		_, m := npy(t, filepath.Join(out, "mask.npy"))
		masks = append(masks, m)
	}
	if maxAbs(t, masks[0], masks[1]) != 0 {
		t.Error("masks depend on the batch size")
	}
}

// Each bad input ends with one clear error naming the file and the problem,
// a non-zero exit, no panic and no visible partial output.
func TestBadInputs(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	small := filepath.Join(fixtures, "small48")
	tmp := t.TempDir()
	full, err := os.ReadFile(filepath.Join(tiny, "model.pth"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(tmp, "truncated.pth")
	os.WriteFile(truncated, full[:len(full)/2], 0o644)
	garbage := filepath.Join(tmp, "garbage.pth")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a checkpoint "), 100), 0o644)
	shortNoise := filepath.Join(tmp, "noise.npy")
	writeNpy(t, shortNoise, []int{3, 5}, make([]float32, 15))
	imgs := filepath.Join(tiny, "images")
	cases := []struct {
		name string
		args []string
		want []string // substrings of the error line
	}{
		{"truncated checkpoint", []string{"embed", "-m", truncated, "--config", filepath.Join(tiny, "hf", "config.json"), imgs}, []string{"truncated.pth"}},
		{"not a checkpoint", []string{"embed", "-m", garbage, imgs}, []string{"garbage.pth"}},
		{"config contradicts shapes", []string{"embed", "-m", filepath.Join(tiny, "model.pth"), "--config", filepath.Join(small, "hf", "config.json"), imgs}, []string{"model.pth", "shape"}},
		{"another architecture", []string{"embed", "-m", filepath.Join(tmp, "other.pth"), imgs}, []string{"other.pth"}},
		{"mask noise of the wrong shape", []string{"reconstruct", "-m", filepath.Join(tiny, "hf"), "--mask-noise", shortNoise, "--resize", "none", imgs}, []string{"noise.npy", "[3 5]", "16"}},
		{"wrongly sized image", []string{"embed", "-m", filepath.Join(tiny, "hf"), "--resize", "none", filepath.Join(tiny, "images_bad", "wrong_size.png")}, []string{"wrong_size.png", "40x40", "32x32"}},
		{"non-square image", []string{"embed", "-m", filepath.Join(tiny, "hf"), "--resize", "none", filepath.Join(tiny, "images_bad", "nonsquare.png")}, []string{"nonsquare.png", "48x32"}},
		{"reconstruct without decoder", []string{"reconstruct", "-m", filepath.Join(tiny, "encoder.pth"), "--config", filepath.Join(tiny, "hf", "config.json"), imgs}, []string{"encoder.pth", "decoder"}},
		{"unknown pool", []string{"embed", "-m", filepath.Join(tiny, "hf"), "--pool", "max", imgs}, []string{"max"}},
	}
	// A state dict of some other network.
	writeOtherCheckpoint(t, filepath.Join(tmp, "other.pth"), full)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			code, _, stderr := maeembed(t, append(tc.args, "-o", out)...)
			if code == 0 {
				t.Fatalf("exit 0, want failure\n%s", stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "maeembed ") {
				t.Fatalf("last stderr line is not the error: %q", last)
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("error %q does not mention %q", last, w)
				}
			}
			if strings.Contains(stderr, "panic") {
				t.Errorf("panic: %s", stderr)
			}
			// Nothing visible but an errors folder.
			ents, _ := os.ReadDir(out)
			for _, e := range ents {
				if e.Name() != "errors" {
					t.Errorf("output %s left behind", e.Name())
				}
			}
		})
	}
}

// writeOtherCheckpoint makes a torch zip checkpoint whose tensors belong to
// another network, by renaming the MAE tensors inside the fixture's zip.
func writeOtherCheckpoint(t *testing.T, path string, mae []byte) {
	t.Helper()
	// Replacing the pickle's names keeps the zip valid only if lengths match:
	// "patch_embed" → "patch_embyd" keeps every offset.
	b := bytes.ReplaceAll(mae, []byte("patch_embed."), []byte("patch_embyd."))
	if bytes.Equal(b, mae) {
		t.Fatal("fixture has no patch_embed tensor")
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A mix of good and bad files: good ones are written, bad ones become error
// rows, the run exits 0; --fail-on-error makes it non-zero.
func TestMixedInputsAndFailOnError(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	out := t.TempDir()
	args := []string{"embed", "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--format", "npy", "-o", out,
		filepath.Join(tiny, "images"), filepath.Join(tiny, "images_bad")}
	mustRun(t, args...)
	shape, _ := npy(t, filepath.Join(out, "embeddings.npy"))
	if shape[0] != 3 {
		t.Errorf("%d rows, want 3", shape[0])
	}
	done, err := sinks.ReadDoneIDs(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 5 {
		t.Errorf("done ids %v, want 3 embedded + 2 errors", done)
	}
	code, _, _ := maeembed(t, append(args[:len(args)-4], "--fail-on-error", "-o", t.TempDir(), filepath.Join(tiny, "images"), filepath.Join(tiny, "images_bad"))...)
	if code == 0 {
		t.Error("--fail-on-error with failed inputs exited 0")
	}
}

// convert writes the Hugging Face layout, which loads back to the same
// embeddings; inspect describes a checkpoint.
func TestConvertAndInspect(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	hf := filepath.Join(t.TempDir(), "hf")
	mustRun(t, "convert", filepath.Join(tiny, "model.pth"), "--config", filepath.Join(tiny, "hf", "config.json"), "-o", hf)
	out := t.TempDir()
	mustRun(t, "embed", "-m", hf, "--resize", "none", "--format", "npy", "-o", out, filepath.Join(tiny, "images"))
	_, got := npy(t, filepath.Join(out, "embeddings.npy"))
	_, want := npy(t, filepath.Join(tiny, "embed_mean.npy"))
	if d := maxAbs(t, got, want); d > 1e-4 {
		t.Errorf("converted model differs by %g", d)
	}
	info := mustRun(t, "inspect", hf)
	for _, w := range []string{"hf-safetensors", "parameters", "\"num_attention_heads\": 4", "blocks.1.attn.qkv.weight"} {
		if !strings.Contains(info, w) {
			t.Errorf("inspect output lacks %q:\n%s", w, info)
		}
	}
}

// A preset name downloads the checkpoint once into the cache (here from a
// local server standing in for the official site) and then works offline.
func TestPresetDownload(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	body, err := os.ReadFile(filepath.Join(tiny, "model.pth"))
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/visualize/mae_visualize_vit_base.pth" {
			http.NotFound(w, r)
			return
		}
		hits++
		w.Write(body)
	}))
	defer srv.Close()
	t.Setenv("MAEEMBED_HUB_URL", srv.URL)
	cache := t.TempDir()
	for i := 0; i < 2; i++ {
		out := t.TempDir()
		mustRun(t, "reconstruct", "-m", "mae_vit_base_patch16", "--cache-dir", cache, "--config", filepath.Join(tiny, "hf", "config.json"),
			"--mask-noise", filepath.Join(tiny, "noise.npy"), "--resize", "none", "-o", out, filepath.Join(tiny, "images"))
		_, got := npy(t, filepath.Join(out, "pred.npy"))
		_, want := npy(t, filepath.Join(tiny, "pred.npy"))
		if d := maxAbs(t, got, want); d > 1e-4 {
			t.Errorf("pred differs by %g", d)
		}
	}
	if hits != 1 {
		t.Errorf("downloaded %d times, want once", hits)
	}
}

func writeNpy(t *testing.T, path string, shape []int, data []float32) {
	t.Helper()
	if err := sinks.WriteNpyFloat32(path, shape, data); err != nil {
		t.Fatal(err)
	}
}

// --norm-pix-loss defaults to the model config's norm_pix_loss; the flag
// overrides it either way.
func TestNormPixLossFollowsConfig(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	hf := filepath.Join(t.TempDir(), "hf")
	os.MkdirAll(hf, 0o755)
	cfg, err := os.ReadFile(filepath.Join(tiny, "hf", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`"norm_pix_loss": false`), []byte(`"norm_pix_loss": true`), 1)
	if !bytes.Contains(cfg, []byte(`"norm_pix_loss": true`)) {
		t.Fatalf("fixture config has no norm_pix_loss key: %s", cfg)
	}
	os.WriteFile(filepath.Join(hf, "config.json"), cfg, 0o644)
	st, _ := os.ReadFile(filepath.Join(tiny, "hf", "model.safetensors"))
	os.WriteFile(filepath.Join(hf, "model.safetensors"), st, 0o644)
	for _, tc := range []struct {
		flag []string
		want string
	}{{nil, "loss_normpix.npy"}, {[]string{"--norm-pix-loss=false"}, "loss.npy"}} {
		out := t.TempDir()
		args := append([]string{"reconstruct", "-m", hf, "--mask-noise", filepath.Join(tiny, "noise.npy"), "--resize", "none", "-o", out, filepath.Join(tiny, "images")}, tc.flag...)
		mustRun(t, args...)
		_, got := npy(t, filepath.Join(out, "loss.npy"))
		_, want := npy(t, filepath.Join(tiny, tc.want))
		if d := maxAbs(t, got, want); d > 1e-4 {
			t.Errorf("flags %v: loss differs from %s by %g", tc.flag, tc.want, d)
		}
	}
}

// A listed file that cannot be read becomes one error row with stage
// "read"; the others are embedded.
func TestReadErrorRow(t *testing.T) {
	tiny := filepath.Join(fixtures, "tiny32")
	imgs, _ := filepath.Abs(filepath.Join(tiny, "images"))
	list := filepath.Join(t.TempDir(), "inputs.txt")
	missing := filepath.Join(t.TempDir(), "gone.png")
	os.WriteFile(list, []byte(filepath.Join(imgs, "img_000.png")+"\n"+missing+"\n"+filepath.Join(imgs, "img_001.png")+"\n"), 0o644)
	out := t.TempDir()
	mustRun(t, "embed", "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--format", "npy", "-o", out, list)
	shape, _ := npy(t, filepath.Join(out, "embeddings.npy"))
	if shape[0] != 2 {
		t.Errorf("%d rows, want 2", shape[0])
	}
	parts, _ := filepath.Glob(filepath.Join(out, "errors", "part-*.parquet"))
	if len(parts) != 1 {
		t.Fatalf("error parts %v", parts)
	}
	tbl, _, err := sinks.ReadParquet(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != 1 {
		t.Fatalf("%d error rows, want 1", tbl.NumRows())
	}
	for i, want := range map[int]string{0: missing, 1: "read"} {
		if got := tbl.Column(i).Data().Chunk(0).(*array.String).Value(0); got != want {
			t.Errorf("error column %d = %q, want %q", i, got, want)
		}
	}
}

// Each PNG's first panel is its own input image, also when the batch
// buffers that carry the inputs to the writer are reused (3 images in
// batches of 2, then of 1).
func TestReconstructPNGShowsItsOwnInput(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny32")
	for _, bs := range []string{"2", "1"} {
		out := t.TempDir()
		mustRun(t, "reconstruct", "-m", filepath.Join(dir, "hf"), "--format", "png", "--batch-size", bs,
			"--resize", "none", "-o", out, filepath.Join(dir, "images"))
		for _, name := range []string{"img_000.png", "img_001.png", "img_002.png"} {
			in, got := decodePNG(t, filepath.Join(dir, "images", name)), decodePNG(t, filepath.Join(out, name+".png"))
			b := in.Bounds()
			worst := 0
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					r0, g0, b0, _ := in.At(x, y).RGBA()
					r1, g1, b1, _ := got.At(x, y).RGBA()
					for _, d := range []int{int(r0>>8) - int(r1>>8), int(g0>>8) - int(g1>>8), int(b0>>8) - int(b1>>8)} {
						worst = max(worst, d, -d)
					}
				}
			}
			if worst > 1 { // normalise, de-normalise, truncate: off by one at most
				t.Errorf("batch size %s: %s's first panel differs from its input by up to %d", bs, name, worst)
			}
		}
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// --precision runs the model in bf16 or int8, records it in the metadata,
// and stays close to fp32; an unknown value is a usage error naming the
// choices.
func TestEmbedPrecision(t *testing.T) {
	dir := filepath.Join(fixtures, "tiny32")
	imgs := filepath.Join(dir, "images")
	model := []string{"-m", filepath.Join(dir, "hf"), "--format", "npy", "--resize", "none"}
	ref := t.TempDir()
	mustRun(t, append([]string{"embed", "-o", ref, imgs}, model...)...)
	_, want := npy(t, filepath.Join(ref, "embeddings.npy"))
	for _, prec := range []string{"bf16", "int8"} {
		out := t.TempDir()
		mustRun(t, append([]string{"embed", "--precision", prec, "-o", out, imgs}, model...)...)
		_, got := npy(t, filepath.Join(out, "embeddings.npy"))
		if d := maxAbs(t, got, want); d == 0 || d > 0.05 {
			t.Errorf("%s: embeddings differ from fp32 by %g", prec, d)
		}
		tbl, kv, err := sinks.ReadParquet(filepath.Join(out, "metadata.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		tbl.Release()
		if kv["maeembed.precision"] != prec {
			t.Errorf("%s: metadata maeembed.precision = %q", prec, kv["maeembed.precision"])
		}
	}
	code, _, stderr := maeembed(t, append([]string{"embed", "--precision", "fp16", "-o", t.TempDir(), imgs}, model...)...)
	if code != 2 || !strings.Contains(stderr, "fp32, bf16, int8") {
		t.Errorf("--precision fp16: exit %d, stderr %q; want a usage error naming the choices", code, stderr)
	}
	// Into an existing output, it is refused before the output is read.
	code, _, stderr = maeembed(t, append([]string{"embed", "--precision", "fp16", "-o", ref, imgs}, model...)...)
	if code != 2 || strings.Contains(stderr, "resuming") {
		t.Errorf("--precision fp16 into an existing output: exit %d, stderr %q; want a usage error before resuming", code, stderr)
	}
}
