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

// A flag whose 0 stands for its default (--workers: one per core;
// --max-pixels: PIL's limit) says so in every command's help and in the
// README's flag table, since other flags refuse 0 (--batch-size).
func TestZeroMeansDefaultIsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"workers", "max-pixels"} {
		row := ""
		for _, l := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(l, "| `--"+flag+"` |") {
				row = l
			}
		}
		if !strings.Contains(row, "0 means this default") {
			t.Errorf("the README's row of --%s does not say that 0 means the default: %q", flag, row)
		}
		for _, cmd := range []string{"embed", "reconstruct", "stream", "pretrain"} {
			e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
			c, _, err := e.rootCommand([]string{cmd}).Find([]string{cmd})
			if err != nil {
				t.Fatal(err)
			}
			f := c.Flags().Lookup(flag)
			if f == nil {
				t.Errorf("%s has no --%s", cmd, flag)
				continue
			}
			if !strings.Contains(f.Usage, "0 = the default") {
				t.Errorf("%s --%s help %q does not say that 0 means the default", cmd, flag, f.Usage)
			}
		}
	}
}

// --extensions takes jpg and .jpg alike, in any letter case: the flag's
// help in every command that has it and the README's row say so, since
// "without the dot" made users think .jpg was wrong.
func TestExtensionsLeadingDotIsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := ""
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, "| `--extensions` |") {
			row = l
		}
	}
	for _, want := range []string{"with or without the leading dot", "any letter case"} {
		if !strings.Contains(row, want) {
			t.Errorf("the README's row of --extensions does not say %q: %q", want, row)
		}
	}
	for _, cmd := range []string{"embed", "reconstruct", "pretrain"} {
		e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
		c, _, err := e.rootCommand([]string{cmd}).Find([]string{cmd})
		if err != nil {
			t.Fatal(err)
		}
		f := c.Flags().Lookup("extensions")
		if f == nil {
			t.Fatalf("%s has no --extensions", cmd)
		}
		if !strings.Contains(f.Usage, "with or without the leading dot") || !strings.Contains(f.Usage, "any letter case") || strings.Contains(f.Usage, "without the dot") {
			t.Errorf("%s --extensions help %q does not say that the leading dot is optional and case does not matter", cmd, f.Usage)
		}
	}
}

// --flush-interval's help names what the command publishes: reconstruct
// and stream write no Arrow, and the formats it does not apply to (npy
// sets, PNGs) are named.
func TestFlushIntervalHelpPerCommand(t *testing.T) {
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	for _, c := range []struct {
		cmd       string
		want, not []string
	}{
		{"embed", []string{"Parquet/Arrow part", "npy set"}, []string{"PNG"}},
		{"reconstruct", []string{"Parquet part", "npy set", "PNG"}, []string{"Arrow"}},
		{"stream", []string{"Parquet part"}, []string{"Arrow", "npy"}},
	} {
		cmd, _, err := e.rootCommand([]string{c.cmd}).Find([]string{c.cmd})
		if err != nil {
			t.Fatal(err)
		}
		help := cmd.Flags().Lookup("flush-interval").Usage
		for _, w := range c.want {
			if !strings.Contains(help, w) {
				t.Errorf("%s --flush-interval help %q does not name %q", c.cmd, help, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(help, n) {
				t.Errorf("%s --flush-interval help %q names %q, which it does not write", c.cmd, help, n)
			}
		}
	}
}

// --cache-dir's help says the built-in model (the default) is unpacked
// there too, not only that presets are downloaded there.
func TestCacheDirHelpNamesBuiltin(t *testing.T) {
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	for _, name := range []string{"embed", "reconstruct", "stream", "inspect", "convert"} {
		cmd, _, err := e.rootCommand([]string{name}).Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		if help := cmd.Flags().Lookup("cache-dir").Usage; !strings.Contains(help, "presets") || !strings.Contains(help, "built-in model") {
			t.Errorf("%s --cache-dir help %q does not say presets and the built-in model go there", name, help)
		}
	}
}

// The exit statuses are documented in the root --help and the README.
func TestExitStatusDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	help := mustRun(t, "--help")
	for _, doc := range []struct{ name, text, head string }{{"--help", help, "Exit status:"}, {"README", string(readme), "### Exit status"}} {
		if !strings.Contains(doc.text, doc.head) {
			t.Errorf("%s has no %q section", doc.name, doc.head)
		}
		_, sec, _ := strings.Cut(doc.text, doc.head)
		for _, w := range []string{"0 ", "1 ", "2 ", "usage error"} {
			if !strings.Contains(sec, w) {
				t.Errorf("%s: its exit status section lacks %q", doc.name, w)
			}
		}
	}
}

// The streaming guide says what a user of stream otherwise finds out the
// hard way: that a signal repeated within 0.1 s counts once, that an
// outage can redeliver what was in flight, and what a dead letter carries
// of its input.
func TestStreamDocsShutdownOutageDeadLetters(t *testing.T) {
	doc, err := os.ReadFile("../../docs/streaming.md")
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(doc)), " ")
	for _, want := range []string{
		"The first signal repeated (the same signal) within 0.1 s counts once",
		"After an outage the messages that were in flight (up to `--max-in-flight`",
		"a null value (a tombstone) arrives as an empty, zero-byte value, and the input's headers are not copied",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("docs/streaming.md does not say %q", want)
		}
	}
}
