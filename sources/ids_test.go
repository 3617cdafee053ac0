package sources

import (
	"archive/tar"
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

func TestEscapeIDRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, id string }{
		{"café.jpg", "café.jpg"},                // valid UTF-8: unchanged
		{`dir\name.jpg`, `dir\name.jpg`},        // a lone backslash is not an escape
		{"caf\xe9.jpg", `caf\xE9.jpg`},          // Latin-1
		{"caf\xe8.jpg", `caf\xE8.jpg`},          // differs from the one above
		{`caf\xE9.jpg`, `caf\x5CxE9.jpg`},       // a valid name that looks escaped
		{"a\\b\xff\x00", `a\x5Cb\xFF` + "\x00"}, // NUL is valid UTF-8
		{"\xc3", `\xC3`},                        // truncated sequence
		{"\xed\xa0\x80", `\xED\xA0\x80`},        // a surrogate is not UTF-8
		{"", ""},
	} {
		got := EscapeID(tc.name)
		if got != tc.id || !utf8.ValidString(got) || UnescapeID(got) != tc.name {
			t.Errorf("EscapeID(%q) = %q (unescaped %q), want %q", tc.name, got, UnescapeID(got), tc.id)
		}
	}
}

func FuzzEscapeID(f *testing.F) {
	for _, s := range []string{"caf\xe9.jpg", `\x41`, "ok.jpg", `\\x5C`, "\xff\\"} {
		f.Add(s, "b")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ea, eb := EscapeID(a), EscapeID(b)
		if !utf8.ValidString(ea) || UnescapeID(ea) != a {
			t.Fatalf("EscapeID(%q) = %q, back %q", a, ea, UnescapeID(ea))
		}
		if (a == b) != (ea == eb) {
			t.Fatalf("EscapeID(%q) = %q, EscapeID(%q) = %q", a, ea, b, eb)
		}
		if utf8.ValidString(a) && !escapedByte.MatchString(a) && ea != a {
			t.Fatalf("valid %q changed to %q", a, ea)
		}
	})
}

// Two images whose names differ only in a byte that is not UTF-8 (an
// archive unpacked from a Latin-1 system) are two items with two ids, also
// inside a tar, and resuming after the first still reads the second.
func TestNonUTF8NamesAreDistinctItems(t *testing.T) {
	dir := t.TempDir()
	names := []string{"caf\xe8.jpg", "caf\xe9.jpg"}
	for i, n := range names {
		write(t, filepath.Join(dir, n), string(rune('A'+i)))
	}
	var members [][2]string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, [2]string{n, string(b)})
	}
	writeTar(t, filepath.Join(dir, "shard.tar"), false, members)

	want := []string{`caf\xE8.jpg`, `caf\xE9.jpg`, `shard.tar/caf\xE8.jpg`, `shard.tar/caf\xE9.jpg`}
	read := func(done map[string]bool) []Item {
		return readInput(t, dir, Options{Done: func(id string) bool { return done[id] }})
	}
	items := read(nil)
	if len(items) != len(want) {
		t.Fatalf("%d items, want %d", len(items), len(want))
	}
	for i, it := range items {
		if it.ID != want[i] {
			t.Errorf("item %d id %q, want %q", i, it.ID, want[i])
		}
		if raw := UnescapeID(it.ID); i < 2 && raw != names[i] {
			t.Errorf("UnescapeID(%q) = %q, want the file name %q", it.ID, raw, names[i])
		}
	}
	if string(items[0].Data) == string(items[1].Data) || string(items[0].Data) != string(items[2].Data) {
		t.Error("the two files' bytes are not told apart")
	}
	// Resume after a run that finished only the first file and first member.
	rest := read(map[string]bool{want[0]: true, want[2]: true})
	if len(rest) != 2 || rest[0].ID != want[1] || rest[1].ID != want[3] {
		t.Fatalf("resumed: %v", rest)
	}
}

