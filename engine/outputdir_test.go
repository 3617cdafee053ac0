package engine

import (
	"strings"
	"testing"

	"github.com/maeembed/maeembed/sources"
)

// Shards of one format and count may share a directory, but only those of
// one command: an embed shard and a reconstruct shard started together
// would each find no published part to compare with and write embeddings
// and reconstructions side by side.
func TestOutputDirKindNamesTheCommand(t *testing.T) {
	dir := t.TempDir()
	shard := func(cmd string, i int) OutputDir {
		return OutputDir{Dir: dir, Format: "parquet", Shard: sources.Shard{Index: i, Count: 2}, Resume: true, Command: cmd}
	}
	release, err := OpenOutputDir(shard("embed", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	want := "another kind (embed-parquet-2-shards; this run: reconstruct-parquet-2-shards)"
	if err := CheckOutputDir(shard("reconstruct", 0)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("dry run of a reconstruct shard beside a live embed shard: %v", err)
	}
	if rel, err := OpenOutputDir(shard("reconstruct", 0)); err == nil || !strings.Contains(err.Error(), want) {
		if err == nil {
			rel()
		}
		t.Errorf("reconstruct shard beside a live embed shard: %v", err)
	}
	rel, err := OpenOutputDir(shard("embed", 0))
	if err != nil {
		t.Fatalf("the other embed shard: %v", err)
	}
	rel()
}

// A second run of a shard beside a live one is refused with words true of
// any two such runs: the lock cannot tell whether their inputs are the
// same, so the error does not claim they are.
func TestOutputDirLiveShardRefusal(t *testing.T) {
	dir := t.TempDir()
	o := OutputDir{Dir: dir, Format: "parquet", Resume: true, Command: "embed"}
	release, err := OpenOutputDir(o)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	rel, err := OpenOutputDir(o)
	if err == nil {
		rel()
		t.Fatal("a second run of the shard beside a live one was not refused")
	}
	msg := err.Error()
	if strings.Contains(msg, "two runs of the same inputs") || !strings.Contains(msg, "whatever its inputs") || !strings.Contains(msg, "another --output") {
		t.Errorf("refusal: %v", err)
	}
}
