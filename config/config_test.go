package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type Part struct {
	Rows int `yaml:"rows"`
}

type opts struct {
	Part     `yaml:",inline"`
	Name     string        `yaml:"name"`
	Every    time.Duration `yaml:"every"`
	Exts     []string      `yaml:"exts"`
	Paths    []string      `yaml:"paths"`
	Norm     AutoBool      `yaml:"norm"`
	Resume   bool          `yaml:"resume"`
	internal int
}

func write(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A file fills the struct (inline structs too), then flags bound to the
// same fields override it; a list flag replaces the file's list.
func TestLoadThenFlags(t *testing.T) {
	var o opts
	path := write(t, "rows: 3\nname: a\nevery: 2s\nexts: jpg, png\npaths: a,b.png\nnorm: false\n")
	keys, err := Load(path, &o, "paths")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"every", "exts", "name", "norm", "paths", "rows"}) {
		t.Errorf("keys %v", keys)
	}
	if o.Rows != 3 || o.Name != "a" || o.Every != 2*time.Second || !slices.Equal(o.Exts, []string{"jpg", "png"}) ||
		!slices.Equal(o.Paths, []string{"a,b.png"}) || !o.Norm.Set || o.Norm.Value {
		t.Errorf("loaded %+v", o)
	}
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.IntVar(&o.Rows, "rows", o.Rows, "")
	fs.Var(List(&o.Exts), "exts", "")
	fs.VarPF(o.Norm.Flag(), "norm", "", "").NoOptDefVal = "true"
	if err := fs.Parse([]string{"--exts", "webp", "--exts", "gif", "--norm"}); err != nil {
		t.Fatal(err)
	}
	if o.Rows != 3 || !slices.Equal(o.Exts, []string{"webp", "gif"}) || !o.Norm.Or(false) {
		t.Errorf("after flags %+v", o)
	}
	if err := CheckKeys(fs, keys, []string{"every", "name", "paths"}, path, "cmd"); err != nil {
		t.Error(err)
	}
	if err := CheckKeys(fs, keys, nil, path, "cmd"); err == nil || !strings.Contains(err.Error(), `"every" is not an option of cmd`) || !errors.Is(err, ErrUsage) {
		t.Errorf("a key without a flag: %v", err)
	}
}

// Errors are usage errors that name the key, the file and the line, not
// Go types.
func TestLoadErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"rowz: 1\n":                    "unknown key rowz",
		"naem: x\n":                    "unknown key naem in config file",
		"exts_list: [a]\n":             "unknown key exts_list",
		"internal: 1\n":                "unknown key internal",
		"rows: 1.5\n":                  "key rows (line 1): want a whole number, got 1.5",
		"rows: 99999999999999999999\n": "key rows (line 1): 99999999999999999999 is out of range",
		"resume: 1\n":                  "key resume (line 1): want true or false, got 1",
		"rows: x\n":                    "key rows (line 1): cannot unmarshal",
		"every: 1.5\n":                 "want a duration",
		"every: 10\n":                  "key every (line 1): want a duration such as 50ms or 10s, got 10",
		"name: a\nname: b\n":           "key name given twice (line 2)",
		"- a\n":                        "want a mapping",
		"name: [unclosed\n":            "config file",
		"norm: sometimes\n":            "key norm",
		"rows: 1\nrows: 2\n ":          "given twice",
	} {
		var o opts
		path := write(t, yaml)
		_, err := Load(path, &o)
		if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "config.opts") {
			t.Errorf("%q: %v, want a usage error with %q and the path", yaml, err, want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), &opts{}); err == nil || !errors.Is(err, ErrUsage) {
		t.Errorf("missing file: %v", err)
	}
	if keys, err := Load("", &opts{}); err != nil || keys != nil {
		t.Errorf("no file: %v %v", keys, err)
	}
}

// An unknown key that is a near miss of a key (a typo, a missing
// underscore, a singular for a plural) says which one was meant; one that
// is not says nothing more.
func TestUnknownKeyHint(t *testing.T) {
	for y, want := range map[string]string{
		"rowz: 1\n":     "(line 1) (did you mean rows?)",
		"row: 1\n":      "(line 1) (did you mean rows?)",
		"naem: x\n":     "(line 1) (did you mean name?)",
		"every_s: 1s\n": "(line 1) (did you mean every?)",
		"colour: red\n": "(line 1)",
		"internal: 1\n": "(line 1)",
	} {
		_, err := Load(write(t, y), &opts{})
		if err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%q: %v, want it to end in %q", y, err, want)
		}
	}
}

// A duration of 0 needs no unit, as with the flags (flush_interval: 0 is
// "only when full"); YAML reads it as an integer.
func TestLoadZeroDuration(t *testing.T) {
	for _, y := range []string{"every: 0\n", "every: '0'\n"} {
		o := opts{Every: time.Second}
		if _, err := Load(write(t, y), &o); err != nil || o.Every != 0 {
			t.Errorf("%q: %v, every %v", y, err, o.Every)
		}
	}
}

func TestFindFile(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"embed", "--config-file", "a.yaml", "x"}, "a.yaml"},
		{[]string{"embed", "--config-file=b.yaml"}, "b.yaml"},
		{[]string{"embed", "--config-file"}, ""},
		{[]string{"embed", "x"}, ""},
	} {
		if got := FindFile(c.args); got != c.want {
			t.Errorf("%v: %q, want %q", c.args, got, c.want)
		}
	}
}
