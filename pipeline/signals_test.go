package pipeline

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestOnSignalsDrainsThenAborts(t *testing.T) {
	// os/signal starts one process-lifetime goroutine on first use: start it
	// before counting.
	warm := make(chan os.Signal, 1)
	signal.Notify(warm, syscall.SIGUSR2)
	signal.Stop(warm)
	noLeak(t)
	var produced, consumed atomic.Int64
	p := New(context.Background(), Options{})
	interrupted, stop := p.OnSignals(syscall.SIGUSR1)
	defer stop()
	src := Source(p, "src", 1, func(ctx context.Context) (int, error) {
		time.Sleep(time.Millisecond)
		return int(produced.Add(1)), nil
	})
	block := make(chan struct{})
	Sink(p, "sink", src, 1, func(ctx context.Context, v int) error {
		if v == 20 { // hold one item until the second signal
			select {
			case <-block:
			case <-ctx.Done():
				return nil
			}
		}
		consumed.Add(1)
		return nil
	})
	for produced.Load() < 21 {
		time.Sleep(time.Millisecond)
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
	deadline := time.Now().Add(2 * time.Second)
	for !interrupted() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !interrupted() {
		t.Fatal("signal not seen")
	}
	time.Sleep(20 * time.Millisecond) // still blocked on item 20: drain waits for it
	syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
	if err := p.Wait(); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Wait = %v, want ErrInterrupted", err)
	}
	stop()
	close(block)
}
