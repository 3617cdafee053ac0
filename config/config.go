// Package config fills the config structs of maeembed's components from a
// YAML file and command-line flags alike. Each component owns a struct
// with yaml tags and an AddFlags(fs *pflag.FlagSet) method next to it (the
// pattern of Kubernetes' component-base options); a command inlines the
// structs of its components, decodes the file (--config-file, keys = the
// flag names in snake case) with Load, then defines the flags on the same
// fields, so flags override the file. A key that is not one of the
// command's flags is refused by CheckKeys, naming it. A field tagged
// config:"path" holds a path (or a list of paths): Load expands a leading
// ~ in its value to the home directory.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
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

// FindFile returns the value of --config-file in args ("" if none),
// looking no further than a "--" (what follows it is positional). A
// --config-file given twice is a usage error naming both files (the flag
// would keep the last, this pre-scan read the first: one of them would be
// ignored), and so is an empty value (--config-file=, --config-file "").
func FindFile(args []string) (string, error) {
	path, found := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		v, ok := strings.CutPrefix(a, "--config-file=")
		if a == "--config-file" {
			if i+1 >= len(args) {
				break // the flag parser says it needs an argument
			}
			v, ok = args[i+1], true
			i++
		}
		if !ok {
			continue
		}
		if v == "" {
			return "", fmt.Errorf("%w: --config-file needs a file, got an empty value", ErrUsage)
		}
		if found {
			return "", fmt.Errorf("%w: --config-file given twice (%s and %s): give one file", ErrUsage, path, v)
		}
		path, found = v, true
	}
	return path, nil
}

// Load decodes the YAML file at path (if any) into the struct dst points
// to, key by key, and returns its top-level keys, sorted. Errors name the
// key, its line and the file, not Go types: a key dst has no field for is
// "unknown key"; an empty value (key:, key: ~, key: null) is refused for
// every option rather than left at its default; a number may be quoted
// ("4"), and a fractional one for an integer option is refused (YAML
// would truncate it); a boolean is true or false, quoted or not
// (fileBool); a list option also takes one value in the flags' comma form
// ("extensions: jpg,png"; one path for the keys in pathLists), and a list
// with no value or an empty item ("jpg,,png", [jpg, ""]) is refused, as
// its flag refuses "" and "jpg,"; a list or a mapping for a single-value option is refused. The file holds
// one YAML document: a second one (after ---) is refused, not ignored. A
// YAML syntax error names the file and its line (line 1 when yaml.v3
// gives none, as it does for the first line). A value of a field tagged
// config:"path" (a string, or each path of a list) that is ~ or starts
// with ~/ has the ~ replaced by the user's home directory (ExpandHome), as
// a shell would do for the flag.
func Load(path string, dst any, pathLists ...string) (Keys, error) {
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
		return nil, syntaxError(path, b, err)
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
			return nil, syntaxError(path, b, err)
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
	var keys Keys
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i].Value, top.Content[i+1]
		if slices.ContainsFunc(keys, func(o Key) bool { return o.Name == k }) {
			return nil, fmt.Errorf("%w: config file %s: key %s given twice (line %d)", ErrUsage, path, k, top.Content[i].Line)
		}
		keys = append(keys, Key{k, top.Content[i].Line})
		f, isPath, ok := yamlField(reflect.ValueOf(dst).Elem(), k)
		if !ok {
			hint := ""
			if near := nearestKey(reflect.TypeOf(dst).Elem(), k); near != "" {
				hint = " (did you mean " + near + "?)"
			}
			return nil, fmt.Errorf("%w: unknown key %s in config file %s (line %d)%s", ErrUsage, k, path, top.Content[i].Line, hint)
		}
		if err := decode(f, slices.Contains(pathLists, k), v); err != nil {
			if isPath && strings.Contains(err.Error(), "(~)") {
				err = fmt.Errorf(`%v; a bare ~ is YAML's null: quote it ("~") for the home directory`, err)
			}
			return nil, fmt.Errorf("%w: config file %s: key %s (line %d): %v", ErrUsage, path, k, v.Line, err)
		}
		if isPath {
			if err := expandField(f); err != nil {
				return nil, fmt.Errorf("%w: config file %s: key %s (line %d): %v", ErrUsage, path, k, v.Line, err)
			}
		}
	}
	slices.SortFunc(keys, func(a, b Key) int { return strings.Compare(a.Name, b.Name) })
	return keys, nil
}

