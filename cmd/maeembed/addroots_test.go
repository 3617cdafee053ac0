package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The README's "Adding inputs later", as it is written: an output refuses
// a new input root (exit 1) and both roots in one run; the parent
// directory given from the start resumes, taking only what is new; so does
// a list file that grows; one output per root reads back with the
// README's DuckDB glob, the root beside each id.
func TestREADMEAddingInputsLater(t *testing.T) {
	model, err := filepath.Abs(filepath.Join(fixtures, "tiny32", "hf"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	photos := filepath.Join(root, "photos")
	day1, day2 := filepath.Join(photos, "day1"), filepath.Join(photos, "day2")
	tinyImages(t, day1, "IMG_0001.png", "IMG_0002.png")
	embed := func(out string, in ...string) []string {
		return append([]string{"embed", "-m", model, "--resize", "none", "-o", out}, in...)
	}

	// Day 1 into emb/; day 2 into it is refused, and so are both days.
	emb := filepath.Join(root, "emb")
	runCounted(t, summary{2, 0, 0}, embed(emb, day1)...)
	tinyImages(t, day2, "IMG_0001.png")
	if code, _, stderr := maeembed(t, embed(emb, day2)...); code != 1 || !strings.Contains(stderr, "holds the outputs of the inputs") {
		t.Errorf("a new root into the output: exit %d, want 1 and the refusal\n%s", code, stderr)
	}
	if code, _, stderr := maeembed(t, embed(emb, day1, day2)...); code == 0 {
		t.Errorf("both roots into the output: exit 0\n%s", stderr)
	}

	// The parent directory from the start: the rerun takes day 2 only.
	parent := filepath.Join(root, "emb-parent")
	moved := filepath.Join(root, "day2-later")
	if err := os.Rename(day2, moved); err != nil {
		t.Fatal(err)
	}
	runCounted(t, summary{2, 0, 0}, embed(parent, photos)...)
	if err := os.Rename(moved, day2); err != nil {
		t.Fatal(err)
	}
	runCounted(t, summary{1, 0, 2}, embed(parent, photos)...)
	var ids []string
	for _, r := range duckQuery(t, "SELECT id FROM "+sqlString(filepath.Join(parent, "*.parquet"))+" ORDER BY id") {
		ids = append(ids, jsonField[string](t, r, "id"))
	}
	if want := []string{"day1/IMG_0001.png", "day1/IMG_0002.png", "day2/IMG_0001.png"}; !slices.Equal(ids, want) {
		t.Errorf("%s holds %v, want %v", parent, ids, want)
	}

	// One output per root (an error row in day 2's, which the glob leaves
	// out), read together with the README's query.
	if err := os.WriteFile(filepath.Join(day2, "bad.png"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	perRoot := filepath.Join(root, "per-root")
	runCounted(t, summary{2, 0, 0}, embed(filepath.Join(perRoot, "day1"), day1)...)
	runCounted(t, summary{1, 1, 0}, embed(filepath.Join(perRoot, "day2"), day2)...)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "**Adding inputs later**")
	_, sql, ok2 := strings.Cut(section, "```sql\n")
	sql, _, ok3 := strings.Cut(sql, "```")
	if !ok || !ok2 || !ok3 || !strings.Contains(sql, "'emb/") {
		t.Fatalf("the README's query of outputs per root is not found")
	}
	sql = strings.ReplaceAll(strings.TrimRight(sql, "; \n"), "'emb/", "'"+strings.ReplaceAll(perRoot, "'", "''")+"/")
	var got []string
	for _, r := range duckQuery(t, sql+" ORDER BY root, id") {
		got = append(got, jsonField[string](t, r, "root")+" "+jsonField[string](t, r, "id"))
	}
	if want := []string{"day1 IMG_0001.png", "day1 IMG_0002.png", "day2 IMG_0001.png"}; !slices.Equal(got, want) {
		t.Errorf("the README's query read %v, want %v", got, want)
	}

	// A list file that grows, of paths relative to the directory the runs
	// start in (last: the test stays there).
	t.Chdir(root)
	list := func(paths ...string) {
		t.Helper()
		if err := os.WriteFile("photos.txt", []byte(strings.Join(paths, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list("photos/day1/IMG_0001.png", "photos/day1/IMG_0002.png")
	runCounted(t, summary{2, 0, 0}, embed("emb-list", "photos.txt")...)
	list("photos/day1/IMG_0001.png", "photos/day1/IMG_0002.png", "photos/day2/IMG_0001.png")
	runCounted(t, summary{1, 0, 2}, embed("emb-list", "photos.txt")...)
}
