package main

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	franz "github.com/twmb/franz-go/pkg/kgo"
)

// The quickstart broker starts, prints its address, serves the seeded
// topics to a real client and stops cleanly on SIGTERM.
func TestDevBroker(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "devbroker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--port", "0", "--topics", "images:3,embeddings:2", "--auto-create=false")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(line)

	cl, err := franz.NewClient(franz.SeedBrokers(addr), franz.ConsumeTopics("images"), franz.DefaultProduceTopic("images"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &franz.Record{Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if recs := cl.PollFetches(ctx).Records(); len(recs) != 1 || string(recs[0].Value) != "v" {
		t.Fatalf("consumed %v", recs)
	}
	if err := cl.ProduceSync(ctx, &franz.Record{Topic: "unknown", Value: []byte("v")}).FirstErr(); err == nil {
		t.Error("produced to a topic that --auto-create=false should refuse")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("devbroker ignored SIGTERM")
	}
}
