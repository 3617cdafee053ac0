package engine

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// startupSignal watches the start of a run in this process: interrupted
// reports the signal on the channel and ends the watch's goroutine there
// (the command's would end the process).
func startupSignal() (*Startup, chan os.Signal) {
	got := make(chan os.Signal, 1)
	return WatchStartup(func(s os.Signal) { got <- s; runtime.Goexit() }), got
}

// A signal before the run owns the signals (the model loads, the brokers
// are asked) releases the output directory taken under the Stop, removing
// the directory this run made, and then calls interrupted with it.
func TestStartupSignalReleasesWhatWasTaken(t *testing.T) {
	w, got := startupSignal()
	defer w.Release()
	stop := w.OnSignals(context.Background(), 0, os.Interrupt, syscall.SIGTERM)
	defer stop.Release()
	out := filepath.Join(t.TempDir(), "out")
	release, err := stop.TakeOutputDir(OutputDir{Dir: out, Format: "parquet", Resume: true, Command: "stream"})
	if err != nil {
		t.Fatal(err)
	}
	defer release(true)
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("the output directory was not made: %v", err)
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	select {
	case s := <-got:
		if s != syscall.SIGTERM {
			t.Errorf("interrupted with %v, want SIGTERM", s)
		}
	case <-time.After(time.Minute):
		t.Fatal("interrupted was not called")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(out)
		t.Errorf("the output directory this run made is still there (%v), or: %v", ents, err)
	}
	if stop.Drain.Err() != nil {
		t.Error("the Stop drained before it owned the signals")
	}
}

// Once the run owns the signals (Own), the first one drains its Stop, as
// OnSignals' does, and the Startup neither interrupts nor releases the
// output any more.
func TestStartupHandsTheSignalsToTheRun(t *testing.T) {
	w, got := startupSignal()
	defer w.Release()
	stop := w.OnSignals(context.Background(), 0, syscall.SIGTERM)
	defer stop.Release()
	out := filepath.Join(t.TempDir(), "out")
	release, err := stop.TakeOutputDir(OutputDir{Dir: out, Format: "parquet", Resume: true, Command: "stream"})
	if err != nil {
		t.Fatal(err)
	}
	defer release(true)
	stop.Own()
	stop.Own() // again: nothing
	syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	waitDone(t, "drain", stop.Drain)
	if stop.Abort.Err() != nil {
		t.Errorf("the first signal after the handover aborted: %v", context.Cause(stop.Abort))
	}
	select {
	case s := <-got:
		t.Errorf("interrupted(%v) after the handover", s)
	default:
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("the output directory went after the handover: %v", err)
	}
}
