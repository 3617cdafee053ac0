// Package config fills the config structs of maeembed's components from a
// YAML file and command-line flags alike. Each component owns a struct
// with yaml tags and an AddFlags(fs *pflag.FlagSet) method next to it (the
// pattern of Kubernetes' component-base options); a command inlines the
// structs of its components, decodes the file (--config-file, keys = the
// flag names in snake case) with Load, then defines the flags on the same
// fields, so flags override the file. A key that is not one of the
// command's flags is refused by CheckKeys, naming it.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// ErrUsage marks errors that come from bad command-line or config-file
// input (exit code 2).
var ErrUsage = errors.New("usage")

// FindFile returns the value of --config-file in args ("" if none).
func FindFile(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config-file="); ok {
			return v
		}
		if a == "--config-file" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// Load decodes the YAML file at path (if any) into the struct dst points
// to, key by key, and returns its top-level keys, sorted. Errors name the
// key and the file, not Go types: a key dst has no field for is "unknown
// key", a fractional number for an integer option is refused (YAML would
// truncate it), a boolean is true or false, quoted or not (fileBool), and
// a list option also takes the flags' comma form ("extensions: jpg,png";
// one path for the keys in pathLists). The file holds one YAML document:
// a second one (after ---) is refused, not ignored.
func Load(path string, dst any, pathLists ...string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: config file: %v", ErrUsage, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil // empty, or only comments
	} else if err != nil {
		return nil, fmt.Errorf("%w: config file %s: %v", ErrUsage, path, err)
	}
	// yaml.Unmarshal reads the first document only: the options of a
	// second one (after ---) would be dropped without a word. A trailing
	// empty document (a --- followed by nothing or comments only) holds
	// none.
	for {
		var next yaml.Node
		if err := dec.Decode(&next); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%w: config file %s: %v", ErrUsage, path, err)
		}
		if len(next.Content) > 0 && next.Content[0].Tag != "!!null" {
			return nil, fmt.Errorf("%w: config file %s holds more than one YAML document (the --- at line %d starts another, whose options would be ignored): put all the options in one document", ErrUsage, path, next.Line)
		}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: config file %s: want a mapping of option: value (line %d)", ErrUsage, path, top.Line)
	}
	var keys []string
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i].Value, top.Content[i+1]
		if slices.Contains(keys, k) {
			return nil, fmt.Errorf("%w: config file %s: key %s given twice (line %d)", ErrUsage, path, k, top.Content[i].Line)
		}
		keys = append(keys, k)
		f, ok := yamlField(reflect.ValueOf(dst).Elem(), k)
		if !ok {
			hint := ""
			if near := nearestKey(reflect.TypeOf(dst).Elem(), k); near != "" {
				hint = " (did you mean " + near + "?)"
			}
			return nil, fmt.Errorf("%w: unknown key %s in config file %s (line %d)%s", ErrUsage, k, path, top.Content[i].Line, hint)
		}
		if err := decode(f, slices.Contains(pathLists, k), v); err != nil {
			return nil, fmt.Errorf("%w: config file %s: key %s (line %d): %v", ErrUsage, path, k, v.Line, err)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// CheckKeys refuses a key of the config file at path that is not an
// option of command name: a flag of fs (in snake case) or one of extra.
func CheckKeys(fs *pflag.FlagSet, keys, extra []string, path, name string) error {
	for _, k := range keys {
		if !slices.Contains(extra, k) && fs.Lookup(strings.ReplaceAll(k, "_", "-")) == nil {
			return fmt.Errorf("%w: config file %s: %q is not an option of %s", ErrUsage, path, k, name)
		}
	}
	return nil
}

// decode decodes the value v into the field f.
func decode(f reflect.Value, pathList bool, v *yaml.Node) error {
	switch {
	case v.Kind == yaml.ScalarNode && (v.Tag == "!!float" || v.Tag == "!!int") && f.Type() == reflect.TypeOf(time.Duration(0)):
		// A number without a unit: 0 is 0 (as the flag takes it, e.g.
		// flush_interval: 0 = only when full), anything else is ambiguous.
		d, err := time.ParseDuration(v.Value)
		if err != nil {
			return fmt.Errorf("want a duration such as 50ms or 10s, got %s", v.Value)
		}
		f.SetInt(int64(d))
		return nil
	case v.Kind == yaml.ScalarNode && v.Tag == "!!float" && f.Kind() >= reflect.Int && f.Kind() <= reflect.Uint64 &&
		!f.Addr().Type().Implements(reflect.TypeFor[yaml.Unmarshaler]()):
		// (A Size reads 1.5 itself, and says what its flag says.)
		if !strings.ContainsAny(v.Value, ".eE") {
			// YAML reads an integer too large for int64 as a float.
			return fmt.Errorf("%s is out of range", v.Value)
		}
		return fmt.Errorf("want a whole number, got %s", v.Value)
	case f.Kind() == reflect.Bool && v.Kind != yaml.ScalarNode:
		return errors.New("want true or false")
	case v.Tag == "!!null" && (f.Kind() == reflect.Bool || f.Type() == reflect.TypeOf(AutoBool{})):
		// An empty value (resume:, resume: ~) would keep the default
		// without a word, whichever way the file meant it.
		return fmt.Errorf("want true or false, got an empty value (%s)", cmp.Or(v.Value, "nothing"))
	case f.Kind() == reflect.Bool && v.Tag != "!!null":
		b, err := fileBool(v.Value)
		if err != nil {
			return err
		}
		f.SetBool(b)
		return nil
	case v.Kind == yaml.ScalarNode && f.Type() == reflect.TypeOf([]string(nil)):
		// A list option takes "a,b" like its flag (one path for path lists).
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: v.Line}
		vals := []string{v.Value}
		if !pathList {
			vals = strings.Split(v.Value, ",")
		}
		for _, s := range vals {
			if s = strings.TrimSpace(s); s != "" {
				seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
			}
		}
		v = seq
	}
	err := v.Decode(f.Addr().Interface())
	var te *yaml.TypeError
	if errors.As(err, &te) {
		// "line 3: cannot unmarshal !!str `abc` into int": the caller names the line.
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = lineRe.ReplaceAllString(m, "")
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
}

var lineRe = regexp.MustCompile(`^line \d+: `)

// fileBool reads a boolean of the config file: true or false, as YAML 1.2
// writes them (also True, TRUE, False, FALSE), quoted or not, so that
// resume: "false" is what resume: false is. yaml.v3 alone would refuse
// the quoted "false" yet read no, off, n (and yes, on, y), quoted or not,
// as YAML 1.1 booleans, while YAML 1.2 readers take them for strings:
// those are refused, as are 1 and 0, rather than read one way here and
// another elsewhere.
func fileBool(s string) (bool, error) {
	switch s {
	case "true", "True", "TRUE":
		return true, nil
	case "false", "False", "FALSE":
		return false, nil
	}
	switch strings.ToLower(s) {
	case "":
		return false, errors.New("want true or false, got an empty string")
	case "yes", "no", "on", "off", "y", "n":
		return false, fmt.Errorf("want true or false, got %s (YAML 1.1's yes/no/on/off are not taken: write true or false)", s)
	}
	return false, fmt.Errorf("want true or false, got %s", s)
}

// yamlField finds the field of struct v that YAML key maps to, as yaml.v3
// does: the tag's name, else the lower-cased field name; inline structs
// (and embedded structs, tagged inline) searched in turn; "-" skipped.
func yamlField(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") && sf.Type.Kind() == reflect.Struct {
			if f, ok := yamlField(v.Field(i), key); ok {
				return f, true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		if name == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// yamlKeys lists the keys of struct type t as yamlField finds them.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case slices.Contains(strings.Split(opts, ","), "inline") && sf.Type.Kind() == reflect.Struct:
			keys = append(keys, yamlKeys(sf.Type)...)
		case name == "":
			keys = append(keys, strings.ToLower(sf.Name))
		default:
			keys = append(keys, name)
		}
	}
	return keys
}

