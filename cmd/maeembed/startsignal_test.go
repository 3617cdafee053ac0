package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maeembed/maeembed/mae"
	"github.com/maeembed/maeembed/mae/weights"
)

// hangingHub is a mirror of the model download site (MAEEMBED_HUB_URL)
// that answers no request: a run that needs a preset waits in its
// download, at a moment the test knows (asked reports a request came).
func hangingHub(t *testing.T) (asked func() bool) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		<-r.Context().Done() // the client went away
	}))
	t.Cleanup(srv.Close)
	t.Setenv("MAEEMBED_HUB_URL", srv.URL)
	return func() bool { return n.Load() > 0 }
}

// waitExit waits up to bound for cmd to end and returns its exit code;
// still running then, it is killed and the test fails.
func waitExit(t *testing.T, cmd *exec.Cmd, bound time.Duration, stderr *bytes.Buffer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(bound):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running %v after the signal\n%s", bound, stderr.String())
		return -1
	}
}

// SIGTERM or SIGINT while a stream worker starts (here: its model is
// being downloaded, after it took its output directory) ends it at once
// with exit status 1 and a log line saying so: the output directory it
// made is removed, no lock file stays, and the group has no committed
// offset. It used to ask for a drain that nothing checked until the
// model had loaded: the worker went on waiting for the download.
func TestE2EStreamSignalWhileStarting(t *testing.T) {
	addr := broker(t, 0, 1)
	imgs := fixtureImages(t)
	produceImages(t, producer(t, addr), manyKeys("img", 4), imgs, pickImage(imgs))
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			asked := hangingHub(t)
			out := filepath.Join(t.TempDir(), "out")
			cmd := exec.Command(binary(t), "stream", "-m", "mae_vit_base_patch16", "--cache-dir", t.TempDir(),
				"--brokers", addr, "--topic", "images", "--group", "startsig", "-o", out)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			startUntil(t, cmd, "a model download", 60*time.Second, asked)
			cmd.Process.Signal(sig)
			if code := waitExit(t, cmd, 30*time.Second, &stderr); code != 1 {
				t.Errorf("after %v while starting: exit %d, want 1\n%s", sig, code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "signal before the run started") {
				t.Errorf("no log line says the run stopped before it started:\n%s", stderr.String())
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				ents, _ := os.ReadDir(out)
				t.Errorf("the worker left %s (%v)", out, ents)
			}
			for p, off := range committed(t, addr, "startsig", "images", 1) {
				if off >= 0 {
					t.Errorf("partition %d: offset %d committed by a worker that processed nothing", p, off)
				}
			}
		})
	}
}

// SIGTERM while pretrain starts (here: its --init checkpoint is being
// read, before the run took its output directory) ends it at once with
// exit status 1 and a log line saying so, without going on to the checks
// after the load and without making its output directory. It used to ask
// for a drain that nothing checked until the checkpoint had loaded: the
// run went on (here to refuse the checkpoint's architecture).
//
// The signal must land while the checkpoint is read: the test stops the
// process (SIGSTOP) once it has the file open, sends SIGTERM only if it
// has read less than half of it (else it tries again with a new
// process), then lets it go on (SIGCONT), so that most of the read is
// still ahead when the signal is handled.
func TestE2EPretrainSIGTERMWhileStarting(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the process's file offsets from /proc")
	}
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 8)
	// A checkpoint of another, wider architecture than --model: about
	// 80 MB to read.
	init := filepath.Join(t.TempDir(), "init")
	cfg := mae.Config{Name: "wide", ImageSize: 32, PatchSize: 8, Channels: 3, Dim: 384, Depth: 12, Heads: 6, MLPDim: 1536,
		DecDim: 32, DecDepth: 1, DecHeads: 4, DecMLPDim: 128, Eps: 1e-6, MaskRatio: 0.75}
	m, err := mae.New(cfg, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := weights.SaveHF(init, m.Tensors(), cfg.HF()); err != nil {
		t.Fatal(err)
	}
	m = nil
	file := filepath.Join(init, weights.HFSafetensorsFile)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		out := filepath.Join(t.TempDir(), "run")
		cmd := exec.Command(binary(t), "pretrain", "--model", filepath.Join(fixtures, "tiny32", "hf", "config.json"), "--init", init,
			"--epochs", "1", "--batch-size", "2", "-o", out, in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var pos int64
		startUntil(t, cmd, "the --init checkpoint being read", 60*time.Second, func() bool {
			pos = readPos(cmd.Process.Pid, file)
			return pos >= 0
		})
		cmd.Process.Signal(syscall.SIGSTOP)
		if pos = readPos(cmd.Process.Pid, file); pos < 0 || pos > st.Size()/2 {
			cmd.Process.Kill()
			cmd.Wait()
			if attempt == 10 {
				t.Fatalf("in 10 tries, never stopped pretrain in the first half of reading its --init checkpoint")
			}
			continue
		}
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Process.Signal(syscall.SIGCONT)
		if code := waitExit(t, cmd, 30*time.Second, &stderr); code != 1 {
			t.Errorf("after SIGTERM while starting: exit %d, want 1\n%s", code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "signal before the run started") || strings.Contains(stderr.String(), "different architecture") {
			t.Errorf("the log does not say the run stopped before it started, or it went on to check the checkpoint:\n%s", stderr.String())
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			ents, _ := os.ReadDir(out)
			t.Errorf("pretrain left %s (%v)", out, ents)
		}
		return
	}
}

// readPos is the offset at which process pid reads file (from its
// /proc/PID/fdinfo), or -1 when it does not have the file open.
func readPos(pid int, file string) int64 {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err != nil || target != file {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, filepath.Base(fd)))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "pos:"); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					return n
				}
			}
		}
	}
	return -1
}
