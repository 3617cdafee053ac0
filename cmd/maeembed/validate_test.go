package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A mask ratio that is not a number, or that leaves the model no patch
// (0.99 of 9), is a usage error naming what is wrong, not an error row
// per image.
func TestMaskRatioUsage(t *testing.T) {
	m := filepath.Join(fixtures, "small48", "hf")
	imgs := filepath.Join(fixtures, "small48", "images")
	for ratio, want := range map[string]string{"NaN": "[0, 1)", "0.99": "9 patches", "1": "[0, 1)"} {
		code, _, stderr := maeembed(t, "reconstruct", "--mask-ratio", ratio, "-m", m, "-o", t.TempDir(), imgs)
		if code != 2 || !strings.Contains(stderr, "--mask-ratio") || !strings.Contains(stderr, want) {
			t.Errorf("--mask-ratio %s: exit %d, want 2 and a message with %q\n%s", ratio, code, want, stderr)
		}
	}
	mustRun(t, "reconstruct", "--mask-ratio", "0.88", "-m", m, "-o", t.TempDir(), imgs)
}

// Config file errors name the key and the file, not Go types; a fraction
// for an integer option is refused rather than truncated; a list option
// takes the flag's comma form too.
func TestConfigFileMessages(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	for yaml, want := range map[string][]string{
		"batchsize: 3\n":     {"unknown key batchsize", cfg},
		"workers: 1.5\n":     {"key workers", "1.5", cfg},
		"workers: abc\n":     {"key workers", "abc"},
		"memory_budget: 0\n": {"memory-budget", "must be positive"},
		"batch_size: 2\nworkers: 1\nbatch_size: 3\n": {"batch_size given twice"},
		"precision: fp64\n":                          {"key precision", "fp64", cfg},
		"extensions: jpg,,png\n":                     {"extensions", `"jpg,,png": item 2 is empty`},
	} {
		os.WriteFile(cfg, []byte(yaml), 0o644)
		code, _, stderr := maeembed(t, "embed", "--config-file", cfg, "-m", filepath.Join(fixtures, "small48", "hf"), "-o", t.TempDir(), "in.png")
		if code != 2 || strings.Contains(stderr, "main.Options") || strings.Contains(stderr, "<nil>") {
			t.Errorf("%q: exit %d, want 2 without Go internals\n%s", yaml, code, stderr)
		}
		for _, w := range want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%q: stderr lacks %q\n%s", yaml, w, stderr)
			}
		}
		if strings.HasPrefix(yaml, "precision") && strings.Contains(stderr, "--precision") {
			t.Errorf("%q: the error names the flag, not the config key\n%s", yaml, stderr)
		}
	}
	for yaml, want := range map[string][]string{
		"extensions: jpg, png\n":   {"jpg", "png"},
		"extensions: [jpg, png]\n": {"jpg", "png"},
		"extensions: webp\n":       {"webp"},
	} {
		os.WriteFile(cfg, []byte(yaml), 0o644)
		o, err := parseFor(embedCommand, "embed", "--config-file", cfg, "in")
		if err != nil || !slices.Equal(o.Source.Extensions, want) {
			t.Errorf("%q: %v %v, want %q", yaml, err, o, want)
		}
	}
	// The flag refuses an empty item as the file does.
	code, _, stderr := maeembed(t, "embed", "--extensions", "jpg,", "-m", filepath.Join(fixtures, "small48", "hf"), "-o", t.TempDir(), "in.png")
	if code != 2 || !strings.Contains(stderr, "--extensions") || !strings.Contains(stderr, `"jpg,": item 2 is empty`) {
		t.Errorf("--extensions jpg,: exit %d, want 2 naming the flag and the item\n%s", code, stderr)
	}
	os.WriteFile(cfg, []byte("inputs: a,b.png\n"), 0o644)
	if o, err := parseFor(embedCommand, "embed", "--config-file", cfg); err != nil || !slices.Equal(o.Inputs, []string{"a,b.png"}) {
		t.Errorf("inputs: a path with a comma is one input: %v %v", err, o)
	}
}