// nearestKey is the key of struct type t closest to the unknown key k (a
// typo, a missing underscore, a singular for a plural such as topic for
// topics), or "" when none is within two edits.
func nearestKey(t reflect.Type, k string) string {
	best, bestD := "", 3
	for _, c := range yamlKeys(t) {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// List is a repeatable, comma-splitting string flag on *p (--topic a
// --topic b,c). The first flag replaces what the config file gave.
func List(p *[]string) pflag.Value { return &list{v: p} }

type list struct {
	v   *[]string
	set bool
}

func (l *list) String() string { return strings.Join(*l.v, ",") }
func (l *list) Type() string   { return "list" }

// Set appends the comma-separated values of s; a value with none (""
// or ",,") is refused rather than read as "the default".
func (l *list) Set(s string) error {
	var add []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			add = append(add, p)
		}
	}
	if len(add) == 0 {
		return fmt.Errorf("%q: want one or more comma-separated values (leave the flag out for its default)", s)
	}
	if !l.set {
		*l.v, l.set = nil, true
	}
	*l.v = append(*l.v, add...)
	return nil
}

// AutoBool is a boolean option whose default comes from elsewhere (a
// model's config) unless a flag or the config file sets it.
type AutoBool struct {
	Set, Value bool
}

// Or returns the value if set, else def.
func (b AutoBool) Or(def bool) bool {
	if b.Set {
		return b.Value
	}
	return def
}

func (b *AutoBool) String() string {
	if b == nil || !b.Set {
		return "auto"
	}
	return strconv.FormatBool(b.Value)
}

func (b *AutoBool) parse(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.Set, b.Value = true, v
	return nil
}

// UnmarshalYAML reads true or false, as the file's other booleans
// (fileBool).
func (b *AutoBool) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("want true or false")
	}
	v, err := fileBool(n.Value)
	if err != nil {
		return err
	}
	b.Set, b.Value = true, v
	return nil
}

// Flag is b as a flag value (--flag alone means true); a method named Set
// would clash with the field.
func (b *AutoBool) Flag() pflag.Value { return autoBoolFlag{b} }

type autoBoolFlag struct{ b *AutoBool }

func (f autoBoolFlag) String() string     { return f.b.String() }
func (f autoBoolFlag) Set(s string) error { return f.b.parse(s) }
func (f autoBoolFlag) Type() string       { return "bool" }
