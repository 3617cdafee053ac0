package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/dustin/go-humanize"
	"gopkg.in/yaml.v3"
)

// ParseSize reads a size such as 1073741824, 512MiB, 16 MiB, 1.5GiB, 1TiB
// or 100MB (go-humanize's ParseBytes: KiB, MiB... are powers of 1024, KB,
// MB... of 1000); a number without a unit is a whole number of bytes, and
// a bare K, M, G or T is binary, as in earlier versions.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("size %q: must not be negative (0 = the default)", s)
	}
	if n := len(t); n > 0 && strings.ContainsRune("KMGTkmgt", rune(t[n-1])) {
		t += "iB"
	}
	// Without a unit it is a count of bytes: 1.5 would otherwise be 1 byte.
	if t != "" && !strings.ContainsFunc(t, unicode.IsLetter) {
		if _, err := strconv.ParseUint(t, 10, 63); errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("size %q: too large (at most 4 EiB)", s)
		} else if err != nil {
			return 0, fmt.Errorf("size %q: a size without a unit is a whole number of bytes; give a unit for a fraction, e.g. 1.5GiB", s)
		}
	}
	n, err := humanize.ParseBytes(t)
	if err == nil && n > 1<<62 || err != nil && strings.HasPrefix(err.Error(), "too large") {
		return 0, fmt.Errorf("size %q: too large (at most 4 EiB)", s)
	}
	if err != nil {
		return 0, fmt.Errorf("size %q: want bytes, optionally with KiB, MiB, GiB, TiB (or KB, MB, GB, TB), e.g. 512MiB or 1.5GiB", s)
	}
	return int64(n), nil
}

// FormatSize writes a size of n bytes in the largest binary unit it
// reaches (B, KiB, MiB, GiB, TiB), with one decimal when that unit does
// not divide it: 10240 is "10 KiB", 1572864 "1.5 MiB".
func FormatSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i, div := 0, int64(1)
	for i < len(units)-1 && n >= div<<10 {
		i, div = i+1, div<<10
	}
	if n%div == 0 {
		return fmt.Sprintf("%d %s", n/div, units[i])
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(div), units[i])
}

// Size is a count of bytes that flags (fs.Var(&size, ...)) and config-file
// keys give as ParseSize reads it: 16777216, 16MiB, "16 MiB" or 1.5GiB.
type Size int64

// Set parses s (ParseSize); pflag names the flag in its error.
func (z *Size) Set(s string) error {
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	*z = Size(n)
	return nil
}

// String is z in the largest binary unit that divides it ("16MiB"),
// exactly, so that it reads back as the same size; 0 is "0".
func (z *Size) String() string {
	n := int64(*z)
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// Type is the flag's kind in --help: "size".
func (z *Size) Type() string { return "size" }

// UnmarshalYAML takes a number of bytes or a size with a unit.
func (z *Size) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a size such as 16MiB or 16777216")
	}
	return z.Set(v.Value)
}
