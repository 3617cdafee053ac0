package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maeembed/maeembed/sinks"
)

// kill -9 in the middle of `maeembed pretrain`, then --resume: the final
// checkpoint (weights and optimiser state) and metrics.csv are bitwise those
// of an uninterrupted run.
//
// The kill follows the first published checkpoint (step 6 of 120): the 114
// steps left take seconds, against the milliseconds between the publication
// and the kill, and a run that still ends first fails the test instead of
// skipping it.
func TestE2EPretrainKillAndResume(t *testing.T) {
	bin := buildCLI(t)
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 24)
	const steps = 120 // 40 epochs of 3 steps (24 images, batch 4, accum 2)
	args := func(out string) []string {
		return []string{"pretrain", "--model", filepath.Join(fixtures, "tiny32", "hf", "config.json"),
			"--epochs", "40", "--warmup-epochs", "2", "--batch-size", "4", "--accum-iter", "2", "--blr", "0.1",
			"--save-every", "6", "--keep-checkpoints", "2", "--seed", "5", "-o", out, in}
	}
	full := filepath.Join(t.TempDir(), "full")
	if b, err := exec.Command(bin, args(full)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, b)
	}
	out := filepath.Join(t.TempDir(), "killed")
	cmd := exec.Command(bin, args(out)...)
	startUntil(t, cmd, "checkpoint", 60*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(out, "checkpoint-*"))
		return len(m) > 0
	})
	cmd.Process.Signal(syscall.SIGKILL)
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the run finished all %d steps before the kill that followed its first checkpoint", steps)
	}
	if _, err := os.Stat(filepath.Join(out, fmt.Sprintf("checkpoint-%08d", steps))); err == nil {
		t.Fatal("the final checkpoint was published before the kill")
	}
	if b, err := exec.Command(bin, append(args(out), "--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, b)
	}
	final := fmt.Sprintf("checkpoint-%08d", steps)
	for _, f := range []string{final + "/model.safetensors", final + "/optimizer.safetensors", "metrics.csv"} {
		a, err1 := os.ReadFile(filepath.Join(full, f))
		b, err2 := os.ReadFile(filepath.Join(out, f))
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v, %v", f, err1, err2)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the killed-and-resumed run", f)
		}
	}
}

