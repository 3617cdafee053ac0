package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every config in configs/ parses and runs end to end (with the model
// overridden by a flag, so the test stays offline).
func TestConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no configs found")
	}
	tiny := filepath.Join(fixtures, "tiny32")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if strings.HasPrefix(filepath.Base(f), "stream") {
				streamConfigCheck(t, f) // needs a broker: stream_test.go
				return
			}
			cmd := "embed"
			if filepath.Base(f) == "reconstruct.yaml" {
				cmd = "reconstruct"
			}
			out := t.TempDir()
			mustRun(t, cmd, "--config-file", f, "-m", filepath.Join(tiny, "hf"), "-o", out, filepath.Join(tiny, "images"))
			ents, err := os.ReadDir(out)
			if err != nil || len(ents) < 1 { // outputs (errors/ only with an error row)
				t.Fatalf("config %s produced %v (%v)", f, ents, err)
			}
		})
	}
}

// parseFor parses args (without the command name) as command s would and
// returns the options it would run with.
func parseFor(s commandSpec, name string, args ...string) (*Options, error) {
	var got *Options
	s.run = func(_ *env, o *Options) error { got = o; return nil }
	c := (&env{}).command(s, append([]string{name}, args...))
	c.SetArgs(args)
	c.SetOut(io.Discard)
	return got, c.Execute()
}

// Flags override the YAML file; unknown keys in it are an error.
func TestConfigFileOverrides(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("pool: cls\nbatch_size: 3\nformat: npy\n"), 0o644)
	o, err := parseFor(embedCommand, "embed", "--config-file", cfg, "--pool", "tokens", "in")
	if err != nil {
		t.Fatal(err)
	}
	if o.Pool != "tokens" || o.BatchSize != 3 || o.Format != "npy" || len(o.Inputs) != 1 {
		t.Errorf("got %+v", o)
	}
	os.WriteFile(cfg, []byte("pooll: cls\n"), 0o644)
	if _, err := parseFor(embedCommand, "embed", "--config-file", cfg); err == nil {
		t.Error("unknown key accepted")
	}
}

// Each command accepts only its own options: a reconstruct key in an embed
// file (or an embed key in a stream file) is refused, naming the key.
func TestConfigFileKeysPerCommand(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	for _, c := range []struct {
		spec       commandSpec
		name, yaml string
	}{
		{embedCommand, "embed", "mask_noise: n.npy\n"},
		{reconstructCommand, "reconstruct", "pool: cls\n"},
		{streamCommand, "stream", "fail_on_error: true\n"},
	} {
		os.WriteFile(cfg, []byte(c.yaml), 0o644)
		key, _, _ := strings.Cut(c.yaml, ":")
		_, err := parseFor(c.spec, c.name, "--config-file", cfg)
		if err == nil || !strings.Contains(err.Error(), key) || !errors.Is(err, errUsage) {
			t.Errorf("%s with %q: %v", c.name, c.yaml, err)
		}
	}
	os.WriteFile(cfg, []byte("topics: [a]\nbrokers: [b]\n"), 0o644)
	if o, err := parseFor(streamCommand, "stream", "--config-file", cfg); err != nil || o.Stream.Consumer.Topics[0] != "a" {
		t.Errorf("stream keys: %v %+v", err, o)
	}
}

// The input options (sources.Options, inlined) and the memory budget follow
// the same rule: keys of the commands that have their flags, refused by
// the others; probe has its own options.
func TestConfigFileInputAndBudgetKeys(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("extensions: [jpg, png]\nimage_column: img\nid_column: key\nimage_root: /data\nmemory_budget: 512MiB\n"), 0o644)
	o, err := parseFor(embedCommand, "embed", "--config-file", cfg, "--image-column", "pic", "in")
	if err != nil {
		t.Fatal(err)
	}
	if s := o.Source; len(s.Extensions) != 2 || s.ImageColumn != "pic" || s.IDColumn != "key" || s.ImageRoot != "/data" || o.MemBudget != "512MiB" {
		t.Errorf("got %+v, memory budget %q", o.Source, o.MemBudget)
	}
	os.WriteFile(cfg, []byte("memory_budget: 1GiB\n"), 0o644)
	if o, err := parseFor(streamCommand, "stream", "--config-file", cfg); err != nil || o.MemBudget != "1GiB" {
		t.Errorf("stream memory_budget: %v", err)
	}
	os.WriteFile(cfg, []byte("extensions: [jpg]\n"), 0o644)
	if _, err := parseFor(streamCommand, "stream", "--config-file", cfg); err == nil || !strings.Contains(err.Error(), "extensions") || !errors.Is(err, errUsage) {
		t.Errorf("stream with extensions: %v", err)
	}
	for _, yaml := range []string{"pool: cls\n", "memory_budget: 1GiB\n"} {
		os.WriteFile(cfg, []byte(yaml), 0o644)
		key, _, _ := strings.Cut(yaml, ":")
		code, _, stderr := maeembed(t, "probe", "--config-file", cfg, t.TempDir())
		if code != 2 || !strings.Contains(stderr, key) {
			t.Errorf("probe with %q: exit %d\n%s", yaml, code, stderr)
		}
	}
}

