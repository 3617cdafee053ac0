package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/weights"
	"github.com/maeembed/maeembed/sinks"
	"github.com/maeembed/maeembed/stages"
)

// util/lr_sched.adjust_learning_rate: linear warmup, then half-cycle cosine
// to min_lr.
func TestLR(t *testing.T) {
	for _, c := range []struct{ e, want float64 }{
		{0, 0}, {1, 0.25e-3}, {4, 1e-3}, {4 + 6*0.5, 0.5*1e-3 + 0.5*1e-5}, {10, 1e-5},
	} {
		got := LR(c.e, 1e-3, 1e-5, 4, 10)
		if c.e < 4 {
			c.want = 1e-3 * c.e / 4
		} else {
			c.want = 1e-5 + (1e-3-1e-5)*0.5*(1+math.Cos(math.Pi*(c.e-4)/6))
		}
		if math.Abs(got-c.want) > 1e-18 {
			t.Errorf("LR(%v) = %v, want %v", c.e, got, c.want)
		}
	}
	r := Recipe{BLR: 1.5e-4, BatchSize: 64, AccumIter: 4}
	if got := r.PeakLR(); math.Abs(got-1.5e-4*256/256) > 1e-18 {
		t.Errorf("blr 1.5e-4 at effective batch 256: lr %v, want 1.5e-4", got)
	}
}

