package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// envChild runs this test binary again, only the test named test, with
// env set (MAEEMBED_* are read at init): as a child (MAEEMBED_ENV_ARGS
// set) that test runs maeembed with those arguments and prints its exit
// code and output, which envChild returns.
func envChild(t *testing.T, test, env, args string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env, "MAEEMBED_ENV_ARGS="+args)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s maeembed %s: %v\n%s", env, args, err, out)
	}
	return string(out)
}

// runEnvChild is the child side of envChild: it reports whether this
// process is one, after running maeembed. With MAEEMBED_TEST_FSIZE set
// (bytes) it runs under that RLIMIT_FSIZE: a write past it fails with
// EFBIG, as a full disk fails one with ENOSPC.
func runEnvChild() bool {
	args := os.Getenv("MAEEMBED_ENV_ARGS")
	if args == "" {
		return false
	}
	if v := os.Getenv("MAEEMBED_TEST_FSIZE"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err == nil {
			err = syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n})
		}
		if err != nil {
			fmt.Printf("MAEEMBED_TEST_FSIZE=%s: %v\n", v, err)
			return true
		}
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), strings.Fields(args), strings.NewReader(""), &stdout, &stderr)
	fmt.Printf("code=%d\n%s%s", code, stdout.String(), stderr.String())
	return true
}

// TestKernelEnv runs this test binary again with MAEEMBED_KERNEL set (it is
// read at init): an unknown value fails a model command as a usage error
// (exit 2) with one line naming the variable, the value and the paths,
// only warns for version, and any letter case works.
func TestKernelEnv(t *testing.T) {
	if runEnvChild() {
		return
	}
	child := func(kernel, args string) string { return envChild(t, "TestKernelEnv", "MAEEMBED_KERNEL="+kernel, args) }
	out := child("bogus", "embed -o x in")
	if !strings.Contains(out, "code=2\n") || strings.Contains(out, "goroutine ") ||
		!strings.Contains(out, "maeembed embed: usage: MAEEMBED_KERNEL=bogus: unknown kernel path \"bogus\": available paths are ") ||
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
// as a usage error (exit 2) with one line naming the variable, the value
// and the accepted values, and only warns for version.
func TestStrassenEnv(t *testing.T) {
	if runEnvChild() {
		return
	}
	child := func(v, args string) string { return envChild(t, "TestStrassenEnv", "MAEEMBED_STRASSEN="+v, args) }
	out := child("maybe", "embed -o x in")
	if !strings.Contains(out, "code=2\n") || !strings.Contains(out, "maeembed embed: usage: MAEEMBED_STRASSEN=maybe: want 0, off, false or no") {
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