// pretrain reads its options from --config-file like every command: the
// recipe under main_pretrain.py's names, flags over the file, and a key
// that is not one of pretrain's flags refused by name.
func TestPretrainConfigFile(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 6)
	out := filepath.Join(t.TempDir(), "run")
	cfg := filepath.Join(t.TempDir(), "pretrain.yaml")
	os.WriteFile(cfg, []byte("model: "+filepath.Join(fixtures, "tiny32", "hf", "config.json")+"\n"+
		"epochs: 2\nwarmup_epochs: 0.5\nbatch_size: 3\naccum_iter: 1\nblr: 0.01\nweight_decay: 0.1\n"+
		"augment: none\nresize: squash\nseed: 9\nsave_every: 0\ninputs: ["+in+"]\n"), 0o644)
	mustRun(t, "pretrain", "--config-file", cfg, "--epochs", "1", "-o", out)
	b, err := os.ReadFile(filepath.Join(out, "checkpoint-00000002", "trainer_state.json"))
	if err != nil {
		t.Fatalf("no checkpoint after 1 epoch of 2 steps: %v", err)
	}
	var st struct {
		Recipe map[string]any `json:"recipe"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"epochs": 1.0, "batch_size": 3.0, "blr": 0.01, "weight_decay": 0.1, "seed": 9.0, "augment": false}
	for k, v := range want {
		if st.Recipe[k] != v {
			t.Errorf("recipe %s = %v, want %v (%s)", k, st.Recipe[k], v, b)
		}
	}
	for bad, says := range map[string]string{"precision: bf16\n": "precision", "pool: cls\n": "pool", "augment: sideways\n": `--augment "sideways"`} {
		os.WriteFile(cfg, []byte(bad), 0o644)
		code, _, stderr := maeembed(t, "pretrain", "--config-file", cfg, "-o", t.TempDir(), in)
		if code != 2 || !strings.Contains(stderr, says) {
			t.Errorf("config %q: exit %d\n%s", bad, code, stderr)
		}
	}
}

// convert --float16 writes a half-size checkpoint that loads back.
func TestConvertFloat16(t *testing.T) {
	src := filepath.Join(fixtures, "tiny32", "hf")
	full, half := filepath.Join(t.TempDir(), "f32"), filepath.Join(t.TempDir(), "f16")
	mustRun(t, "convert", src, "-o", full)
	mustRun(t, "convert", "--float16", src, "-o", half)
	a, err1 := os.Stat(filepath.Join(full, "model.safetensors"))
	b, err2 := os.Stat(filepath.Join(half, "model.safetensors"))
	if err1 != nil || err2 != nil || b.Size() >= a.Size()*6/10 {
		t.Fatalf("float16 checkpoint not about half the float32 one: %v %v", err1, err2)
	}
	if out := mustRun(t, "inspect", half); !strings.Contains(out, "config ") || strings.Contains(out, "not a loadable MAE") {
		t.Errorf("inspect of the float16 checkpoint:\n%s", out)
	}
}

// A --model config.json that is missing or unreadable fails at run time
// (exit 1, "model PATH: no such file or directory"), as a missing --model
// does in embed; a name that is no architecture stays a usage error.
func TestPretrainMissingModelIsNotUsage(t *testing.T) {
	dir := t.TempDir()
	imgs := filepath.Join(fixtures, "tiny32", "images")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"hidden_size": "x"}`), 0o644)
	missing := filepath.Join(dir, "nonexist.json")
	for _, c := range []struct {
		model string
		code  int
		want  string
	}{
		{missing, 1, "model " + missing + ": no such file or directory"},
		{bad, 1, bad},
		{"nonexist", 2, "want one of"},
	} {
		code, _, stderr := maeembed(t, "pretrain", "-m", c.model, "-o", filepath.Join(dir, "out"), imgs)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "stat ") {
			t.Errorf("pretrain -m %s: exit %d, want %d and %q\n%s", c.model, code, c.code, c.want, stderr)
		}
	}
	if code, _, stderr := maeembed(t, "embed", "-m", missing, "-o", filepath.Join(dir, "emb"), imgs); code != 1 {
		t.Errorf("embed -m %s: exit %d, want 1 as pretrain\n%s", missing, code, stderr)
	}
}

// What the README and --help say makes a --model value that names nothing
// on disk a path (a missing one: exit 1) rather than a name (builtin or a
// preset; another one: exit 2): a "/" or a checkpoint's extension.
func TestMissingModelPathOrName(t *testing.T) {
	dir := t.TempDir()
	imgs := filepath.Join(fixtures, "tiny32", "images")
	for _, c := range []struct {
		model string
		code  int
	}{
		{"nonexist.pth", 1}, {"nonexist.safetensors", 1}, {"pytorch_model.bin", 1}, {"sub/nonexist", 1}, {filepath.Join(dir, "hf"), 1},
		{"nosuchpreset", 2}, {"mae_vit_base", 2}, {"weights.pt", 2},
	} {
		code, _, stderr := maeembed(t, "embed", "-m", c.model, "-o", filepath.Join(dir, "out"), imgs)
		if code != c.code || !strings.Contains(stderr, "no such file or directory") {
			t.Errorf("embed -m %s: exit %d, want %d\n%s", c.model, code, c.code, stderr)
		}
	}
	// pretrain's --model is a preset or a .json file (--help says so):
	// only a value ending in .json is a path; a "/" or an existing file
	// without .json is a usage error.
	noJSON := filepath.Join(dir, "config")
	if err := os.WriteFile(noJSON, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		model string
		code  int
	}{{"nonexist.json", 1}, {"sub/nonexist", 2}, {noJSON, 2}, {"nosuchpreset", 2}} {
		if code, _, stderr := maeembed(t, "pretrain", "-m", c.model, "-o", filepath.Join(dir, "p"), imgs); code != c.code {
			t.Errorf("pretrain -m %s: exit %d, want %d\n%s", c.model, code, c.code, stderr)
		}
	}
}