// Negative counts are usage errors, not silently taken as the default.
func TestNegativeCountsRefused(t *testing.T) {
	m := filepath.Join(fixtures, "small48", "hf")
	imgs := filepath.Join(fixtures, "small48", "images")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--workers", "-1"}, "--workers -1: must be 0 (one per core)"},
		// A flag error, as --max-pixels', not the writer package's.
		{[]string{"--max-file-rows", "-1"}, "usage: --max-file-rows -1: want 0 (the default, 100000) or more"},
	} {
		code, _, stderr := maeembed(t, append([]string{"embed", "-m", m, "-o", t.TempDir(), imgs}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "sinks:") {
			t.Errorf("%v: exit %d, want 2 and %q\n%s", c.args, code, c.want, stderr)
		}
	}
	code, _, stderr := maeembed(t, "stream", "--brokers", "127.0.0.1:1", "--topic", "t", "-o", t.TempDir(), "--workers", "-2")
	if code != 2 || !strings.Contains(stderr, "--workers") {
		t.Errorf("stream --workers -2: exit %d\n%s", code, stderr)
	}
}

// convert refuses to replace an existing, non-empty output directory
// unless --force, exiting 1 as an output directory that refuses a run does
// (the exit table); an empty one is filled.
func TestConvertRefusesExistingOutput(t *testing.T) {
	src := filepath.Join(fixtures, "tiny32", "hf")
	out := t.TempDir() // exists, empty
	mustRun(t, "convert", src, "-o", out)
	cfg := filepath.Join(out, "config.json")
	os.WriteFile(cfg, []byte("{}\n"), 0o644) // a user's edit
	code, _, stderr := maeembed(t, "convert", src, "-o", out)
	if code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("convert over an existing checkpoint: exit %d, want 1 naming --force\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "{}\n" {
		t.Error("the existing directory was changed")
	}
	mustRun(t, "convert", "--force", src, "-o", out)
	if b, _ := os.ReadFile(cfg); string(b) == "{}\n" {
		t.Error("--force did not replace the checkpoint")
	}
}

