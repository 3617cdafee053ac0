package main

import (
	"flag"
	"os"
	"path/filepath"
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
			if err != nil || len(ents) < 2 { // outputs + errors/
				t.Fatalf("config %s produced %v (%v)", f, ents, err)
			}
		})
	}
}

// Flags override the YAML file; unknown keys in it are an error.
func TestConfigFileOverrides(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("pool: cls\nbatch_size: 3\nformat: npy\n"), 0o644)
	o, err := parseOptions("embed", []string{"--config-file", cfg, "--pool", "tokens", "in"}, func(fs *flag.FlagSet, o *Options) { runFlags(fs, o); fs.StringVar(&o.Pool, "pool", o.Pool, "") })
	if err != nil {
		t.Fatal(err)
	}
	if o.Pool != "tokens" || o.BatchSize != 3 || o.Format != "npy" || len(o.Inputs) != 1 {
		t.Errorf("got %+v", o)
	}
	os.WriteFile(cfg, []byte("pooll: cls\n"), 0o644)
	if _, err := parseOptions("embed", []string{"--config-file", cfg}, runFlags); err == nil {
		t.Error("unknown key accepted")
	}
}