// SIGTERM (or Ctrl-C) in the middle of `maeembed pretrain` finishes the
// step, writes a checkpoint and exits 1 saying so (docs/pretrain.md), so a
// --resume continues from there. Pretrain used to have no signal handler:
// the signal killed it at once, losing every step since the last
// --save-every checkpoint.
func TestE2EPretrainSIGTERMCheckpoints(t *testing.T) {
	bin := buildCLI(t)
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 24)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"pretrain", "--model", filepath.Join(fixtures, "tiny32", "hf", "config.json"),
		"--epochs", "2000", "--batch-size", "4", "--save-every", "0", "--seed", "5", "-o", out, in}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Interrupt once a few steps are in metrics.csv: mid-run, no checkpoint yet.
	startUntil(t, cmd, "training steps", 60*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(out, "metrics.csv"))
		return bytes.Count(b, []byte("\n")) > 3
	})
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("after SIGTERM: %v, want exit status 1\n%s", err, stderr.String())
	}
	if l := lastLine(stderr.String()); !strings.Contains(l, "interrupted") || !strings.Contains(l, "--resume") {
		t.Errorf("last line %q does not say it was interrupted and how to continue", l)
	}
	if strings.Contains(stderr.String(), "pretrain finished") {
		t.Errorf("an interrupted run logs that it finished:\n%s", stderr.String())
	}
	ck, _ := filepath.Glob(filepath.Join(out, "checkpoint-*"))
	if len(ck) != 1 {
		t.Fatalf("checkpoints after SIGTERM: %v, want the one it writes", ck)
	}
	if strings.HasSuffix(ck[0], "checkpoint-00012000") {
		t.Fatal("the run finished before the signal")
	}
	if tmp, _ := filepath.Glob(filepath.Join(out, ".*tmp*")); len(tmp) > 0 {
		t.Errorf("an interrupted run left temporaries: %v", tmp)
	}
}

// A pretrain run refused once it has read its inputs (fewer usable images
// than one batch) creates nothing: no output directory, and in an
// existing one no empty errors/. Embed and reconstruct runs without
// errors leave no errors/ either.
func TestRefusedRunCreatesNothing(t *testing.T) {
	imgs := filepath.Join(fixtures, "tiny32", "images")
	model := filepath.Join(fixtures, "tiny32", "hf", "config.json")
	out := filepath.Join(t.TempDir(), "p")
	code, _, stderr := maeembed(t, "pretrain", "-m", model, "--batch-size", "64", "-o", out, imgs)
	if code == 0 || !strings.Contains(stderr, "3 usable images are fewer than one batch of 64") {
		t.Fatalf("pretrain --batch-size 64 over 3 images: exit %d, want a refusal\n%s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(out)
		t.Errorf("the refused run left %s (%v)", out, ents)
	}
	existing := t.TempDir()
	if code, _, _ := maeembed(t, "pretrain", "-m", model, "--batch-size", "64", "-o", existing, imgs); code == 0 {
		t.Fatal("pretrain --batch-size 64 over 3 images into an existing directory ran")
	}
	if ents, _ := os.ReadDir(existing); len(ents) != 0 {
		t.Errorf("the refused run left %v in the existing output directory", ents)
	}
	for _, cmd := range []string{"embed", "reconstruct"} {
		out := filepath.Join(t.TempDir(), cmd)
		mustRun(t, cmd, "-m", filepath.Join(fixtures, "tiny32", "hf"), "-o", out, imgs)
		if _, err := os.Stat(filepath.Join(out, "errors")); !os.IsNotExist(err) {
			t.Errorf("%s without errors left %s: %v", cmd, filepath.Join(out, "errors"), err)
		}
	}
}

// --init takes the names --model takes in the other commands: builtin (the
// built-in model, of pretrain's default architecture) starts a run; a name
// that is neither a path, builtin nor a preset is a usage error.
func TestPretrainInitBuiltin(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 4)
	out := filepath.Join(t.TempDir(), "run")
	mustRun(t, "pretrain", "--init", "builtin", "--epochs", "1", "--batch-size", "4", "--save-every", "0", "-o", out, in)
	if _, err := os.Stat(filepath.Join(out, "checkpoint-00000001", "model.safetensors")); err != nil {
		t.Fatalf("no checkpoint after a run from --init builtin: %v", err)
	}
	code, _, stderr := maeembed(t, "pretrain", "--init", "no_such_model", "--epochs", "1", "--batch-size", "4", "-o", filepath.Join(t.TempDir(), "x"), in)
	if code != 2 || !strings.Contains(stderr, "no_such_model") {
		t.Errorf("--init no_such_model: exit %d, want 2 naming it\n%s", code, stderr)
	}
}

