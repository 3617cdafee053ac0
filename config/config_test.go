package config

import (
	"errors"
	"io"
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
	Rate     float64       `yaml:"rate"`
	Seed     uint64        `yaml:"seed"`
	Budget   Size          `yaml:"budget"`
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
	if !slices.Equal(keys.Names(), []string{"every", "exts", "name", "norm", "paths", "rows"}) {
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
	if err := CheckKeys(fs, keys, nil, path, "cmd"); err == nil || !strings.Contains(err.Error(), `"every" (line 3) is not an option of cmd`) || !errors.Is(err, ErrUsage) {
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
		"resume:\n":                    "key resume (line 1): want true or false, got an empty value (nothing)",
		"rows: 1\nresume: ~\n":         "key resume (line 2): want true or false, got an empty value (~)",
		"norm: null\n":                 "key norm (line 1): want true or false, got an empty value (null)",
		"rows: x\n":                    "key rows (line 1): want a whole number, got x",
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

// A file of several YAML documents is refused, naming the file and the
// line of the second document's ---: yaml.Unmarshal reads the first one
// only, so the second one's options (a batch_size: 0 there) would be
// dropped without a word. A single document may start with --- or end
// with ...; a file of comments only sets nothing, and so does a trailing
// document with no options (a --- followed by nothing or comments).
func TestLoadOneDocument(t *testing.T) {
	for y, line := range map[string]string{
		"rows: 1\n---\nrows: 0\n":         "line 2",
		"---\nrows: 1\n---\nname: b\n":    "line 3",
		"rows: 1\n...\n---\nname: b\n":    "line 3",
		"rows: 1\n---\n---\nrows: 0\n":    "line 3",
		"rows: 1\n---\nrows: [unclosed\n": "",
	} {
		o := opts{}
		path := write(t, y)
		_, err := Load(path, &o)
		if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: %v, want a usage error naming %s", y, err, path)
			continue
		}
		if line != "" && (!strings.Contains(err.Error(), "more than one YAML document") || !strings.Contains(err.Error(), "--- at "+line)) {
			t.Errorf("%q: %v, want more than one YAML document (--- at %s)", y, err, line)
		}
	}
	for y, rows := range map[string]int{"---\nrows: 2\n": 2, "rows: 3\n...\n": 3, "# nothing\n": 0, "": 0,
		"rows: 4\n---\n": 4, "rows: 5\n\n---\n": 5, "rows: 6\n---\n# rows: 0\n": 6, "rows: 7\n---\n# a\n---\n": 7} {
		o := opts{}
		if _, err := Load(write(t, y), &o); err != nil || o.Rows != rows {
			t.Errorf("%q: %v, rows %d, want %d", y, err, o.Rows, rows)
		}
	}
}

// Booleans are true or false, quoted or not, in either kind of boolean
// option (bool, AutoBool), whose errors name the key and the file and
// say what is taken: resume: "false" was refused as a string while
// resume: no (YAML 1.1) was false.
func TestLoadBooleans(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"true", true}, {"false", false}, {`"true"`, true}, {`"false"`, false},
		{"'false'", false}, {"True", true}, {"FALSE", false}, {`"False"`, false},
	} {
		o := opts{Resume: !c.want}
		if _, err := Load(write(t, "resume: "+c.v+"\nnorm: "+c.v+"\n"), &o); err != nil || o.Resume != c.want || !o.Norm.Set || o.Norm.Value != c.want {
			t.Errorf("%s: %v, resume %v, norm %+v, want %v", c.v, err, o.Resume, o.Norm, c.want)
		}
	}
	for _, v := range []string{"no", "yes", "on", "off", "n", "Y", `"no"`, "'off'", "NO", "1", "0", `"1"`, "t", "f", "tru", `""`, "[true]", "{a: b}"} {
		for _, key := range []string{"resume", "norm"} {
			path := write(t, key+": "+v+"\n")
			_, err := Load(path, &opts{})
			if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "key "+key+" (line 1)") || !strings.Contains(err.Error(), "want true or false") {
				t.Errorf("%s: %s: %v, want a usage error naming the key, the file and true or false", key, v, err)
				continue
			}
			if lv := strings.ToLower(strings.Trim(v, `"'`)); (lv == "no" || lv == "off") && !strings.Contains(err.Error(), "yes/no/on/off are not taken") {
				t.Errorf("%s: %s: %v, want it to say that yes/no/on/off are not taken", key, v, err)
			}
		}
	}
	// An empty value is refused too: it would leave the option at its
	// default without a word, whichever way the file meant it.
	for _, y := range []string{"resume:\n", "resume: ~\n", "norm: ~\n", "norm: null\n", "norm:\n"} {
		path := write(t, y)
		if _, err := Load(path, &opts{}); err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "(line 1): want true or false, got an empty value") {
			t.Errorf("%q: %v, want a usage error naming the file, the line and true or false", y, err)
		}
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
		args      []string
		want, err string
	}{
		{[]string{"embed", "--config-file", "a.yaml", "x"}, "a.yaml", ""},
		{[]string{"embed", "--config-file=b.yaml"}, "b.yaml", ""},
		{[]string{"embed", "--config-file"}, "", ""},
		{[]string{"embed", "x"}, "", ""},
		{[]string{"embed", "--", "x", "--config-file", "b.yaml"}, "", ""},
		{[]string{"embed", "--config-file", "a.yaml", "--", "--config-file", "b.yaml"}, "a.yaml", ""},
		{[]string{"embed", "--config-file", "a.yaml", "--config-file", "b.yaml"}, "", "--config-file given twice (a.yaml and b.yaml)"},
		{[]string{"embed", "--config-file=a.yaml", "x", "--config-file=b.yaml"}, "", "--config-file given twice (a.yaml and b.yaml)"},
		{[]string{"embed", "--config-file="}, "", "--config-file needs a file"},
		{[]string{"embed", "--config-file", ""}, "", "--config-file needs a file"},
	} {
		got, err := FindFile(c.args)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && (!strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrUsage)) {
			t.Errorf("%q: %q, %v; want %q, %q", c.args, got, err, c.want, c.err)
		}
	}
}