// The README's Python line gives the original bytes back.
func TestUnescapeInPython(t *testing.T) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no", py)
	}
	names := []string{"caf\xe9.jpg", `caf\xE9.jpg`, "ok/ä.jpg", "\xff\\\x00"}
	var ids []string
	for _, n := range names {
		ids = append(ids, EscapeID(n))
	}
	script := `import re, sys
for id in sys.stdin.read().split("\n"):
    raw = re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes.fromhex(m[1].decode()), id.encode())
    sys.stdout.write(raw.hex() + "\n")
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(strings.Join(ids, "\n"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(out))
	for i, n := range names {
		if i >= len(got) || got[i] != hex.EncodeToString([]byte(n)) {
			t.Errorf("%q: python gives %v", ids[i], got)
		}
	}
}

// Two rows with one id (an id column with a repeated value, a tar holding a
// member twice) would be one output id, and a resumed run would skip the
// second as done: the second is an error row that says so, in every shard.
func TestDuplicateIDsAreErrorRows(t *testing.T) {
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "a.tar"), false, [][2]string{{"1.jpg", "A"}, {"2.jpg", "B"}, {"1.jpg", "C"}})
	schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}, {Name: "jpg", Type: arrow.BinaryTypes.Binary}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, k := range []string{"k1", "k2", "k1", "k3"} {
		b.Field(0).(*array.StringBuilder).Append(k)
		b.Field(1).(*array.BinaryBuilder).Append([]byte{byte('0' + i)})
	}
	rec := b.NewRecord()
	defer rec.Release()
	if err := os.WriteFile(filepath.Join(dir, "b.parquet"), parquetBytes(t, rec), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	want := []string{"a.tar/1.jpg=A", "a.tar/2.jpg=B", `a.tar/1.jpg!read ` + filepath.Join(dir, "a.tar") + `:1.jpg: duplicate id "a.tar/1.jpg"`,
		"k1=0", "k2=1", `k1!read ` + filepath.Join(dir, "b.parquet") + `#2: duplicate id "k1"`, "k3=3"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("item %d: %q, want %q…", i, got[i], want[i])
		}
	}
	// Shard 1/2 (global indices 1, 3, 5) sees the same duplicate.
	r, _ = Open([]string{dir}, Options{Shard: Shard{1, 2}})
	if got := readAll(t, r); len(got) != 3 || !strings.Contains(got[2], `duplicate id "k1"`) {
		t.Errorf("shard 1/2: %q", got)
	}

	// A resumed reader asks DoneRepeat, not Done, about the repeats, in
	// its shard only: shard 0/2 has the tar's (index 2), shard 1/2 the
	// Parquet file's (index 5). Done alone skips them.
	for _, c := range []struct {
		shard Shard
		want  string
	}{{Shard{}, "a.tar/1.jpg#1 k1#1"}, {Shard{0, 2}, "a.tar/1.jpg#1"}, {Shard{1, 2}, "k1#1"}} {
		var repeats []string
		r, err = Open([]string{dir}, Options{Shard: c.shard, Done: func(string) bool { return true },
			DoneRepeat: func(id string, n int) bool { repeats = append(repeats, fmt.Sprintf("%s#%d", id, n)); return true }})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r); len(got) != 0 {
			t.Errorf("shard %v, all done: read %q", c.shard, got)
		}
		if strings.Join(repeats, " ") != c.want {
			t.Errorf("shard %v: repeats asked about %q, want %s", c.shard, repeats, c.want)
		}
	}
	// A repeat that DoneRepeat does not take for done (the run that took
	// it was cut before its error row was published) is read again, as
	// the error it was; its first is done.
	r, err = Open([]string{dir}, Options{Done: func(string) bool { return true }, DoneRepeat: func(id string, n int) bool { return id == "k1" }})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 1 || !strings.HasPrefix(got[0], want[2]) {
		t.Errorf("the tar's repeat not done: read %q, want %q…", got, want[2])
	}
}

