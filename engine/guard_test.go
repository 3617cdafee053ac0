package engine

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// takeOut is guardOutput's take for a batch run into the directory out,
// which does not exist yet (the run makes it).
func takeOut(out string) func() (func(bool), error) {
	return func() (func(bool), error) {
		return TakeOutputDir(OutputDir{Dir: out, Format: "parquet", Command: "embed"})
	}
}

// lockFiles lists the lock files in out.
func lockFiles(t *testing.T, out string) []string {
	t.Helper()
	l, err := filepath.Glob(filepath.Join(out, ".maeembed-*.lock"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A signal while the output is guarded releases the output and then calls
// the caller's interrupted with it, on the guard's goroutine; the engine
// does not end the process itself. The hook records what it saw and ends
// that goroutine (runtime.Goexit) instead of the process, so that the test
// process survives; returning would end it as a nil hook does.
func TestGuardOutputCallsInterruptedAfterReleasing(t *testing.T) {
	if signal.Ignored(syscall.SIGTERM) {
		t.Skip("SIGTERM is ignored in this process: the guard does not watch it")
	}
	out := filepath.Join(t.TempDir(), "out")
	type call struct {
		sig   os.Signal
		locks []string
		dir   error // os.Stat(out)'s
	}
	calls := make(chan call, 2)
	interrupted := func(s os.Signal) {
		l, _ := filepath.Glob(filepath.Join(out, ".maeembed-*.lock"))
		_, err := os.Stat(out)
		calls <- call{s, l, err}
		runtime.Goexit()
	}
	_, stop, err := guardOutput(takeOut(out), interrupted)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if len(lockFiles(t, out)) == 0 {
		t.Fatalf("no lock file in %s once taken", out)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-calls:
		if c.sig != syscall.SIGTERM {
			t.Errorf("interrupted(%v), want SIGTERM", c.sig)
		}
		if len(c.locks) > 0 {
			t.Errorf("interrupted was called with the lock files still there: %v", c.locks)
		}
		if !errors.Is(c.dir, os.ErrNotExist) {
			t.Errorf("interrupted was called with the empty directory the run made still there (stat: %v)", c.dir)
		}
	case <-time.After(time.Minute):
		t.Fatal("interrupted not called within a minute of SIGTERM")
	}
	stop() // returns: the guard's goroutine has ended
	select {
	case c := <-calls:
		t.Errorf("interrupted called twice (again with %v)", c.sig)
	default:
	}
}

// guardChildEnv names, in a child process of the test binary, the output
// directory it guards and how its interrupted behaves: "nil" (none) or
// "returns".
const guardChildEnv = "MAEEMBED_TEST_GUARD_CHILD"

// Without an interrupted that ends the process (none, or one that
// returns), the guard ends it as the signal would have without it: the
// process dies by SIGTERM, with the output released. That ends the process
// it runs in, so it runs in a child: this test binary run again.
func TestGuardOutputWithoutInterruptedEndsBySignal(t *testing.T) {
	if signal.Ignored(syscall.SIGTERM) {
		t.Skip("SIGTERM is ignored in this process, so in its child: the guard does not watch it")
	}
	for _, hook := range []string{"nil", "returns"} {
		t.Run(hook, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			cmd := exec.Command(os.Args[0], "-test.run=^TestGuardOutputChild$", "-test.v")
			cmd.Env = append(os.Environ(), guardChildEnv+"="+hook+":"+out)
			b, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("child: %v, want it ended by SIGTERM\n%s", err, b)
			}
			ws, ok := ee.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
				t.Fatalf("child: %v, want it ended by SIGTERM\n%s", err, b)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the empty directory the child made is still there (stat: %v; locks %v)\n%s", err, lockFiles(t, out), b)
			}
		})
	}
}

// A signal while the take fails (nothing taken) ends the process as it
// would have without the guard, by the signal, and interrupted (which
// would exit 1 as an interrupted run) is not called; in a child, as above.
func TestGuardOutputSignalDuringFailedTakeEndsBySignal(t *testing.T) {
	if signal.Ignored(syscall.SIGTERM) {
		t.Skip("SIGTERM is ignored in this process, so in its child: the guard does not watch it")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGuardOutputChild$", "-test.v")
	cmd.Env = append(os.Environ(), guardChildEnv+"=failtake:"+filepath.Join(t.TempDir(), "out"))
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v, want it ended by SIGTERM\n%s", err, b)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("child: %v, want it ended by SIGTERM, not through interrupted (exit 3)\n%s", err, b)
	}
}

// TestGuardOutputChild is the child of
// TestGuardOutputWithoutInterruptedEndsBySignal and
// TestGuardOutputSignalDuringFailedTakeEndsBySignal; it does nothing
// otherwise.
func TestGuardOutputChild(t *testing.T) {
	v := os.Getenv(guardChildEnv)
	if v == "" {
		t.Skip("only run as a child of TestGuardOutputWithoutInterruptedEndsBySignal")
	}
	hook, out, _ := strings.Cut(v, ":")
	var interrupted func(os.Signal)
	if hook == "returns" {
		interrupted = func(os.Signal) {}
	}
	if hook == "failtake" {
		// A signal during a take that fails: nothing was taken, so the
		// process ends by it, without interrupted (which exits 3 here).
		interrupted = func(os.Signal) { os.Exit(3) }
		take := func() (func(bool), error) {
			syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
			return nil, errors.New("output refused")
		}
		if _, _, err := guardOutput(take, interrupted); err == nil {
			t.Fatal("a failed take guarded the output")
		}
		time.Sleep(time.Minute)
		t.Fatal("still running a minute after SIGTERM during a failed take")
	}
	_, stop, err := guardOutput(takeOut(out), interrupted)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	time.Sleep(time.Minute)
	t.Fatal("still running a minute after SIGTERM")
}
