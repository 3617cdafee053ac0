package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// Sizes take binary and decimal units, fractions, TiB and a space before
// the unit (the docs write "16 MiB"); a bare unit letter stays binary;
// anything else is refused.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1073741824": 1 << 30, "512MiB": 512 << 20, "1.5GiB": 3 << 29, "1TiB": 1 << 40, "2G": 2 << 30,
		"100MB": 100e6, "1 GiB": 1 << 30, "64K": 64 << 10, "1.5TB": 1.5e12, "16 MiB": 16 << 20, "0": 0,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1GiB", "1XiB", "99999999999EiB", "1.5", "1e9", "-3"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
	// Too large is said as such, not as a malformed size or a fraction.
	for _, in := range []string{"9999999999999TiB", "99999999999999999999", "5EiB", "4.5EiB"} {
		if _, err := ParseSize(in); err == nil || !strings.Contains(err.Error(), "too large") {
			t.Errorf("ParseSize(%q): %v, want \"too large\"", in, err)
		}
	}
}

type sized struct {
	Max  Size  `yaml:"fetch_max_bytes"`
	Rows int64 `yaml:"rows"`
}

// A Size option takes "1MiB" from a flag and from a config file, a plain
// number still works, and bad input is refused naming the flag or key.
func TestSizeFlagAndFile(t *testing.T) {
	for in, want := range map[string]Size{"1MiB": 1 << 20, "16 MiB": 16 << 20, "16777216": 16 << 20, "32M": 32 << 20} {
		var o sized
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		fs.Var(&o.Max, "fetch-max-bytes", "")
		if err := fs.Parse([]string{"--fetch-max-bytes", in}); err != nil || o.Max != want {
			t.Errorf("--fetch-max-bytes %s: %d, %v; want %d", in, o.Max, err, want)
		}
		if f := fs.Lookup("fetch-max-bytes"); f.Value.String() != (&want).String() || (&want).String() == "" {
			t.Errorf("--fetch-max-bytes %s shows as %q", in, f.Value.String())
		}
	}
	var o sized
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.Var(&o.Max, "fetch-max-bytes", "")
	fs.SetOutput(&strings.Builder{})
	if err := fs.Parse([]string{"--fetch-max-bytes", "1MX"}); err == nil || !strings.Contains(err.Error(), "--fetch-max-bytes") || !strings.Contains(err.Error(), "MiB") {
		t.Errorf("--fetch-max-bytes 1MX: %v, want an error naming the flag and the units", err)
	}

	dir := t.TempDir()
	for text, want := range map[string]Size{"fetch_max_bytes: 1MiB\n": 1 << 20, "fetch_max_bytes: 16 MiB\n": 16 << 20, "fetch_max_bytes: 4096\n": 4096, "fetch_max_bytes: \"2GiB\"\n": 2 << 30} {
		path := filepath.Join(dir, "c.yaml")
		os.WriteFile(path, []byte(text), 0o644)
		var o sized
		if _, err := Load(path, &o); err != nil || o.Max != want {
			t.Errorf("%q: %d, %v; want %d", text, o.Max, err, want)
		}
	}
	for _, text := range []string{"fetch_max_bytes: lots\n", "fetch_max_bytes: 1.5\n", "fetch_max_bytes: [1]\n", "fetch_max_bytes: -1\n"} {
		path := filepath.Join(dir, "c.yaml")
		os.WriteFile(path, []byte(text), 0o644)
		var o sized
		if _, err := Load(path, &o); err == nil || !strings.Contains(err.Error(), "key fetch_max_bytes") {
			t.Errorf("%q: %v, want an error naming the key", text, err)
		}
	}
	// A fraction without a unit is refused as the flag refuses it, not as
	// "want a whole number" (1.5GiB is fine).
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("fetch_max_bytes: 1.5\n"), 0o644)
	o = sized{}
	if _, err := Load(path, &o); err == nil || !strings.Contains(err.Error(), "give a unit for a fraction") {
		t.Errorf("fetch_max_bytes: 1.5: %v, want the flag's advice", err)
	}
	// A plain int option still wants a whole number.
	os.WriteFile(path, []byte("rows: 1.5\n"), 0o644)
	if _, err := Load(path, &o); err == nil || !strings.Contains(err.Error(), "whole number") {
		t.Errorf("rows: 1.5: %v", err)
	}
}