// precision is a key of the commands that run the model on images (embed,
// reconstruct, stream); inspect and convert refuse it.
func TestConfigFilePrecisionKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("precision: int8\n"), 0o644)
	for _, c := range []struct {
		spec commandSpec
		name string
	}{{embedCommand, "embed"}, {reconstructCommand, "reconstruct"}, {streamCommand, "stream"}} {
		if o, err := parseFor(c.spec, c.name, "--config-file", cfg); err != nil || o.Precision != "int8" {
			t.Errorf("%s precision: %v", c.name, err)
		}
		if o, err := parseFor(c.spec, c.name, "--config-file", cfg, "--precision", "bf16"); err != nil || o.Precision != "bf16" {
			t.Errorf("%s --precision over the file: %v", c.name, err)
		}
	}
	for _, c := range []struct {
		spec commandSpec
		name string
	}{{inspectCommand, "inspect"}, {convertCommand, "convert"}} {
		_, err := parseFor(c.spec, c.name, "--config-file", cfg)
		if err == nil || !strings.Contains(err.Error(), "precision") || !errors.Is(err, errUsage) {
			t.Errorf("%s with precision: %v", c.name, err)
		}
	}
}

// The reported config files, through the CLI: a second YAML document (a
// batch_size: 0 there) is refused with exit status 2, naming the file,
// instead of being ignored; resume: "false" is resume: false; resume: no
// is refused, naming the key, the file and what is taken.
func TestConfigFileDocumentsAndBooleans(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	tiny := filepath.Join(fixtures, "tiny32")
	run := func(yaml string) (int, string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := maeembed(t, "embed", "--dry-run", "--config-file", cfg, "-m", filepath.Join(tiny, "hf"), "-o", filepath.Join(t.TempDir(), "out"), filepath.Join(tiny, "images"))
		return code, stderr
	}
	if code, stderr := run("pool: cls\n---\nbatch_size: 0\n"); code != 2 || !strings.Contains(stderr, cfg) || !strings.Contains(stderr, "more than one YAML document") {
		t.Errorf("two documents: exit %d, want 2 and an error naming %s\n%s", code, cfg, stderr)
	}
	for _, yaml := range []string{"resume: \"false\"\n", "resume: false\n"} {
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		if o, err := parseFor(embedCommand, "embed", "--config-file", cfg, "in"); err != nil || o.Resume {
			t.Errorf("%q: %v, resume %v, want false", yaml, err, o != nil && o.Resume)
		}
	}
	for _, yaml := range []string{"resume: no\n", "fail_on_error: \"on\"\n"} {
		key, _, _ := strings.Cut(yaml, ":")
		if code, stderr := run(yaml); code != 2 || !strings.Contains(stderr, cfg) || !strings.Contains(stderr, "key "+key) || !strings.Contains(stderr, "want true or false") {
			t.Errorf("%q: exit %d, want 2 and an error naming %s, the key and true or false\n%s", yaml, code, cfg, stderr)
		}
	}
}

// The reported config file: extensions: ~ (a null) was read as the one
// extension "~", so a directory input took no file. An empty value is
// refused for every option with exit status 2, naming the key, the line
// and the file, in every command; a quoted number is the number.
func TestConfigFileEmptyValues(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	in := filepath.Join(fixtures, "tiny32", "images")
	for _, c := range []struct {
		yaml, key string
		args      []string
	}{
		{"resume: true\nextensions: ~\n", "extensions", []string{"embed", "--dry-run", "-o", filepath.Join(dir, "e"), in}},
		{"extensions:\n", "extensions", []string{"reconstruct", "--dry-run", "-o", filepath.Join(dir, "r"), in}},
		{"workers: ~\n", "workers", []string{"embed", "--dry-run", "-o", filepath.Join(dir, "e"), in}},
		{"model: null\n", "model", []string{"embed", "--dry-run", "-o", filepath.Join(dir, "e"), in}},
		// (Without --output: read as the topic "~", it would fail for that.)
		{"topics: ~\n", "topics", []string{"stream", "--brokers", "127.0.0.1:1"}},
		{"memory_budget:\n", "memory_budget", []string{"pretrain", "-o", filepath.Join(dir, "p"), in}},
		{"epochs: ~\n", "epochs", []string{"pretrain", "-o", filepath.Join(dir, "p"), in}},
	} {
		if err := os.WriteFile(cfg, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		line := strings.Count(c.yaml[:strings.Index(c.yaml, c.key+":")], "\n") + 1
		code, _, stderr := maeembed(t, append(c.args, "--config-file", cfg)...)
		if want := fmt.Sprintf("key %s (line %d): want", c.key, line); code != 2 || !strings.Contains(stderr, cfg) || !strings.Contains(stderr, want) ||
			!strings.Contains(stderr, "got an empty value") {
			t.Errorf("%s with %q: exit %d, want 2 and an error naming %s and %q\n%s", c.args[0], c.yaml, code, cfg, want, stderr)
		}
	}
	if err := os.WriteFile(cfg, []byte("workers: \"3\"\nbatch_size: '2'\nextensions: png\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := parseFor(embedCommand, "embed", "--config-file", cfg, "in"); err != nil || o.Workers != 3 || o.BatchSize != 2 || !slices.Equal(o.Source.Extensions, []string{"png"}) {
		t.Errorf("quoted numbers and extensions: png: %v %+v", err, o)
	}
}