// The n of DoneRepeat counts the repeats of each id: a member thrice is
// its first, then repeats 1 and 2.
func TestDoneRepeatCounts(t *testing.T) {
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "a.tar"), false, [][2]string{{"1.jpg", "A"}, {"1.jpg", "B"}, {"2.jpg", "C"}, {"1.jpg", "D"}, {"2.jpg", "E"}})
	var asked []string
	r, err := Open([]string{dir}, Options{Done: func(id string) bool { asked = append(asked, id); return false },
		DoneRepeat: func(id string, n int) bool { asked = append(asked, fmt.Sprintf("%s#%d", id, n)); return n == 1 }})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if w := "a.tar/1.jpg a.tar/1.jpg#1 a.tar/2.jpg a.tar/1.jpg#2 a.tar/2.jpg#1"; strings.Join(asked, " ") != w {
		t.Errorf("asked about %q, want %s", asked, w)
	}
	if len(got) != 3 || !strings.HasPrefix(got[0], "a.tar/1.jpg=A") || !strings.HasPrefix(got[1], "a.tar/2.jpg=C") ||
		!strings.Contains(got[2], `duplicate id "a.tar/1.jpg"`) {
		t.Errorf("read %q: want the first of each id and the second repeat of 1.jpg (an error)", got)
	}
}

// A repeat's error says which repeat of the id it is, counted over the
// unsharded sequence: the same in every shard, so that a resumed run of
// one shard does not take another shard's repeat for its own.
func TestDuplicateErrorNamesTheRepeat(t *testing.T) {
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "a.tar"), false, [][2]string{{"1.jpg", "A"}, {"1.jpg", "B"}, {"1.jpg", "C"}})
	for _, c := range []struct {
		shard Shard
		want  []string
	}{
		{Shard{}, []string{"", "(repeat 1)", "(repeat 2)"}},
		{Shard{0, 2}, []string{"", "(repeat 2)"}},
		{Shard{1, 2}, []string{"(repeat 1)"}},
	} {
		r, err := Open([]string{dir}, Options{Shard: c.shard})
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, r)
		if len(got) != len(c.want) {
			t.Fatalf("shard %v: read %q, want %d items", c.shard, got, len(c.want))
		}
		for i, w := range c.want {
			if w == "" && strings.Contains(got[i], "!") || w != "" && !strings.HasSuffix(got[i], ` `+w+duplicateIDEnd) {
				t.Errorf("shard %v: item %d is %q, want %s", c.shard, i, got[i], cmp.Or(w, "no error"))
			}
		}
	}
}

// A tar that ends inside a member's body: that member's error, whether
// this reader takes the member or skips it (done already, or another
// shard's), never an extra error under the tar's own id; so a rerun that
// skips the member meets the end under the id the first run recorded.
func TestTruncatedTarBlamesTheCutMember(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.tar")
	writeTar(t, p, false, [][2]string{{"1.jpg", "A"}, {"2.jpg", strings.Repeat("B", 1000)}})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b[:512+512+512+500], 0o644); err != nil { // two headers, "A" padded, half of 2.jpg
		t.Fatal(err)
	}
	read := func(o Options) []string {
		r, err := Open([]string{p}, o)
		if err != nil {
			t.Fatal(err)
		}
		return readAll(t, r)
	}
	cut := "t.tar/2.jpg!read " + p + ":2.jpg: tar member 2.jpg: unexpected EOF"
	for _, c := range []struct {
		name string
		o    Options
		want []string
	}{
		{"all", Options{}, []string{"t.tar/1.jpg=A", cut}},
		{"listing", Options{NoData: true}, []string{"t.tar/1.jpg=", cut}},
		{"2.jpg done", Options{Done: func(id string) bool { return id == "t.tar/2.jpg" }}, []string{"t.tar/1.jpg=A"}},
		{"all done", Options{Done: func(string) bool { return true }}, nil},
		{"shard 0/2", Options{Shard: Shard{0, 2}}, []string{"t.tar/1.jpg=A"}},
		{"shard 1/2", Options{Shard: Shard{1, 2}}, []string{cut}},
	} {
		if got := read(c.o); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// writeKeyedParquet writes a Parquet file with a "key" string column and a
// "jpg" binary column, one row per key, whose bytes are data[i].
func writeKeyedParquet(t *testing.T, path string, keys []string, data []string) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}, {Name: "jpg", Type: arrow.BinaryTypes.Binary}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, k := range keys {
		b.Field(0).(*array.StringBuilder).Append(k)
		b.Field(1).(*array.BinaryBuilder).Append([]byte(data[i]))
	}
	rec := b.NewRecord()
	defer rec.Release()
	write(t, path, string(parquetBytes(t, rec)))
}

