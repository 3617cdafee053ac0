package sources

import (
	"path/filepath"
	"reflect"
	"testing"
)

// Tar member ids are the names as stored (only tar's leading "./" of an
// archived "." is dropped): "a//b.jpg" and "a/b.jpg" are two inputs, not
// a duplicate, and names with "..", "." or a leading "/" keep their form.
func TestTarMemberNamesRaw(t *testing.T) {
	dir := t.TempDir()
	shard := filepath.Join(dir, "s.tar")
	writeTar(t, shard, false, [][2]string{
		{"a/./b/../c.jpg", "1"}, {"a//b.jpg", "2"}, {"a/b.jpg", "3"},
		{"../../escape.jpg", "4"}, {"/abs/root.jpg", "5"}, {"./lead.jpg", "6"},
	})
	r, err := Open([]string{shard}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"s.tar/a/./b/../c.jpg=1", "s.tar/a//b.jpg=2", "s.tar/a/b.jpg=3",
		"s.tar/../../escape.jpg=4", "s.tar//abs/root.jpg=5", "s.tar/lead.jpg=6"}
	if got := readAll(t, r); !reflect.DeepEqual(got, want) {
		t.Fatalf("ids %q\nwant %q", got, want)
	}
}