// Key is a top-level key of a config file and its line (from 1).
type Key struct {
	Name string
	Line int
}

// Keys are the keys Load found, sorted by name.
type Keys []Key

// Names returns the keys' names, in order.
func (ks Keys) Names() []string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Name
	}
	return names
}

// CheckKeys refuses a key of the config file at path that is not an
// option of command name: a flag of fs (in snake case) or one of extra.
// The error names the key, its line and the file.
func CheckKeys(fs *pflag.FlagSet, keys Keys, extra []string, path, name string) error {
	for _, k := range keys {
		if !slices.Contains(extra, k.Name) && fs.Lookup(strings.ReplaceAll(k.Name, "_", "-")) == nil {
			return fmt.Errorf("%w: config file %s: %q (line %d) is not an option of %s", ErrUsage, path, k.Name, k.Line, name)
		}
	}
	return nil
}

var (
	yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)
	// dashValueRe matches a line key: - (a plain value that is only a
	// dash, which YAML reads as the start of a list).
	dashValueRe = regexp.MustCompile(`^\s*([^\s#:][^:#]*?)\s*:\s+-(?:\s.*)?$`)
)

// syntaxError is the YAML syntax error err of the config file at path
// (contents b), naming the file and the line: yaml.v3 says "line N" but
// for the first line. A value that starts with "- " or is "-" alone (id_column: -)
// reads as a list where none may begin, whose error gets a hint to quote it.
func syntaxError(path string, b []byte, err error) error {
	msg := err.Error()
	line := 1
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if strings.Contains(msg, "block sequence entries are not allowed") {
		lines := strings.Split(string(b), "\n")
		hint := `a value that starts with "-" must be quoted ("-")`
		if line <= len(lines) {
			if m := dashValueRe.FindStringSubmatch(strings.TrimRight(lines[line-1], "\r")); m != nil {
				hint = fmt.Sprintf(`the value of %s starts with "-": quote it (%s: "-")`, m[1], m[1])
			}
		}
		msg += "; " + hint
	}
	return fmt.Errorf("%w: config file %s, line %d: YAML syntax: %s", ErrUsage, path, line, msg)
}

// ExpandHome returns path with a leading ~ (all of it, or before a /)
// replaced by the user's home directory (os.UserHomeDir), as a shell
// expands it; any other path (~user/x, a~/b, "") is returned as it is. It
// fails when ~ is to be expanded but the home directory is unknown
// ($HOME unset).
func ExpandHome(path string) (string, error) {
	rest, ok := strings.CutPrefix(path, "~")
	if !ok || rest != "" && rest[0] != '/' && rest[0] != filepath.Separator {
		return path, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("%s: cannot expand ~: %v", path, err)
	}
	return home + rest, nil
}

// expandField applies ExpandHome to the string field f, or to each item
// of the list field f.
func expandField(f reflect.Value) error {
	switch {
	case f.Kind() == reflect.String:
		p, err := ExpandHome(f.String())
		if err != nil {
			return err
		}
		f.SetString(p)
	case f.Type() == reflect.TypeOf([]string(nil)):
		for i := 0; i < f.Len(); i++ {
			p, err := ExpandHome(f.Index(i).String())
			if err != nil {
				return err
			}
			f.Index(i).SetString(p)
		}
	}
	return nil
}