// A YAML syntax error names the file and the line (line 1 too, which
// yaml.v3 leaves out); a bare - as a value gets a hint to quote it.
func TestLoadSyntaxErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"name: -\n":             `, line 1: YAML syntax: block sequence entries are not allowed in this context; the value of name starts with "-": quote it (name: "-")`,
		"rows: 1\nname: - \n":   `, line 2: YAML syntax: block sequence entries are not allowed in this context; the value of name starts with "-": quote it (name: "-")`,
		"rows: 1\nname: [\n":    ", line 2: YAML syntax: did not find expected node content",
		"name: @x\n":            ", line 1: YAML syntax: found character that cannot start any token",
		"rows: 1\n---\nname: [": ", line 3: YAML syntax: did not find expected node content",
	} {
		path := write(t, yaml)
		_, err := Load(path, &opts{})
		if err == nil || !strings.Contains(err.Error(), "config file "+path+want) || !errors.Is(err, ErrUsage) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
	}
}

type pathOpts struct {
	File  string   `yaml:"file" config:"path"`
	Files []string `yaml:"files" config:"path"`
	Name  string   `yaml:"name"`
}

// A path-valued key's leading ~ (alone or before a /) is the home
// directory; other keys and other tildes are kept.
func TestLoadExpandsHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	var o pathOpts
	if _, err := Load(write(t, "file: ~/x\nfiles: ['~', ~/a/b, a/~, ~u/c, '~~/d']\nname: ~/n\n"), &o, "files"); err != nil {
		t.Fatal(err)
	}
	if want := []string{home, filepath.Join(home, "a/b"), "a/~", "~u/c", "~~/d"}; o.File != filepath.Join(home, "x") || !slices.Equal(o.Files, want) || o.Name != "~/n" {
		t.Errorf("%+v", o)
	}
	if _, err := Load(write(t, "file: ~\n"), &o); err == nil || !strings.Contains(err.Error(), `quote it ("~") for the home directory`) {
		t.Errorf("file: ~ (null): %v", err)
	}
	t.Setenv("HOME", "")
	if _, err := Load(write(t, "file: ~/x\n"), &o); err == nil || !strings.Contains(err.Error(), "key file (line 1): ~/x: cannot expand ~") {
		t.Errorf("without a home directory: %v", err)
	}
	if p, err := ExpandHome("/a/~"); p != "/a/~" || err != nil {
		t.Errorf("/a/~: %q %v", p, err)
	}
}

// An empty value (key:, key: ~, key: null) is refused for every option,
// as for the booleans, naming the key, the line and the file and saying
// what the key takes: yaml.v3 left a number, string or duration at its
// default without a word, and read a list's ~ as the one value "~".
func TestLoadEmptyValues(t *testing.T) {
	for key, want := range map[string]string{
		"exts":   "want one or more values (a list, or comma-separated), got an empty value",
		"paths":  "want one or more paths (a list, or one path), got an empty value",
		"name":   "want a single value, got an empty value",
		"rows":   "want a whole number, got an empty value",
		"seed":   "want a whole number, 0 or more, got an empty value",
		"rate":   "want a number, got an empty value",
		"every":  "want a duration such as 50ms or 10s, got an empty value",
		"budget": "want a size such as 16MiB or 16777216, got an empty value",
	} {
		for _, v := range []string{"", " ~", " null", " Null"} {
			y := "resume: true\n" + key + ":" + v + "\n"
			path := write(t, y)
			o := opts{Exts: []string{"png"}, Name: "n", Part: Part{Rows: 7}}
			_, err := Load(path, &o, "paths")
			if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "key "+key+" (line 2): "+want) ||
				!strings.Contains(err.Error(), "leave the key out for its default") {
				t.Errorf("%q: %v, want a usage error naming the file, key %s (line 2) and %q", y, err, key, want)
			}
		}
	}
}

