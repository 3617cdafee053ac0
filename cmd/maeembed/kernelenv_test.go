package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestKernelEnv runs this test binary again with MAEEMBED_KERNEL set (it is
// read at init): an unknown value fails a model command with one line
// naming the paths, only warns for version, and any letter case works.
func TestKernelEnv(t *testing.T) {
	if args := os.Getenv("MAEEMBED_KERNEL_ARGS"); args != "" {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), strings.Fields(args), strings.NewReader(""), &stdout, &stderr)
		fmt.Printf("code=%d\n%s%s", code, stdout.String(), stderr.String())
		return
	}
	child := func(kernel, args string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKernelEnv$")
		cmd.Env = append(os.Environ(), "MAEEMBED_KERNEL="+kernel, "MAEEMBED_KERNEL_ARGS="+args)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("MAEEMBED_KERNEL=%s maeembed %s: %v\n%s", kernel, args, err, out)
		}
		return string(out)
	}
	out := child("bogus", "embed -o x in")
	if !strings.Contains(out, "code=1\n") || strings.Contains(out, "goroutine ") ||
		!strings.Contains(out, "maeembed embed: MAEEMBED_KERNEL=bogus: unknown kernel path \"bogus\": available paths are ") ||
		!strings.Contains(out, "generic\n") {
		t.Errorf("embed with MAEEMBED_KERNEL=bogus:\n%s", out)
	}
	out = child("bogus", "version")
	if !strings.Contains(out, "code=0\n") || !strings.Contains(out, "maeembed "+version) || !strings.Contains(out, "MAEEMBED_KERNEL ignored") {
		t.Errorf("version with MAEEMBED_KERNEL=bogus:\n%s", out)
	}
	out = child("GENERIC", "version")
	if !strings.Contains(out, "code=0\n") || strings.Contains(out, "MAEEMBED_KERNEL") {
		t.Errorf("version with MAEEMBED_KERNEL=GENERIC:\n%s", out)
	}
}

// TestStrassenEnv: an unknown MAEEMBED_STRASSEN value fails a model command
// with one line naming the accepted values, and only warns for version.
func TestStrassenEnv(t *testing.T) {
	if args := os.Getenv("MAEEMBED_STRASSEN_ARGS"); args != "" {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), strings.Fields(args), strings.NewReader(""), &stdout, &stderr)
		fmt.Printf("code=%d\n%s%s", code, stdout.String(), stderr.String())
		return
	}
	child := func(v, args string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStrassenEnv$")
		cmd.Env = append(os.Environ(), "MAEEMBED_STRASSEN="+v, "MAEEMBED_STRASSEN_ARGS="+args)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("MAEEMBED_STRASSEN=%s maeembed %s: %v\n%s", v, args, err, out)
		}
		return string(out)
	}
	out := child("maybe", "embed -o x in")
	if !strings.Contains(out, "code=1\n") || !strings.Contains(out, "maeembed embed: MAEEMBED_STRASSEN=maybe: want 0, off, false or no") {
		t.Errorf("embed with MAEEMBED_STRASSEN=maybe:\n%s", out)
	}
	out = child("maybe", "version")
	if !strings.Contains(out, "code=0\n") || !strings.Contains(out, "MAEEMBED_STRASSEN ignored") {
		t.Errorf("version with MAEEMBED_STRASSEN=maybe:\n%s", out)
	}
	out = child("Off", "version")
	if !strings.Contains(out, "code=0\n") || strings.Contains(out, "MAEEMBED_STRASSEN") {
		t.Errorf("version with MAEEMBED_STRASSEN=Off:\n%s", out)
	}
}
