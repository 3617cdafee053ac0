package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// A flag that takes one of a few words completes to them in a shell (it
// offered file names), each word is one its help names, and every flag
// whose help lists choices as "a | b" has them.
func TestFlagValuesComplete(t *testing.T) {
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	root := e.rootCommand(nil)
	used := map[string]bool{}
	for _, c := range root.Commands() {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			key := c.Name() + " --" + f.Name
			vals, ok := flagValues[key]
			if !ok {
				key = "--" + f.Name
				vals, ok = flagValues[key]
			}
			if !ok {
				if strings.Contains(f.Usage, " | ") {
					t.Errorf("%s --%s lists choices (%q) but completes none", c.Name(), f.Name, f.Usage)
				}
				return
			}
			used[key] = true
			for _, v := range vals {
				if !strings.Contains(f.Usage, v) {
					t.Errorf("%s --%s completes %q, which its help (%q) does not name", c.Name(), f.Name, v, f.Usage)
				}
			}
			_, out, _ := maeembed(t, "__complete", c.Name(), "--"+f.Name, "")
			if want := strings.Join(vals, "\n") + "\n:4\n"; out != want {
				t.Errorf("%s --%s completes to %q, want %q", c.Name(), f.Name, out, want)
			}
		})
	}
	for k := range flagValues {
		if !used[k] {
			t.Errorf("flagValues[%q] matches no command's flag", k)
		}
	}
}

// completion with a shell it does not know, or with none, is a usage error
// (exit 2) naming the shells it knows, not its help and success; a known
// shell still prints its script.
func TestCompletionUnknownShell(t *testing.T) {
	for _, args := range [][]string{{"completion", "tcsh"}, {"completion"}} {
		code, out, stderr := maeembed(t, args...)
		if code != 2 || out != "" || !strings.Contains(stderr, "bash, fish, powershell, zsh") {
			t.Errorf("maeembed %s: exit %d, stdout %q\n%s", strings.Join(args, " "), code, out, stderr)
		}
	}
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		if out := mustRun(t, "completion", sh); !strings.Contains(out, "maeembed") {
			t.Errorf("completion %s printed no script:\n%s", sh, out)
		}
	}
	if out := mustRun(t, "completion", "--help"); !strings.Contains(out, "bash") {
		t.Errorf("completion --help:\n%s", out)
	}
}
