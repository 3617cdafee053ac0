package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
	os.WriteFile(cfg, []byte("inputs: a,b.png\n"), 0o644)
	if o, err := parseFor(embedCommand, "embed", "--config-file", cfg); err != nil || !slices.Equal(o.Inputs, []string{"a,b.png"}) {
		t.Errorf("inputs: a path with a comma is one input: %v %v", err, o)
	}
}

// Negative counts are usage errors, not silently taken as the default.
func TestNegativeCountsRefused(t *testing.T) {
	m := filepath.Join(fixtures, "small48", "hf")
	imgs := filepath.Join(fixtures, "small48", "images")
	for _, args := range [][]string{{"--workers", "-1"}, {"--max-file-rows", "-1"}} {
		code, _, stderr := maeembed(t, append([]string{"embed", "-m", m, "-o", t.TempDir(), imgs}, args...)...)
		if code != 2 || !strings.Contains(stderr, args[0]) {
			t.Errorf("%v: exit %d, want 2 naming the flag\n%s", args, code, stderr)
		}
	}
	code, _, stderr := maeembed(t, "stream", "--brokers", "127.0.0.1:1", "--topic", "t", "-o", t.TempDir(), "--workers", "-2")
	if code != 2 || !strings.Contains(stderr, "--workers") {
		t.Errorf("stream --workers -2: exit %d\n%s", code, stderr)
	}
}

// convert refuses to replace an existing, non-empty output directory
// unless --force; an empty one is filled.
func TestConvertRefusesExistingOutput(t *testing.T) {
	src := filepath.Join(fixtures, "tiny32", "hf")
	out := t.TempDir() // exists, empty
	mustRun(t, "convert", src, "-o", out)
	cfg := filepath.Join(out, "config.json")
	os.WriteFile(cfg, []byte("{}\n"), 0o644) // a user's edit
	code, _, stderr := maeembed(t, "convert", src, "-o", out)
	if code != 2 || !strings.Contains(stderr, "--force") {
		t.Errorf("convert over an existing checkpoint: exit %d, want 2 naming --force\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "{}\n" {
		t.Error("the existing directory was changed")
	}
	mustRun(t, "convert", "--force", src, "-o", out)
	if b, _ := os.ReadFile(cfg); string(b) == "{}\n" {
		t.Error("--force did not replace the checkpoint")
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