// convert -o FILE is a usage error (exit 2), as embed's is, with --force
// too, naming the file; so is pretrain's. The file is left as it was and
// nothing is made beside it.
func TestConvertOutputIsAFile(t *testing.T) {
	src := filepath.Join(fixtures, "tiny32", "hf")
	dir := t.TempDir()
	file := filepath.Join(dir, "model")
	if err := os.WriteFile(file, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		args := []string{"convert", src, "-o", file}
		if force {
			args = append(args, "--force")
		}
		code, _, stderr := maeembed(t, args...)
		if code != 2 || !strings.Contains(stderr, "--output "+file+" is a file") {
			t.Errorf("convert -o FILE (--force %v): exit %d, want 2 saying it is a file\n%s", force, code, stderr)
		}
	}
	code, _, stderr := maeembed(t, "pretrain", "-m", filepath.Join(src, "config.json"), "-o", file, filepath.Join(fixtures, "tiny32", "images"))
	if code != 2 || !strings.Contains(stderr, "--output "+file+" is a file") {
		t.Errorf("pretrain -o FILE: exit %d, want 2 saying it is a file\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(file); string(b) != "mine\n" {
		t.Error("the file was changed")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("convert left %d entries beside the file", len(ents))
	}
}

// Two converts into one directory at once: the second is refused while
// the first holds the lock file beside the directory (here a flock the
// test holds, as a running convert does), with an error naming the
// directory and the lock, and writes nothing; once it is released a
// convert goes through and leaves no lock file. A convert that fails
// (no such model) leaves no parent directory it made.
func TestConvertRefusesWhileAnotherConverts(t *testing.T) {
	src := filepath.Join(fixtures, "tiny32", "hf")
	parent := t.TempDir()
	out := filepath.Join(parent, "m")
	mustRun(t, "convert", src, "-o", out)
	cfg := filepath.Join(out, "config.json")
	before, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(parent, ".m.convert-lock")
	lk, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lk.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := maeembed(t, "convert", "--force", "--float16", src, "-o", out)
	if code != 1 || !strings.Contains(stderr, "another convert") || !strings.Contains(stderr, lockPath) || !strings.Contains(stderr, out) {
		t.Errorf("convert --force while another holds %s: exit %d, want 1 naming both\n%s", lockPath, code, stderr)
	}
	if b, _ := os.ReadFile(cfg); !bytes.Equal(b, before) {
		t.Error("the refused convert changed the directory")
	}
	code, _, stderr = maeembed(t, "convert", src, "-o", filepath.Join(parent, "m"))
	if code == 0 || !strings.Contains(stderr, "another convert") {
		t.Errorf("convert without --force while another holds the lock: exit %d\n%s", code, stderr)
	}
	os.Remove(lockPath) // as a finished convert's release does
	lk.Close()
	mustRun(t, "convert", "--force", "--float16", src, "-o", out)
	if b, _ := os.ReadFile(cfg); bytes.Equal(b, before) {
		t.Error("--force after the lock was released did not replace the checkpoint")
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 || ents[0].Name() != "m" {
		t.Errorf("beside the output after the convert: %v, want only m", ents)
	}

	deep := filepath.Join(parent, "new", "sub", "m")
	if code, _, stderr := maeembed(t, "convert", filepath.Join(parent, "nonexist.pth"), "-o", deep); code == 0 {
		t.Errorf("convert of a missing model: exit 0\n%s", stderr)
	}
	if _, err := os.Lstat(filepath.Join(parent, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed convert left the directories it made: %v", err)
	}
}

// A convert into the current directory spelled "." (empty, so a new
// checkpoint) goes through: its lock file is beside the directory, under
// its real name, not "..convert-lock" inside it, which made the empty
// directory non-empty and the convert refused.
func TestConvertIntoDot(t *testing.T) {
	src, err := filepath.Abs(filepath.Join(fixtures, "tiny32", "hf"))
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "m")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if code, _, stderr := maeembed(t, "convert", src, "-o", "."); code != 0 {
		t.Fatalf("convert -o . into an empty directory: exit %d\n%s", code, stderr)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"config.json", "model.safetensors"}) {
		t.Errorf("in the directory after convert -o .: %v", names)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("beside it: %v, want only m", ents)
	}
}

// A convert killed while writing (kill -9) leaves a hidden ".NAME.tmp-N"
// directory beside its destination, or ".model.safetensors.tmp-N" in it
// under --force. The next convert into the destination removes those,
// but not a temporary a live process holds (a concurrent convert), one
// that changed in the last seconds, or anything not named as ours.
func TestConvertRemovesKilledConvertsTemporaries(t *testing.T) {
	src := filepath.Join(fixtures, "tiny32", "hf")
	parent := t.TempDir()
	out := filepath.Join(parent, "m")
	old := time.Now().Add(-time.Hour)
	mkTemp := func(path string, dir bool) {
		t.Helper()
		file := path
		if dir {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			file = filepath.Join(path, "model.safetensors")
		}
		if err := os.WriteFile(file, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(file, old, old)
		os.Chtimes(path, old, old)
	}
	dead := filepath.Join(parent, ".m.tmp-3768532552")
	mkTemp(dead, true)
	live := filepath.Join(parent, ".m.tmp-1111")
	mkTemp(live, true)
	lk, err := os.Open(live) // a live writer holds its temporary's lock
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	if err := syscall.Flock(int(lk.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	recent := filepath.Join(parent, ".m.tmp-2222")
	mkTemp(recent, true)
	// "Changed in the last seconds" however long the run below takes to
	// reach its cleanup on a loaded machine: a time ahead of the clock is
	// younger than the age limit until well after the test.
	soon := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(recent, "model.safetensors"), soon, soon)
	var others []string
	for _, name := range []string{".m.tmp-x1", ".mm.tmp-1", "m.tmp-1", ".other.tmp-1"} {
		others = append(others, filepath.Join(parent, name))
		mkTemp(others[len(others)-1], true)
	}
	mustRun(t, "convert", src, "-o", out)
	if _, err := os.Lstat(dead); err == nil {
		t.Errorf("%s: a killed convert's temporary is still there", dead)
	}
	for _, p := range append([]string{live, recent}, others...) {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: removed, but it is a live writer's or not ours: %v", p, err)
		}
	}

	// --force into an existing directory writes files through temporaries.
	stale := filepath.Join(out, ".model.safetensors.tmp-42")
	mkTemp(stale, false)
	keep := filepath.Join(out, "notes.tmp-42")
	mkTemp(keep, false)
	mustRun(t, "convert", "--force", src, "-o", out)
	if _, err := os.Lstat(stale); err == nil {
		t.Errorf("%s: a killed --force convert's temporary is still there", stale)
	}
	if _, err := os.Lstat(keep); err != nil {
		t.Errorf("%s: removed, but not ours: %v", keep, err)
	}
}

// --format's help lists the command's formats.
func TestFormatHelpListsValues(t *testing.T) {
	for cmd, want := range map[string]string{"embed": "output format: parquet | arrow | npy", "reconstruct": "output format: npy | parquet | png"} {
		_, out, stderr := maeembed(t, cmd, "--help")
		if !strings.Contains(out+stderr, want) {
			t.Errorf("%s --help lacks %q:\n%s%s", cmd, want, out, stderr)
		}
	}
}

// inspect and convert take their model once: a MODEL argument next to
// --model is a usage error, not a silent choice of one of them.
func TestModelGivenTwice(t *testing.T) {
	hf := filepath.Join(fixtures, "tiny32", "hf")
	for _, args := range [][]string{
		{"inspect", "-m", hf, "builtin"},
		{"convert", "-m", hf, "builtin", "-o", filepath.Join(t.TempDir(), "x")},
		{"convert", "--model", "builtin", "builtin", "-o", filepath.Join(t.TempDir(), "y")},
	} {
		code, _, stderr := maeembed(t, args...)
		if code != 2 || !strings.Contains(stderr, "give MODEL once") {
			t.Errorf("%q: exit %d, want 2 and %q\n%s", args, code, "give MODEL once", stderr)
		}
	}
	if out := mustRun(t, "inspect", "-m", hf); !strings.Contains(out, "config ") {
		t.Errorf("inspect -m alone:\n%s", out)
	}
}

// MODEL is optional in inspect and convert, as --model is everywhere:
// without it they take the built-in model, and their usage line and help
// say so.
func TestModelArgumentDefaultsToBuiltin(t *testing.T) {
	cache := t.TempDir()
	if out := mustRun(t, "inspect", "--cache-dir", cache); !strings.Contains(out, "builtin-") || !strings.Contains(out, `"hidden_size": 192`) {
		t.Errorf("inspect without MODEL does not show the built-in model:\n%s", out)
	}
	for _, name := range []string{"inspect", "convert"} {
		help := mustRun(t, name, "--help")
		if !strings.Contains(help, name+" [flags] [MODEL]") || !strings.Contains(help, "without either") || !strings.Contains(help, "(builtin)") {
			t.Errorf("%s --help does not say MODEL is optional, defaulting to builtin:\n%s", name, help)
		}
	}
}

// A numeric flag out of its range is a usage error naming the flag and
// what it accepts, in every command, not a silent fall back to the
// default: 0 stays the documented default where the help says so.
func TestNumericFlagRanges(t *testing.T) {
	hf := filepath.Join(fixtures, "tiny32", "hf")
	imgs := filepath.Join(fixtures, "tiny32", "images")
	out := filepath.Join(t.TempDir(), "out")
	stream := []string{"stream", "--brokers", "b:9092", "--topic", "t", "-o", out, "-m", hf}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"embed", "-m", hf, "-o", out, "--max-pixels", "-1", imgs}, []string{"--max-pixels -1", "0 (the default"}},
		{[]string{"embed", "-m", hf, "-o", out, "--flush-interval", "-1s", imgs}, []string{"--flush-interval -1s", "0 "}},
		{[]string{"embed", "-m", hf, "-o", out, "--extensions", "", imgs}, []string{"--extensions", "one or more"}},
		{[]string{"embed", "-m", hf, "-o", out, "--extensions", ",,", imgs}, []string{"--extensions", "one or more"}},
		{[]string{"reconstruct", "-m", hf, "-o", out, "--max-pixels", "-5", imgs}, []string{"--max-pixels -5"}},
		{append(stream, "--batch-latency", "-1ms"), []string{"--batch-latency -1ms"}},
		{append(stream, "--flush-interval", "-1s"), []string{"--flush-interval -1s"}},
		{append(stream, "--fetch-max-wait", "-1s"), []string{"--fetch-max-wait -1s", "not be negative"}},
		{append(stream, "--fetch-min-bytes", "-1"), []string{`"--fetch-min-bytes"`, "must not be negative"}},
		{append(stream, "--commit-interval", "-1s"), []string{"--commit-interval -1s"}},
		{append(stream, "--topic", ","), []string{"--topic", "one or more"}},
		{append(stream, "--worker-id", "a/b"), []string{`usage: --worker-id "a/b": want 1 to 64 letters, digits`}},
		{append(stream, "--max-file-bytes", "-1"), []string{`"--max-file-bytes"`, "must not be negative"}},
		{[]string{"probe", "--test-fraction", "0", out}, []string{"--test-fraction 0", "(0, 1)"}},
		{[]string{"probe", "--test-fraction", "1", out}, []string{"--test-fraction 1", "(0, 1)"}},
		{[]string{"probe", "--k", "0", out}, []string{"--k 0", "1 or more"}},
		{[]string{"probe", "--epochs", "0", out}, []string{"usage: --epochs 0: want 1 or more"}},
		{[]string{"probe", "--pixel-size", "-2", out}, []string{"usage: --pixel-size -2: want 1 or more"}},
		{[]string{"probe", "--temperature", "0", out}, []string{"--temperature 0"}},
		{[]string{"probe", "--lr", "-1", out}, []string{"--lr -1"}},
		{[]string{"pretrain", "-o", out, "--max-pixels", "-1", imgs}, []string{"--max-pixels -1"}},
		{[]string{"pretrain", "-o", out, "--save-every", "-1", imgs}, []string{"--save-every -1"}},
		{[]string{"pretrain", "-o", out, "--keep-checkpoints", "-1", imgs}, []string{"--keep-checkpoints -1"}},
		{[]string{"pretrain", "-o", out, "--accum-iter", "0", imgs}, []string{"--accum-iter 0", "1 or more"}},
		{[]string{"pretrain", "-o", out, "--min-lr", "-1", imgs}, []string{"--min-lr -1"}},
		{[]string{"pretrain", "-o", out, "--min-lr", "1", "--batch-size", "2", imgs}, []string{"--min-lr 1 is above the learning rate 1.171875e-06 (--blr 0.00015 × effective batch 2 / 256)"}},
		{[]string{"pretrain", "-o", out, "--min-lr", "0.5", "--lr", "0.1", imgs}, []string{"--min-lr 0.5 is above the learning rate 0.1 (--lr)"}},
		{[]string{"pretrain", "-o", out, "--mask-ratio", "1", imgs}, []string{"--mask-ratio 1", "(0, 1)"}},
		{[]string{"pretrain", "-o", out, "--epochs", "0", imgs}, []string{"--epochs 0", "1 or more"}},
		{[]string{"pretrain", "-o", out, "--memory-budget", "1B", imgs}, []string{"--batch-size 64: its tensors take about", "memory budget of 1 B"}},
		{[]string{"pretrain", "-o", out, "--memory-budget", "1.5", imgs}, []string{"--memory-budget", "whole number of bytes"}},
		{[]string{"embed", "-o", out, "--memory-budget", "1.5", imgs}, []string{"--memory-budget", "whole number of bytes"}},
	} {
		code, _, stderr := maeembed(t, c.args...)
		for _, w := range c.want {
			if code != 2 || !strings.Contains(stderr, w) {
				t.Errorf("%q: exit %d, want 2 and %q\n%s", c.args, code, w, stderr)
				break
			}
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused run created %s", out)
	}
}

