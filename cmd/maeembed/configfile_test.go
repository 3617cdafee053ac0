package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeConfig writes a config file named name in dir.
func writeConfig(t *testing.T, dir, name, yaml string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A second --config-file is a usage error naming both files, not a file
// silently ignored; so is an empty one. After "--" a --config-file is an
// INPUT, not read as a config file.
func TestConfigFileGivenTwiceOrEmptyOrAfterDashes(t *testing.T) {
	tiny, _ := filepath.Abs(filepath.Join(fixtures, "tiny32"))
	dir := t.TempDir()
	a := writeConfig(t, dir, "a3.yaml", "batch_size: 3\n")
	b := writeConfig(t, dir, "b.yaml", "workers: bad\n")
	common := []string{"--dry-run", "-m", filepath.Join(tiny, "hf"), "-o", filepath.Join(dir, "out")}
	for _, flags := range [][]string{
		{"--config-file", a, "--config-file", b},
		{"--config-file=" + a, "--config-file", b},
		{"--config-file", a, "--config-file=" + b},
	} {
		args := append(append([]string{"embed"}, flags...), append(common, filepath.Join(tiny, "images"))...)
		code, _, stderr := maeembed(t, args...)
		if code != 2 || !strings.Contains(stderr, "--config-file given twice") || !strings.Contains(stderr, a) || !strings.Contains(stderr, b) {
			t.Errorf("%v: exit %d, want 2 and an error naming %s and %s\n%s", flags, code, a, b, stderr)
		}
	}
	for _, flags := range [][]string{{"--config-file="}, {"--config-file", ""}} {
		args := append(append([]string{"embed"}, flags...), append(common, filepath.Join(tiny, "images"))...)
		code, _, stderr := maeembed(t, args...)
		if code != 2 || !strings.Contains(stderr, "--config-file needs a file") {
			t.Errorf("%q: exit %d, want 2 and an error about the empty --config-file\n%s", flags, code, stderr)
		}
	}

	// After --, everything is an INPUT: b.yaml is not read (its workers:
	// bad not refused), and "--config-file" is an input that does not exist.
	args := append(append([]string{"embed"}, common...), "--", filepath.Join(tiny, "images"), "--config-file", b)
	code, _, stderr := maeembed(t, args...)
	if code != 2 || strings.Contains(stderr, "workers") || !strings.Contains(stderr, "--config-file") {
		t.Errorf("--config-file after --: exit %d, want 2 for the input --config-file, not b.yaml's workers\n%s", code, stderr)
	}
	c := writeConfig(t, dir, "c.yaml", "batch_size: 5\n")
	o, err := parseFor(embedCommand, "embed", "--", "in", "--config-file", c)
	if err != nil {
		t.Fatal(err)
	}
	if o.BatchSize != 8 || !slices.Equal(o.Inputs, []string{"in", "--config-file", c}) {
		t.Errorf("after --: batch size %d (want the default 8), inputs %q", o.BatchSize, o.Inputs)
	}
}

// A leading ~ (alone, or ~/...) of a path-valued key is the home
// directory, as a shell would expand it; other values keep a ~.
func TestConfigFileTildePaths(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg := writeConfig(t, t.TempDir(), "c.yaml", `model: ~/m.safetensors
config: ~/config.json
cache_dir: ~/mcache
output: "~"
inputs: [~/a, b/~/c, ~x/d]
mask_noise: ~/noise.npy
image_root: ~/root
id_column: "~/id"
`)
	o, err := parseFor(reconstructCommand, "reconstruct", "--config-file", cfg)
	if err != nil {
		t.Fatal(err)
	}
	j := func(p string) string { return filepath.Join(home, p) }
	for _, c := range []struct{ key, got, want string }{
		{"model", o.Model.Name, j("m.safetensors")},
		{"config", o.Model.Config, j("config.json")},
		{"cache_dir", o.Model.CacheDir, j("mcache")},
		{"output", o.Output, home},
		{"mask_noise", o.MaskNoise, j("noise.npy")},
		{"image_root", o.Source.ImageRoot, j("root")},
		{"id_column", o.Source.IDColumn, "~/id"}, // a column name, not a path
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.key, c.got, c.want)
		}
	}
	if want := []string{j("a"), "b/~/c", "~x/d"}; !slices.Equal(o.Inputs, want) {
		t.Errorf("inputs %q, want %q", o.Inputs, want)
	}

	cfg = writeConfig(t, t.TempDir(), "s.yaml", "tls_ca: ~/ca.pem\ntls_cert: ~/c.pem\ntls_key: ~/k.pem\n")
	o, err = parseFor(streamCommand, "stream", "--config-file", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := o.Stream.Consumer.Security; s.CAFile != j("ca.pem") || s.CertFile != j("c.pem") || s.KeyFile != j("k.pem") {
		t.Errorf("tls files %q %q %q, want them in %s", s.CAFile, s.CertFile, s.KeyFile, home)
	}
}

// A run whose config file names its model, inputs and output under ~/
// reads and writes them in the home directory, and makes no directory
// named ~ where it runs.
func TestConfigFileTildeRun(t *testing.T) {
	tiny, _ := filepath.Abs(filepath.Join(fixtures, "tiny32"))
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, d := range []string{"hf", "images"} {
		if err := os.Symlink(filepath.Join(tiny, d), filepath.Join(home, d)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, t.TempDir(), "c.yaml", "model: ~/hf\ninputs: ~/images\noutput: ~/out\nformat: npy\n")
	wd := t.TempDir()
	t.Chdir(wd)
	mustRun(t, "embed", "--config-file", cfg)
	if ents, err := os.ReadDir(filepath.Join(home, "out")); err != nil || len(ents) == 0 {
		t.Errorf("~/out: %v %v", ents, err)
	}
	if _, err := os.Stat(filepath.Join(wd, "~")); err == nil {
		t.Errorf("a directory named ~ was made in %s", wd)
	}
}

// A YAML syntax error names the file and the line, line 1 too; a value
// that is a bare - gets a hint to quote it.
func TestConfigFileSyntaxErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ yaml, want string }{
		{"id_column: -\n", `line 1: YAML syntax: block sequence entries are not allowed in this context; the value of id_column starts with "-": quote it (id_column: "-")`},
		{"workers: 2\nid_column: -\n", `line 2: YAML syntax: block sequence entries are not allowed in this context; the value of id_column starts with "-"`},
		{"pool: @x\n", "line 1: YAML syntax: found character that cannot start any token"},
		{"pool: cls\nworkers: [\n", "line 2: YAML syntax: did not find expected node content"},
	} {
		cfg := writeConfig(t, dir, "c.yaml", c.yaml)
		code, _, stderr := maeembed(t, "embed", "--config-file", cfg, "-o", filepath.Join(dir, "out"), "x.jpg")
		if code != 2 || !strings.Contains(stderr, "config file "+cfg+", "+c.want) {
			t.Errorf("%q: exit %d, want 2 and %q\n%s", c.yaml, code, c.want, stderr)
		}
	}
}

// A key of another command is refused with its line.
func TestConfigFileOtherCommandsKeyLine(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "c.yaml", "batch_size: 2\npool: cls\n")
	code, _, stderr := maeembed(t, "reconstruct", "--config-file", cfg, "-o", filepath.Join(dir, "out"), "x.jpg")
	if want := `"pool" (line 2) is not an option of reconstruct`; code != 2 || !strings.Contains(stderr, cfg) || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, want 2 and %q naming %s\n%s", code, want, cfg, stderr)
	}
}
