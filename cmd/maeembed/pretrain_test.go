package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// kill -9 in the middle of `maeembed pretrain`, then --resume: the final
// checkpoint (weights and optimiser state) and metrics.csv are bitwise those
// of an uninterrupted run.
func TestE2EPretrainKillAndResume(t *testing.T) {
	bin := buildCLI(t)
	in := filepath.Join(t.TempDir(), "in")
	writePNGs(t, in, 24)
	args := func(out string) []string {
		return []string{"pretrain", "--model", filepath.Join(fixtures, "tiny32", "hf", "config.json"),
			"--epochs", "8", "--warmup-epochs", "2", "--batch-size", "4", "--accum-iter", "2", "--blr", "0.1",
			"--save-every", "2", "--keep-checkpoints", "0", "--seed", "5", "-o", out, in}
	}
	full := filepath.Join(t.TempDir(), "full")
	if b, err := exec.Command(bin, args(full)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, b)
	}
	out := filepath.Join(t.TempDir(), "killed")
	cmd := exec.Command(bin, args(out)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(out, "checkpoint-00000006")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no checkpoint-00000006 within 60 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if err := cmd.Wait(); err == nil {
		t.Skip("the run finished before the kill")
	}
	if b, err := exec.Command(bin, append(args(out), "--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, b)
	}
	for _, f := range []string{"checkpoint-00000024/model.safetensors", "checkpoint-00000024/optimizer.safetensors", "metrics.csv"} {
		a, err1 := os.ReadFile(filepath.Join(full, f))
		b, err2 := os.ReadFile(filepath.Join(out, f))
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v, %v", f, err1, err2)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the killed-and-resumed run", f)
		}
	}
}
