package sources

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Whether a tar is gzip-compressed is read from its bytes, not its name:
// a gzipped tar named .tar (which failed with "invalid tar header") and a
// plain tar named .tgz or .tar.gz (which failed with "gzip: invalid
// header") read like their well-named twins, named on the command line
// or found in a directory, listed (dry run) or read, and a plain one is
// counted whatever its name.
func TestTarCompressionByContent(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []struct {
		name string
		gz   bool
	}{{"a-gzipped.tar", true}, {"b-plain.tgz", false}, {"c-plain.tar.gz", false}, {"d-gzipped.tgz", true}, {"e-plain.tar", false}} {
		writeTar(t, filepath.Join(dir, s.name), s.gz, [][2]string{{"000001.jpg", "J1"}, {"000001.json", "{}"}, {"000002.png", "P2"}})
	}
	var want, listed []string
	for _, n := range []string{"a-gzipped.tar", "b-plain.tgz", "c-plain.tar.gz", "d-gzipped.tgz", "e-plain.tar"} {
		want = append(want, n+"/000001.jpg=J1", n+"/000002.png=P2")
		listed = append(listed, n+"/000001.jpg=", n+"/000002.png=")
	}

	r, err := Open([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !reflect.DeepEqual(got, want) {
		t.Errorf("directory:\n got %q\nwant %q", got, want)
	}
	if got := r.Ignored(); got != 5 {
		t.Errorf("ignored %d members, want the 5 .json", got)
	}

	named := []string{}
	for _, n := range []string{"a-gzipped.tar", "b-plain.tgz", "c-plain.tar.gz", "d-gzipped.tgz", "e-plain.tar"} {
		named = append(named, filepath.Join(dir, n))
	}
	if r, err = Open(named, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !reflect.DeepEqual(got, want) {
		t.Errorf("named:\n got %q\nwant %q", got, want)
	}
	if r, err = Open([]string{dir}, Options{NoData: true}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !reflect.DeepEqual(got, listed) {
		t.Errorf("dry run:\n got %q\nwant %q", got, listed)
	}

	// The plain tars are counted (6 members), the gzipped ones are not.
	if n, exact := mustOpen(t, dir, Shard{}).Total(); n != 6 || exact {
		t.Errorf("Total() = %d %v, want 6 inexact (the three plain tars counted, the gzipped not)", n, exact)
	}
}

// A file that starts as gzip does but whose gzip header is cut short or
// wrong is its container's error, named once as gzip's.
func TestTarBadGzipHeader(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cut.tar"), "\x1f\x8b\x08")
	write(t, filepath.Join(dir, "flags.tgz"), "\x1f\x8b\x07\x00\x00\x00\x00\x00\x00\x03 not deflate")
	r, err := Open([]string{filepath.Join(dir, "cut.tar"), filepath.Join(dir, "flags.tgz")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 2 || !strings.HasSuffix(got[0], "cut.tar: gzip: unexpected EOF") || !strings.HasSuffix(got[1], "flags.tgz: gzip: invalid header") {
		t.Errorf("got %q, want each tar's gzip error, gzip named once", got)
	}
}

// Count reads a gzip tar through, and a bad gzip header is its error
// there too, with gzip named once.
func TestCountBadGzipHeader(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "flags.tgz")
	write(t, p, "\x1f\x8b\x07\x00\x00\x00\x00\x00\x00\x03 not deflate")
	r, err := Open([]string{p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Count()
	if err == nil || !strings.HasSuffix(err.Error(), "flags.tgz: gzip: invalid header") {
		t.Errorf("Count() error = %v, want it to end in flags.tgz: gzip: invalid header", err)
	}
}

// A tar compressed with something other than gzip is refused naming the
// compression, not as an "invalid tar header".
func TestTarOtherCompressionNamed(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.tar"), "BZh91AY&SY not really")
	write(t, filepath.Join(dir, "b.tgz"), "\xfd7zXZ\x00 not really")
	write(t, filepath.Join(dir, "c.tar"), "\x28\xb5\x2f\xfd not really")
	r, err := Open([]string{filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tgz"), filepath.Join(dir, "c.tar")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	for i, name := range []string{"bzip2", "xz", "zstd"} {
		if i >= len(got) || !strings.Contains(got[i], "compressed with "+name+", which maeembed does not read") {
			t.Errorf("got %q, want item %d to name %s", got, i, name)
		}
	}
}