// timm's rule plus the no-weight-decay names.
func TestDecays(t *testing.T) {
	for _, c := range []struct {
		name  string
		shape []int
		want  bool
	}{
		{"blocks.0.attn.qkv.weight", []int{12, 4}, true},
		{"patch_embed.proj.weight", []int{4, 3, 2, 2}, true},
		{"blocks.0.attn.qkv.bias", []int{12}, false},
		{"blocks.0.norm1.weight", []int{4}, false},
		{"cls_token", []int{1, 1, 4}, false},
		{"mask_token", []int{1, 1, 4}, false},
		{"pos_embed", []int{1, 5, 4}, false},
	} {
		if got := Decays(c.name, c.shape); got != c.want {
			t.Errorf("Decays(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}

func tinyConfig() mae.Config {
	return mae.Config{Name: "t", ImageSize: 32, PatchSize: 8, Channels: 3, Dim: 24, Depth: 1, Heads: 2, MLPDim: 48,
		DecDim: 16, DecDepth: 1, DecHeads: 2, DecMLPDim: 32, Eps: 1e-6, MaskRatio: 0.75}
}

// tinySet is a dataset of n synthetic images, larger than the model input
// so the crops vary.
func tinySet(n int) *Dataset {
	d := &Dataset{Size: 32, Augment: true}
	for k := 0; k < n; k++ {
		img := image.NewNRGBA(image.Rect(0, 0, 48+k, 40))
		for y := 0; y < 40; y++ {
			for x := 0; x < 48+k; x++ {
				img.Set(x, y, color.NRGBA{uint8(x * 5 * (k + 1)), uint8(y * 6), uint8((x + y) * 3), 255})
			}
		}
		d.IDs = append(d.IDs, string(rune('a'+k)))
		d.Images = append(d.Images, img)
	}
	return d
}

func tinyRecipe() Recipe {
	return Recipe{Epochs: 4, WarmupEpochs: 1, BatchSize: 2, AccumIter: 2, BLR: 0.5, WeightDecay: 0.05,
		MaskRatio: 0.75, Seed: 3, Augment: true}
}

func newTiny(t *testing.T, r Recipe) *Trainer {
	t.Helper()
	m, err := mae.New(tinyConfig(), true, r.Seed)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(m, r)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// A run stopped after a checkpoint and resumed ends with bitwise the same
// weights, optimiser state and metrics as an uninterrupted one, with
// gradient accumulation across steps and epochs whose length is not a
// multiple of accum-iter (7 images, batch 2: 3 iterations per epoch).
func TestResumeIsExact(t *testing.T) {
	ds := tinySet(7)
	r := tinyRecipe()
	full := t.TempDir()
	res, err := Run(context.Background(), newTiny(t, r), ds, Options{Output: full, SaveEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != TotalSteps(7, r) || res.Steps == 0 {
		t.Fatalf("%d steps, want %d", res.Steps, TotalSteps(7, r))
	}
	// Interrupted after step 3, i.e. between checkpoints: the checkpoint
	// written on interruption is used, then a second interruption is
	// simulated by deleting the newest checkpoint (as after kill -9).
	part := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Run(ctx, newTiny(t, r), ds, Options{Output: part, SaveEvery: 2, Progress: func(s Status) {
		if s.Step == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("want an interruption, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(part, CheckpointName(3))); err != nil {
		t.Fatalf("no checkpoint at the interruption: %v", err)
	}
	if _, err := Run(context.Background(), newTiny(t, r), ds, Options{Output: part, SaveEvery: 2}); err == nil {
		t.Fatal("a second run into a directory with checkpoints without --resume should fail")
	}
	if _, err := Run(context.Background(), newTiny(t, r), ds, Options{Output: part, SaveEvery: 2, Resume: true}); err != nil {
		t.Fatal(err)
	}
	last := CheckpointName(res.Steps)
	for _, f := range []string{filepath.Join(last, weights.HFSafetensorsFile), filepath.Join(last, optimizerFile), "metrics.csv"} {
		a, err1 := os.ReadFile(filepath.Join(full, f))
		b, err2 := os.ReadFile(filepath.Join(part, f))
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", f, err1, err2)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", f)
		}
	}
	if _, err := os.Stat(filepath.Join(part, "loss.png")); err != nil {
		t.Error("no loss curve:", err)
	}
}

// Resuming from a checkpoint of another model, another recipe, or with a
// corrupt optimiser state is an error that leaves the checkpoint alone.
func TestResumeRefusesForeignOrCorruptCheckpoints(t *testing.T) {
	ds := tinySet(4)
	r := tinyRecipe()
	r.Epochs, r.WarmupEpochs = 2, 0
	out := t.TempDir()
	if _, err := Run(context.Background(), newTiny(t, r), ds, Options{Output: out}); err != nil {
		t.Fatal(err)
	}
	dir, err := LatestCheckpoint(out)
	if err != nil || dir == "" {
		t.Fatalf("latest: %q %v", dir, err)
	}
	// Another architecture.
	c := tinyConfig()
	c.Dim, c.MLPDim = 32, 64
	m, err := mae.New(c, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewTrainer(m, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), other, ds, Options{Output: out, Resume: true}); err == nil || !strings.Contains(err.Error(), "different model") {
		t.Errorf("resume with another model: %v", err)
	} else if !strings.Contains(err.Error(), "hidden_size: checkpoint 24, this run 32") {
		t.Errorf("resume with another model: %v, want the differing hidden_size", err)
	}
	// Another recipe.
	r2 := r
	r2.BLR *= 2
	r2.Epochs = 3
	if _, err := Run(context.Background(), newTiny(t, r2), ds, Options{Output: out, Resume: true}); err == nil || !strings.Contains(err.Error(), "recipe") {
		t.Errorf("resume with another recipe: %v", err)
	} else if want := fmt.Sprintf("(--epochs: checkpoint 2, this run 3; --blr: checkpoint %v, this run %v)", r.BLR, r2.BLR); !strings.Contains(err.Error(), want) {
		t.Errorf("resume with another recipe: %v\nwant it to name the flags: %s", err, want)
	}
	// Other images.
	if _, err := Run(context.Background(), newTiny(t, r), tinySet(5), Options{Output: out, Resume: true}); err == nil || !strings.Contains(err.Error(), "image list") {
		t.Errorf("resume on other images: %v", err)
	}
	// A truncated optimiser state.
	opt := filepath.Join(dir, optimizerFile)
	b, err := os.ReadFile(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(opt, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	tr := newTiny(t, r)
	before := append([]float32(nil), tr.Model.Tensors()["blocks.0.attn.qkv.weight"].Data...)
	if _, err := Run(context.Background(), tr, ds, Options{Output: out, Resume: true}); err == nil || !strings.Contains(err.Error(), "optimizer state") {
		t.Errorf("resume with a truncated optimizer state: %v", err)
	}
	if after := tr.Model.Tensors()["blocks.0.attn.qkv.weight"].Data; !slicesEqual(before, after) {
		t.Error("a failed resume changed the model")
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// A diverging run stops at the first non-finite loss, names the step and
// the last good checkpoint, and writes nothing after it.
func TestNaNLossStops(t *testing.T) {
	ds := tinySet(4)
	r := tinyRecipe()
	r.AccumIter, r.WarmupEpochs = 1, 0
	tr := newTiny(t, r)
	out := t.TempDir()
	poisoned := false
	_, err := Run(context.Background(), tr, ds, Options{Output: out, SaveEvery: 1, Progress: func(s Status) {
		if s.Step == 3 && !poisoned {
			// An exploded weight, as a too large learning rate would make.
			w := tr.Model.Tensors()["decoder_pred.bias"].Data
			w[0] = float32(math.Inf(1))
			poisoned = true
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "at step 4") || !strings.Contains(err.Error(), CheckpointName(3)) {
		t.Fatalf("want a NaN/Inf error at step 4 naming checkpoint 3, got %v", err)
	}
	dir, _ := LatestCheckpoint(out)
	if filepath.Base(dir) != CheckpointName(3) {
		t.Errorf("latest checkpoint %s, want %s", dir, CheckpointName(3))
	}
}

// A configuration that cannot be built fails before anything is written.
func TestPretrainRejectsBadConfigs(t *testing.T) {
	for name, mutate := range map[string]func(*mae.Config){
		"heads":      func(c *mae.Config) { c.Heads = 5 },
		"patch":      func(c *mae.Config) { c.PatchSize = 7 },
		"no decoder": func(c *mae.Config) { c.DecDim, c.DecDepth = 0, 0 },
	} {
		t.Run(name, func(t *testing.T) {
			c := tinyConfig()
			mutate(&c)
			out := filepath.Join(t.TempDir(), "out")
			_, err := Pretrain(context.Background(), Job{Model: c, Recipe: tinyRecipe(), Options: Options{Output: out}, Inputs: []string{"testdata"}})
			if err == nil {
				t.Fatal("no error")
			}
			if _, serr := os.Stat(out); !os.IsNotExist(serr) {
				t.Errorf("%v, but the output directory was created", err)
			}
		})
	}
}

// A dataset without a single decodable image is an error; each bad input
// is an error row in OUTPUT/errors/ and no checkpoint is written.
func TestPretrainNeedsADecodableImage(t *testing.T) {
	out := t.TempDir()
	_, err := Pretrain(context.Background(), Job{Model: tinyConfig(), Recipe: tinyRecipe(), Options: Options{Output: out}, Inputs: []string{"testdata/broken"}})
	if err == nil || !strings.Contains(err.Error(), "no usable training image among 2 inputs") {
		t.Fatalf("want a no-usable-image error, got %v", err)
	}
	parts, _ := filepath.Glob(filepath.Join(out, "errors", "part-*.parquet"))
	if len(parts) != 1 {
		t.Errorf("want one error part, got %v", parts)
	}
	if dir, _ := LatestCheckpoint(out); dir != "" {
		t.Errorf("checkpoint %s written", dir)
	}
}

// Pretrain end to end on real photos; --init continues from a checkpoint
// of the same architecture and refuses another one.
func TestPretrainAndInit(t *testing.T) {
	r := tinyRecipe()
	r.Epochs, r.WarmupEpochs, r.AccumIter = 2, 0, 1
	out := t.TempDir()
	res, err := Pretrain(context.Background(), Job{Model: tinyConfig(), Recipe: r, Options: Options{Output: out}, Inputs: []string{"../examples/photos"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 6 || res.Checkpoint == "" {
		t.Fatalf("6 images, batch 2, 2 epochs: %d steps, checkpoint %q", res.Steps, res.Checkpoint)
	}
	m, err := mae.Load(res.Checkpoint, "")
	if err != nil || !m.HasDecoder() {
		t.Fatalf("the checkpoint does not load as a model with decoder: %v", err)
	}
	out2 := t.TempDir()
	if _, err := Pretrain(context.Background(), Job{Model: tinyConfig(), Init: res.Checkpoint, Recipe: r, Options: Options{Output: out2}, Inputs: []string{"../examples/photos"}}); err != nil {
		t.Fatalf("--init from a checkpoint of the same model: %v", err)
	}
	c := tinyConfig()
	c.Depth = 2
	if _, err := Pretrain(context.Background(), Job{Model: c, Init: res.Checkpoint, Recipe: r, Options: Options{Output: t.TempDir()}, Inputs: []string{"../examples/photos"}}); err == nil || !strings.Contains(err.Error(), "different architecture") {
		t.Errorf("--init from another architecture: %v", err)
	}
}

// A batch is a function of (seed, sample number) alone; without
// augmentation it is exactly the evaluation tensor of each image.
func TestBatcher(t *testing.T) {
	c := tinyConfig()
	ds := tinySet(3)
	b := &Batcher{Data: ds, Cfg: c, Seed: 9, Batch: 2}
	n := c.NumPatches() * c.PatchDim()
	p1, p2 := make([]float32, 2*n), make([]float32, 2*n)
	z1, z2 := make([]float32, 2*c.NumPatches()), make([]float32, 2*c.NumPatches())
	order := []int{2, 0, 1}
	b.Fill(p1, z1, order, 0, 40)
	b.Fill(p2, z2, order, 0, 40)
	if !slicesEqual(p1, p2) || !slicesEqual(z1, z2) {
		t.Fatal("the same sample numbers gave different batches")
	}
	b.Fill(p2, z2, order, 0, 42)
	if slicesEqual(p1, p2) || slicesEqual(z1, z2) {
		t.Fatal("other sample numbers gave the same crops and noise")
	}
	// Without augmentation: the S×S image, normalised and patchified.
	plain := &Dataset{Size: 32}
	for _, img := range ds.Images {
		out, err := (stages.Preprocess{Size: 32, Mode: stages.Squash}).Resize(img)
		if err != nil {
			t.Fatal(err)
		}
		plain.Images = append(plain.Images, out.(*image.NRGBA))
	}
	b = &Batcher{Data: plain, Cfg: c, Seed: 9, Batch: 2}
	b.Fill(p1, z1, order, 1, 0)
	chw := make([]float32, 3*32*32)
	want := make([]float32, n)
	for k, idx := range order[1:3] {
		stages.Normalize(chw, plain.Images[idx])
		mae.Patchify(want, chw, 1, 32, c.PatchSize)
		if !slicesEqual(p1[k*n:(k+1)*n], want) {
			t.Errorf("slot %d: not the evaluation tensor of image %d", k, idx)
		}
	}
}

// A second run into a directory a live run holds is refused before it
// writes anything, even before the first run has saved a checkpoint.
func TestPretrainRefusesALiveRunsDirectory(t *testing.T) {
	out := t.TempDir()
	release, err := sinks.LockOutput(out, "pretrain", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	_, err = Pretrain(context.Background(), Job{Model: tinyConfig(), Recipe: tinyRecipe(), Options: Options{Output: out}, Inputs: []string{"../examples/photos"}})
	if err == nil || !strings.Contains(err.Error(), "another running process") {
		t.Fatalf("err = %v, want a refusal naming the other run", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Errorf("the refused run wrote into the directory: %v", ents)
	}
}

// The warning about unusable inputs names OUTPUT/errors as a clean path,
// also when -o ends in a slash.
func TestPretrainNamesTheErrorsDirectory(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	r := tinyRecipe()
	r.Epochs, r.WarmupEpochs, r.AccumIter = 1, 0, 1
	out := t.TempDir()
	if _, err := Pretrain(context.Background(), Job{Model: tinyConfig(), Recipe: r, Options: Options{Output: out + "/"}, Inputs: []string{"testdata/broken", "../examples/photos"}}); err != nil {
		t.Fatal(err)
	}
	if want := "errors=" + filepath.Join(out, "errors") + "\n"; !strings.Contains(logs.String(), want) {
		t.Errorf("log does not name %q:\n%s", want, logs.String())
	}
}

// --init from a checkpoint of another architecture names the settings that
// differ by their config.json keys, with both values, rather than printing
// two whole configs; it fails before any training.
func TestInitOtherArchitectureNamesTheDifference(t *testing.T) {
	r := tinyRecipe()
	r.Epochs, r.WarmupEpochs, r.AccumIter = 1, 0, 1
	init := "../mae/testdata/fixtures/tiny32/hf" // hidden_size 48, 2 layers, 4 heads
	_, err := Pretrain(context.Background(), Job{Model: tinyConfig(), Init: init, Recipe: r, Options: Options{Output: t.TempDir()}, Inputs: []string{"../examples/photos"}})
	if err == nil {
		t.Fatal("--init from another architecture: no error")
	}
	for _, want := range []string{"different architecture", "hidden_size 48 (--init) vs 24 (--model)", "num_hidden_layers 2 (--init) vs 1 (--model)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	for _, same := range []string{"image_size", "patch_size", "layer_norm_eps", "mask_ratio"} {
		if strings.Contains(err.Error(), same) {
			t.Errorf("error %q names %s, which is the same in both", err, same)
		}
	}
}

// A run killed while saving leaves a ".checkpoint-N.tmp-*" directory (as
// large as the model and its optimiser state) or a ".latest.tmp-*" file;
// the next run into the directory removes them, and nothing else.
func TestPretrainRemovesKilledRunsTemporaries(t *testing.T) {
	out := t.TempDir()
	stale := []string{".checkpoint-00000004.tmp-3768532552", ".latest.tmp-1666369053", ".metrics.csv.tmp-42", ".loss.png.tmp-7"}
	if err := os.Mkdir(filepath.Join(out, stale[0]), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, stale[0], "model.safetensors"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept := []string{".keep", "notes.tmp-1", ".checkpoint-x.tmp-1", ".other.tmp-3"}
	for _, name := range append(stale[1:], kept...) {
		if err := os.WriteFile(filepath.Join(out, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := tinyRecipe()
	r.Epochs, r.WarmupEpochs, r.AccumIter = 1, 0, 1
	if _, err := Pretrain(context.Background(), Job{Model: tinyConfig(), Recipe: r, Options: Options{Output: out}, Inputs: []string{"../examples/photos"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range stale {
		if _, err := os.Lstat(filepath.Join(out, name)); err == nil {
			t.Errorf("%s: a killed run's temporary is still there", name)
		}
	}
	for _, name := range kept {
		if _, err := os.Lstat(filepath.Join(out, name)); err != nil {
			t.Errorf("%s: not a temporary of pretrain, but removed: %v", name, err)
		}
	}
}

// A signal while the training images are read (the context cancelled
// before the first step) is reported as an interruption before any step,
// not as a bare "context canceled", and writes no checkpoint.
func TestPretrainInterruptedWhileReading(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Pretrain(ctx, Job{Model: tinyConfig(), Recipe: tinyRecipe(), Options: Options{Output: out}, Inputs: []string{"../examples/photos"}})
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "before the first step") {
		t.Fatalf("err = %v, want an interruption before the first step", err)
	}
	if ck, _ := filepath.Glob(filepath.Join(out, "checkpoint-*")); len(ck) > 0 {
		t.Errorf("checkpoints %v after an interruption before the first step", ck)
	}
}

// A dataset too small for the recipe is refused before anything is
// written, counting images and batches in words that agree with the count.
func TestRunRefusesTooFewImages(t *testing.T) {
	img := func(n int) *Dataset { return &Dataset{Images: make([]*image.NRGBA, n), Size: 32} }
	for _, c := range []struct {
		images, batch, accum int
		want                 string
	}{
		{1, 2, 1, "1 usable image is fewer than one batch of 2"},
		{3, 4, 1, "3 usable images are fewer than one batch of 4"},
		{2, 2, 2, "1 batch per epoch is fewer than --accum-iter 2"},
		{4, 2, 3, "2 batches per epoch are fewer than --accum-iter 3"},
	} {
		out := filepath.Join(t.TempDir(), "out")
		r := tinyRecipe()
		r.BatchSize, r.AccumIter = c.batch, c.accum
		_, err := Run(context.Background(), &Trainer{Recipe: r}, img(c.images), Options{Output: out})
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%d images, batch %d, accum %d: %v, want %q…", c.images, c.batch, c.accum, err, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%d images, batch %d, accum %d: the refused run made %s", c.images, c.batch, c.accum, out)
		}
	}
}

// A signal while a resumed run loads its checkpoint (the context ends
// before the first step) stops it there: no step is taken, no checkpoint
// written, latest and metrics.csv stay as they were. It used to take a
// step and write a checkpoint of it first.
func TestResumeInterruptedBeforeTheFirstStepWritesNothing(t *testing.T) {
	ds := tinySet(4)
	r := tinyRecipe()
	r.Epochs, r.WarmupEpochs = 3, 0
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := Run(ctx, newTiny(t, r), ds, Options{Output: out, Progress: func(Status) { cancel() }}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("the first run: %v, want an interruption after its first step", err)
	}
	before, _ := filepath.Glob(filepath.Join(out, "*"))
	latest, _ := os.ReadFile(filepath.Join(out, latestFile))
	metrics, _ := os.ReadFile(filepath.Join(out, "metrics.csv"))
	_, err := Run(ctx, newTiny(t, r), ds, Options{Output: out, Resume: true})
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "before the first step") || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("err = %v, want an interruption before the first step that says how to continue", err)
	}
	after, _ := filepath.Glob(filepath.Join(out, "*"))
	if !slices.Equal(before, after) {
		t.Errorf("files before %v, after %v", before, after)
	}
	if b, _ := os.ReadFile(filepath.Join(out, latestFile)); !bytes.Equal(b, latest) {
		t.Errorf("latest %q, was %q", b, latest)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "metrics.csv")); !bytes.Equal(b, metrics) {
		t.Errorf("metrics.csv changed:\n%s\nwas\n%s", b, metrics)
	}
}