// decode decodes the value v into the field f.
func decode(f reflect.Value, pathList bool, v *yaml.Node) error {
	isBool := f.Kind() == reflect.Bool || f.Type() == reflect.TypeOf(AutoBool{})
	unmarshaler := f.Addr().Type().Implements(reflect.TypeFor[yaml.Unmarshaler]())
	isList := f.Type() == reflect.TypeOf([]string(nil))
	switch {
	case f.Kind() == reflect.Bool && v.Kind != yaml.ScalarNode:
		return errors.New("want true or false")
	case v.Tag == "!!null" && isBool:
		// An empty value (resume:, resume: ~) would keep the default
		// without a word, whichever way the file meant it.
		return fmt.Errorf("want true or false, got an empty value (%s)", cmp.Or(v.Value, "nothing"))
	case f.Kind() == reflect.Bool:
		b, err := fileBool(v.Value)
		if err != nil {
			return err
		}
		f.SetBool(b)
		return nil
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		// Of any option, as of the booleans: yaml.v3 would leave the
		// default without a word (workers: ~), or read a list's ~ as the
		// value "~" (extensions: ~).
		return fmt.Errorf("%s, got an empty value (%s): leave the key out for its default", wanted(f.Type(), pathList), cmp.Or(v.Value, "nothing"))
	case isList:
		return decodeList(f, pathList, v)
	case unmarshaler || isBool:
	case v.Kind == yaml.SequenceNode || v.Kind == yaml.MappingNode:
		// "cannot unmarshal !!seq into string" said it in Go's words.
		return fmt.Errorf("%s, got a %s", wanted(f.Type(), pathList), nodeKinds[v.Kind])
	case f.Type() == reflect.TypeOf(time.Duration(0)) && v.Kind == yaml.ScalarNode:
		// A number without a unit: 0 is 0 (as the flag takes it, e.g.
		// flush_interval: 0 = only when full), anything else is ambiguous.
		d, err := time.ParseDuration(strings.TrimSpace(v.Value))
		if err != nil {
			return fmt.Errorf("%s, got %s", wanted(f.Type(), pathList), v.Value)
		}
		f.SetInt(int64(d))
		return nil
	case v.Kind == yaml.ScalarNode && f.Kind() >= reflect.Int && f.Kind() <= reflect.Float64 && f.Kind() != reflect.Uintptr:
		// Quoted or not ("4" is 4, as "false" is false for a boolean),
		// and refused in words rather than in Go's types. A plain number
		// YAML took as one may group its digits (1_000), as yaml.v3 reads it.
		s := v.Value
		if v.Tag == "!!int" || v.Tag == "!!float" {
			s = strings.ReplaceAll(s, "_", "")
		}
		return decodeNumber(f, s)
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

// nodeKinds names the YAML nodes other than a scalar in messages.
var nodeKinds = map[yaml.Kind]string{yaml.SequenceNode: "list", yaml.MappingNode: "mapping", yaml.AliasNode: "alias"}

// decodeList decodes a list option: a YAML list of values, or one value
// that, like the flag, may list several separated by commas ("jpg,png";
// one path for path lists). As the flag refuses "", "," and "jpg,", a
// list with no value (exts: [], exts: "") is refused, and so is an item
// that is empty (exts: [jpg, ~], exts: "jpg,,png") or itself a list or
// mapping.
func decodeList(f reflect.Value, pathList bool, v *yaml.Node) error {
	want := wanted(f.Type(), pathList)
	var vals []string
	switch v.Kind {
	case yaml.ScalarNode:
		vals = []string{v.Value}
		if !pathList {
			var err error
			if vals, err = SplitList(v.Value); err != nil {
				return fmt.Errorf("%s: %w", want, err)
			}
		}
	case yaml.SequenceNode:
		for i, it := range v.Content {
			switch {
			case it.Kind != yaml.ScalarNode:
				return fmt.Errorf("%s: item %d is a %s", want, i+1, nodeKinds[it.Kind])
			case it.Tag == "!!null" || strings.TrimSpace(it.Value) == "":
				return fmt.Errorf("%s: item %d is empty (%s)", want, i+1, cmp.Or(it.Value, `""`))
			}
			vals = append(vals, it.Value)
		}
	default:
		return fmt.Errorf("%s, got a mapping", want)
	}
	var list []string
	for _, s := range vals {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	if len(list) == 0 {
		return fmt.Errorf("%s, got none (%s): leave the key out for its default", want, cmp.Or(v.Value, "[]"))
	}
	f.Set(reflect.ValueOf(list))
	return nil
}

// decodeNumber sets the integer or float field f to s, a number in
// decimal (an integer also in 0x, 0o or 0b form, but not with a leading 0,
// which the flags read as octal), quoted or not.
func decodeNumber(f reflect.Value, s string) error {
	t := strings.TrimSpace(s)
	bits := f.Type().Bits()
	fail := func(err error) error {
		if errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("%s is out of range", s)
		}
		return fmt.Errorf("%s, got %s", wanted(f.Type(), false), cmp.Or(s, `""`))
	}
	base := 10
	if len(t) > 2 && t[0] == '0' && strings.ContainsRune("xXoObB", rune(t[1])) {
		base = 0
	}
	digits := strings.TrimLeft(t, "+-")
	if k := f.Kind(); base == 10 && k >= reflect.Int && k <= reflect.Uint64 && len(digits) > 1 && digits[0] == '0' {
		// The flag reads 010 as octal (8), YAML 1.2 as 10: neither guess.
		return fmt.Errorf("%s: a whole number with a leading 0 reads as octal on the command line and as decimal in YAML: write it without the 0, or as 0o%s for octal", s, strings.TrimLeft(digits, "0"))
	}
	switch k := f.Kind(); {
	case k >= reflect.Int && k <= reflect.Int64:
		n, err := strconv.ParseInt(t, base, bits)
		if err != nil {
			return fail(err)
		}
		f.SetInt(n)
	case k >= reflect.Uint && k <= reflect.Uint64:
		n, err := strconv.ParseUint(t, base, bits)
		if err != nil {
			return fail(err)
		}
		f.SetUint(n)
	default:
		x, err := strconv.ParseFloat(t, bits)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return fail(err)
		}
		f.SetFloat(x)
	}
	return nil
}

// wanted says what a key of type t takes, to begin its errors.
func wanted(t reflect.Type, pathList bool) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "want a duration such as 50ms or 10s"
	case t == reflect.TypeOf(Size(0)):
		return "want a size such as 16MiB or 16777216"
	case t == reflect.TypeOf([]string(nil)) && pathList:
		return "want one or more paths (a list, or one path)"
	case t == reflect.TypeOf([]string(nil)):
		return "want one or more values (a list, or comma-separated)"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "want a whole number"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return "want a whole number, 0 or more"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "want a number"
	}
	return "want a single value"
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
// isPath reports the field's tag config:"path" (a path, or list of paths).
func yamlField(v reflect.Value, key string) (f reflect.Value, isPath, ok bool) {
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
			if f, isPath, ok := yamlField(v.Field(i), key); ok {
				return f, isPath, true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		if name == key {
			return v.Field(i), sf.Tag.Get("config") == "path", true
		}
	}
	return reflect.Value{}, false, false
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

// SplitList splits a comma-separated list value ("jpg, png") into its
// items, trimmed of white space. A value with no item ("", ",") gives
// none, for the caller to refuse in its own words; one with an empty item
// among others ("jpg,", "jpg,,png") is an error naming the item by its
// position, since a stray comma more likely means a lost value than
// nothing.
func SplitList(s string) ([]string, error) {
	var items []string
	empty := 0
	for i, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			items = append(items, p)
		} else if empty == 0 {
			empty = i + 1
		}
	}
	if empty > 0 && len(items) > 0 {
		return nil, fmt.Errorf("%q: item %d is empty: want comma-separated values, none empty", s, empty)
	}
	return items, nil
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
// or ",,") is refused rather than read as "the default", and one with an
// empty item ("jpg,") as SplitList refuses it.
func (l *list) Set(s string) error {
	add, err := SplitList(s)
	if err != nil {
		return err
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