// Ids are one namespace over every kind of input: a plain file whose id is
// also a Parquet row's key or a tar member's id is a duplicate like a tar
// member met twice, whichever comes first; the second is the error item
// and names the input that has the id, and a resumed reader asks
// DoneRepeat about it as about a member met twice.
func TestDuplicateIDsAcrossKindsOfInput(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	write(t, filepath.Join(d, "a.png"), "F")
	writeKeyedParquet(t, filepath.Join(d, "p.parquet"), []string{"a.png", "b.png"}, []string{"P0", "P1"})
	// s.tar (named) has the member s.tar/x.png; t/s.tar/x.png is a file
	// with that id, read after the tar.
	writeTar(t, filepath.Join(dir, "s.tar"), false, [][2]string{{"x.png", "T"}})
	write(t, filepath.Join(dir, "t", "s.tar", "x.png"), "X")

	for _, c := range []struct {
		inputs  []string
		want    []string
		repeats string
	}{
		{[]string{d}, []string{"a.png=F", `a.png!read ` + filepath.Join(d, "p.parquet") + `#0: duplicate id "a.png" (first in ` + filepath.Join(d, "a.png") + ") (repeat 1): an earlier input has it (ids are one namespace across all inputs)", "b.png=P1"}, "a.png#1"},
		{[]string{filepath.Join(dir, "s.tar"), filepath.Join(dir, "t")}, []string{"s.tar/x.png=T", `s.tar/x.png!read ` + filepath.Join(dir, "t", "s.tar", "x.png") + `: duplicate id "s.tar/x.png" (first in ` + filepath.Join(dir, "s.tar") + ") (repeat 1): an earlier input has it (ids are one namespace across all inputs)"}, "s.tar/x.png#1"},
	} {
		r, err := Open(c.inputs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, r)
		if len(got) != len(c.want) {
			t.Fatalf("%v: got %q, want %q", c.inputs, got, c.want)
		}
		for i := range got {
			if !strings.HasPrefix(got[i], c.want[i]) {
				t.Errorf("%v: item %d: %q, want %q…", c.inputs, i, got[i], c.want[i])
			}
		}
		var repeats []string
		r, err = Open(c.inputs, Options{Done: func(string) bool { return true },
			DoneRepeat: func(id string, n int) bool { repeats = append(repeats, fmt.Sprint(id, "#", n)); return true }})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r); len(got) != 0 {
			t.Errorf("%v, all done: read %q", c.inputs, got)
		}
		if strings.Join(repeats, " ") != c.repeats {
			t.Errorf("%v: skipped repeats %q, want %q", c.inputs, repeats, c.repeats)
		}
	}
}

// A repeat that also fails to read (cut short, a link) is still a
// duplicate id's error, its other failure kept in the text: a resumed run
// counts it among the id's repeats and never reads it for another row.
func TestFailedRepeatIsADuplicate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.tar")
	writeTar(t, p, false, [][2]string{{"1.jpg", "A"}, {"2.jpg", "B"}, {"1.jpg", strings.Repeat("C", 2000)}})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Two members of a header and a 512-byte block each, the third's
	// header, and 100 bytes of its body.
	if err := os.WriteFile(p, b[:5*512+100], 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{{Name: "x.jpg", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}, {Name: "x.jpg", Linkname: "y.jpg", Typeflag: tar.TypeSymlink}} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("X"))
		}
	}
	tw.Close()
	write(t, filepath.Join(dir, "b.tar"), buf.String())
	r, err := Open([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 5 || !strings.HasPrefix(got[2], "a.tar/1.jpg!read ") || !strings.Contains(got[2], "EOF") ||
		!strings.HasSuffix(got[2], `; duplicate id "a.tar/1.jpg" (repeat 1): an earlier member or row has it`) ||
		!strings.HasPrefix(got[4], "b.tar/x.jpg!read ") || !strings.Contains(got[4], "not a regular file") ||
		!strings.HasSuffix(got[4], `; duplicate id "b.tar/x.jpg" (repeat 1): an earlier member or row has it`) {
		t.Errorf("read %q: want the cut and the link repeats as duplicate ids, with what else failed", got)
	}
}