// A list option takes a YAML list or, as its flag does, one value with
// commas (a plain scalar: exts: jpg is [jpg]); a list with no value, an
// empty item, or an item that is a list or a mapping is refused, as the
// flag refuses "" and ",".
func TestLoadLists(t *testing.T) {
	for y, want := range map[string][]string{
		"exts: jpg\n":               {"jpg"},
		"exts: 'jpg, png'\n":        {"jpg", "png"},
		"exts: [jpg, png]\n":        {"jpg", "png"},
		"exts:\n  - jpg\n  - png\n": {"jpg", "png"},
		"exts: 5\n":                 {"5"},
		"paths: a,b.png\n":          {"a,b.png"},
		"paths: [a, 'b c']\n":       {"a", "b c"},
	} {
		o := opts{}
		if _, err := Load(write(t, y), &o, "paths"); err != nil || !slices.Equal(append(o.Paths, o.Exts...), want) {
			t.Errorf("%q: %v, exts %q, paths %q, want %q", y, err, o.Exts, o.Paths, want)
		}
	}
	for y, want := range map[string]string{
		"exts: []\n":         "got none ([])",
		"exts: ''\n":         "got none ([])",
		"exts: ','\n":        "got none (,)",
		"exts: [jpg, ~]\n":   "item 2 is empty (~)",
		"exts: [jpg, '']\n":  `item 2 is empty ("")`,
		"exts: jpg,,png\n":   `"jpg,,png": item 2 is empty`,
		"exts: 'jpg, '\n":    `"jpg, ": item 2 is empty`,
		"exts: ',jpg'\n":     `",jpg": item 1 is empty`,
		"exts: [jpg, [a]]\n": "item 2 is a list",
		"exts: {jpg: 1}\n":   "got a mapping",
		"paths: [a, null]\n": "item 2 is empty (null)",
		"paths: ''\n":        "want one or more paths (a list, or one path), got none",
	} {
		path := write(t, y)
		_, err := Load(path, &opts{}, "paths")
		if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "(line 1): want one or more") || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a usage error naming the file and the line, with %q", y, err, want)
		}
	}
}

// A number may be quoted ("4" is 4, as "false" is false for a switch);
// anything else for a number, and a list or a mapping for any single
// value, is refused in words, not in Go's types.
func TestLoadNumbersAndSingleValues(t *testing.T) {
	o := opts{}
	if _, err := Load(write(t, "rows: '4'\nseed: \"9\"\nrate: '1e-3'\nevery: '10s'\nbudget: '1KiB'\nname: 12\n"), &o); err != nil ||
		o.Rows != 4 || o.Seed != 9 || o.Rate != 1e-3 || o.Every != 10*time.Second || o.Budget != 1024 || o.Name != "12" {
		t.Errorf("quoted numbers: %v, %+v", err, o)
	}
	if _, err := Load(write(t, "rows: 0x10\nrate: 2\nseed: 1_000\n"), &o); err != nil || o.Rows != 16 || o.Rate != 2 || o.Seed != 1000 {
		t.Errorf("rows: 0x10, rate: 2, seed: 1_000: %v, %+v", err, o)
	}
	for y, want := range map[string]string{
		"rows: '1.5'\n":  "want a whole number, got 1.5",
		"rows: 010\n":    "010: a whole number with a leading 0 reads as octal on the command line",
		"seed: '007'\n":  "007: a whole number with a leading 0 reads as octal on the command line and as decimal in YAML: write it without the 0, or as 0o7 for octal",
		"rows: true\n":   "want a whole number, got true",
		"rows: ''\n":     `want a whole number, got ""`,
		"seed: -1\n":     "want a whole number, 0 or more, got -1",
		"rate: abc\n":    "want a number, got abc",
		"rate: .inf\n":   "want a number, got .inf",
		"rate: 'NaN'\n":  "want a number, got NaN",
		"every: '10'\n":  "want a duration such as 50ms or 10s, got 10",
		"rows: [1, 2]\n": "want a whole number, got a list",
		"name: [a, b]\n": "want a single value, got a list",
		"name: {a: b}\n": "want a single value, got a mapping",
		"every: [1s]\n":  "want a duration such as 50ms or 10s, got a list",
		"budget: [1]\n":  "want a size",
	} {
		path := write(t, y)
		_, err := Load(path, &opts{})
		if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "(line 1): "+want) {
			t.Errorf("%q: %v, want a usage error naming the file and the line, with %q", y, err, want)
		}
	}
}

// The flag of a list option refuses an empty item among others, as the
// config file does, naming the flag and the item; "" and "," give none.
func TestListFlagEmptyItem(t *testing.T) {
	for arg, want := range map[string]string{
		"jpg,":     `"jpg,": item 2 is empty`,
		"jpg,,png": `"jpg,,png": item 2 is empty`,
		" ,png":    `" ,png": item 1 is empty`,
		",":        "want one or more comma-separated values",
		"":         "want one or more comma-separated values",
	} {
		var exts []string
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Var(List(&exts), "exts", "")
		err := fs.Parse([]string{"--exts", arg})
		if err == nil || !strings.Contains(err.Error(), "--exts") || !strings.Contains(err.Error(), want) {
			t.Errorf("--exts %q: %v, want an error naming --exts with %q", arg, err, want)
		}
	}
}
