package sources

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// escapedByte is the one escape an id can contain: \xHH, a byte given in hex.
var escapedByte = regexp.MustCompile(`\\x[0-9A-Fa-f]{2}`)

// EscapeID turns raw bytes that name an input (a file name, a tar member
// name, a Parquet id value, a Kafka key) into its id, a valid UTF-8 string
// that outputs can store (Parquet and Arrow strings must be UTF-8; DuckDB
// refuses a whole file over one invalid string).
//
// A name that is valid UTF-8 is its own id, unless it already contains
// something that reads as an escape (a backslash, 'x' and two hex digits).
// Otherwise every byte that is not part of valid UTF-8, and every backslash,
// is written \xHH (uppercase hex): caf\xE9.jpg for the Latin-1 name
// "caf\xe9.jpg". So two different names never get the same id, and
// UnescapeID gives the original bytes back.
func EscapeID(name string) string {
	if utf8.ValidString(name) && !escapedByte.MatchString(name) {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 8)
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == utf8.RuneError && size <= 1, r == '\\':
			b.WriteString(`\x`)
			if name[i] < 0x10 {
				b.WriteByte('0')
			}
			b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(name[i]), 16)))
			i++
		default:
			b.WriteString(name[i : i+size])
			i += size
		}
	}
	return b.String()
}

// UnescapeID returns the bytes EscapeID was given: every \xHH becomes the
// byte 0xHH (an id without one is returned as is). Python:
// re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes.fromhex(m[1].decode()), id.encode()).
func UnescapeID(id string) string {
	if !strings.Contains(id, `\x`) {
		return id
	}
	return escapedByte.ReplaceAllStringFunc(id, func(s string) string {
		v, _ := strconv.ParseUint(s[2:], 16, 8)
		return string([]byte{byte(v)})
	})
}
