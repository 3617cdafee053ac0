package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestStreamDocsNameEveryFlag: docs/streaming.md is where stream's flags
// are described (a table, and a list of the flags shared with embed); a
// flag of `maeembed stream --help` that it does not name is undocumented
// (--precision was missing from the list).
func TestStreamDocsNameEveryFlag(t *testing.T) {
	doc, err := os.ReadFile("../../docs/streaming.md")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	cmd, _, err := e.rootCommand([]string{"stream"}).Find([]string{"stream"})
	if err != nil {
		t.Fatal(err)
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == "config-file" {
			return // every command's, described in the README
		}
		if !strings.Contains(string(doc), "`--"+f.Name) {
			t.Errorf("docs/streaming.md does not name stream's flag --%s", f.Name)
		}
	})
}
