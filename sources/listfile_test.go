package sources

import (
	"reflect"
	"testing"
)

// A list file's relative paths are relative to the working directory (as
// tar -T and a list on stdin), not to the list file's directory, and a
// listed file's id is the path as written (cleaned).
func TestListFileRelativeToWorkingDirectory(t *testing.T) {
	chdir(t, tree(t))
	write(t, "root/a/list.txt", "root/b.jpg\n./root/a/2.png\nsub/x.jpg\n")
	r, err := Open([]string{"root/a/list.txt"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"root/a/2.png=A2", "root/b.jpg=B", "sub/x.jpg!read sub/x.jpg: no such file or directory"}
	if got := readAll(t, r); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