// --resume into a directory with no checkpoint starts from step 0, but says
// so: a mistyped --output would otherwise train from scratch unnoticed.
func TestPretrainResumeNothingWarns(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 4)
	out := filepath.Join(t.TempDir(), "run")
	code, _, stderr := maeembed(t, "pretrain", "--model", filepath.Join(fixtures, "tiny32", "hf", "config.json"), "--resume",
		"--epochs", "1", "--batch-size", "4", "--save-every", "0", "-o", out, in)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "no checkpoint in "+out+": starting from step 0") {
		t.Errorf("--resume with nothing to resume did not warn:\n%s", stderr)
	}
}

// Each unusable input has one error row however many runs read it, as in
// embed: a run stopped before its first checkpoint, the rerun and a
// --resume of it each read every input again, and each drops the rows of
// the earlier runs once it has written its own.
func TestPretrainErrorRowsOncePerInput(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 4)
	for _, f := range []string{"bad1.png", "bad2.jpg"} {
		os.WriteFile(filepath.Join(in, f), []byte("not an image"), 0o644)
	}
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"pretrain", "--model", filepath.Join(fixtures, "tiny32", "hf", "config.json"),
		"--epochs", "1", "--batch-size", "4", "--save-every", "0", "-o", out, in}
	// Fewer usable images than one batch: refused after the error rows.
	if code, _, stderr := maeembed(t, append(args, "--batch-size", "5")...); code == 0 {
		t.Fatalf("a batch of 5 from 4 usable images ran\n%s", stderr)
	}
	check := func(when string) {
		t.Helper()
		done, err := sinks.ReadDone(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(done.Rows) != 2 {
			t.Errorf("%s: error rows for %v, want the 2 bad inputs", when, done.Rows)
		}
		for id, n := range done.Rows {
			if n != 1 {
				t.Errorf("%s: %d error rows for %s, want 1", when, n, id)
			}
		}
	}
	check("after the refused run")
	mustRun(t, args...)
	check("after the rerun")
	mustRun(t, append(args, "--resume")...)
	check("after --resume")
}

// The "training set" line names the model as --model gave it: a
// config.json's architecture has no name of its own.
func TestPretrainLogsConfigJSONModel(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 4)
	model := filepath.Join(fixtures, "tiny32", "hf", "config.json")
	code, _, stderr := maeembed(t, "pretrain", "-m", model, "--epochs", "1", "--batch-size", "4", "--save-every", "0", "-o", filepath.Join(t.TempDir(), "run"), in)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "training set") {
			if !strings.Contains(line, "model="+model+" ") {
				t.Errorf("the training set line does not name the model %s:\n%s", model, line)
			}
			return
		}
	}
	t.Errorf("no training set line:\n%s", stderr)
}