// pretrain --epochs 2 warms up for a tenth of the epochs instead of
// failing on the default 40; a warmup the user chose that does not fit is
// a usage error that names --warmup-epochs and what to pass.
func TestPretrainWarmupFitsEpochs(t *testing.T) {
	imgs := filepath.Join(fixtures, "tiny32", "images")
	cfg := filepath.Join(fixtures, "tiny32", "hf", "config.json")
	code, _, stderr := maeembed(t, "pretrain", "-m", cfg, "--epochs", "2", "--warmup-epochs", "3", "-o", filepath.Join(t.TempDir(), "o"), imgs)
	if code != 2 || !strings.Contains(stderr, "--warmup-epochs 3") || !strings.Contains(stderr, "pass --warmup-epochs 0.2") {
		t.Errorf("--warmup-epochs 3 --epochs 2: exit %d, want 2 naming --warmup-epochs and a value\n%s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"pretrain", "-m", cfg, "--epochs", "2", "--batch-size", "2", "--save-every", "0", "-o", out, imgs}
	code, _, stderr = maeembed(t, args...)
	if code != 0 || !strings.Contains(stderr, "warmup_epochs=0.2") {
		t.Errorf("--epochs 2 did not scale the warmup to 0.2:\n%s", stderr)
	}
	// The same flags resume against the same (scaled) recipe.
	if code, _, stderr := maeembed(t, append(args, "--resume")...); code != 0 {
		t.Errorf("--resume with the same flags: exit %d\n%s", code, stderr)
	}
}

// Only the default warmup is scaled: 40 given as --warmup-epochs or as the
// config file's warmup_epochs is the user's choice, and with --epochs 2 a
// usage error, not silently 0.2.
func TestPretrainChosenWarmupNotScaled(t *testing.T) {
	imgs := filepath.Join(fixtures, "tiny32", "images")
	cfg := filepath.Join(fixtures, "tiny32", "hf", "config.json")
	file := filepath.Join(t.TempDir(), "pretrain.yaml")
	if err := os.WriteFile(file, []byte("warmup_epochs: 40\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, given := range [][]string{{"--warmup-epochs", "40"}, {"--config-file", file}} {
		out := filepath.Join(t.TempDir(), "o")
		code, _, stderr := maeembed(t, append([]string{"pretrain", "-m", cfg, "--epochs", "2", "-o", out, imgs}, given...)...)
		if code != 2 || !strings.Contains(stderr, "--warmup-epochs 40") {
			t.Errorf("%v --epochs 2: exit %d, want 2 naming --warmup-epochs 40\n%s", given, code, stderr)
		}
	}
}

// Every command's help has a description and examples, and says each
// default once; an error names its command once.
func TestHelpAndErrorWording(t *testing.T) {
	for _, cmd := range []string{"embed", "reconstruct", "stream", "pretrain", "probe", "inspect", "convert"} {
		_, out, _ := maeembed(t, cmd, "--help")
		desc, _, _ := strings.Cut(out, "\nUsage:")
		if len(strings.TrimSpace(desc)) < 100 || !strings.Contains(out, "Examples:") {
			t.Errorf("%s --help has no long description or examples:\n%s", cmd, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Count(line, "(default") > 1 {
				t.Errorf("%s --help says a default twice: %s", cmd, line)
			}
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	_, _, stderr := maeembed(t, "convert", "-o", dir, filepath.Join(fixtures, "tiny32", "hf"))
	if strings.Count(stderr, "convert:") != 1 {
		t.Errorf("convert error repeats its prefix: %s", stderr)
	}
}

// The commands that run a model (and refuse a MAEEMBED_KERNEL they cannot
// follow) name their environment switches, which have no flags; inspect
// and convert, which only warn about them, do not.
func TestHelpNamesKernelEnv(t *testing.T) {
	for _, cmd := range []string{"embed", "reconstruct", "stream", "pretrain", "probe", "inspect", "convert"} {
		_, out, stderr := maeembed(t, cmd, "--help")
		for _, want := range []string{"MAEEMBED_KERNEL=avx512|avx2|generic", "MAEEMBED_STRASSEN=0"} {
			if got := strings.Contains(out+stderr, want); got != runsModel[cmd] {
				t.Errorf("%s --help: has %q is %v, want %v:\n%s%s", cmd, want, got, runsModel[cmd], out, stderr)
			}
		}
	}
}

// A value out of range that came from --config-file is refused naming the
// file and its key, not only the flag the user did not type; a flag given
// on the command line over it is named alone.
func TestConfigFileValueErrorNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "run.yaml")
	if err := os.WriteFile(cfg, []byte("workers: -3\nbatch_size: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(fixtures, "tiny32", "images")
	for _, args := range [][]string{
		{"embed", "--config-file", cfg, "--batch-size", "2", "-o", filepath.Join(dir, "e"), in},
		{"pretrain", "--config-file", cfg, "--batch-size", "2", "-o", filepath.Join(dir, "p"), in},
	} {
		code, _, stderr := maeembed(t, args...)
		if code != 2 || !strings.Contains(stderr, "--workers -3") || !strings.Contains(stderr, "(from key workers of --config-file "+cfg+")") {
			t.Errorf("%s with workers: -3 in the config file: exit %d\n%s", args[0], code, stderr)
		}
	}
	code, _, stderr := maeembed(t, "embed", "--config-file", cfg, "--workers", "-2", "--batch-size", "2", "-o", filepath.Join(dir, "e"), in)
	if code != 2 || !strings.Contains(stderr, "--workers -2") || strings.Contains(stderr, "from key") {
		t.Errorf("--workers -2 over the config file's: exit %d\n%s", code, stderr)
	}
}
