package sources

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A FIFO or a device named as an input is refused as that input's error
// item at once, instead of blocking the run in a read no signal can end
// (a FIFO without a writer) or reading for ever (/dev/zero).
func TestSpecialFilesRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "photo.jpg")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	tarFifo := filepath.Join(dir, "shard.tar")
	if err := syscall.Mkfifo(tarFifo, 0o644); err != nil {
		t.Fatal(err)
	}
	inputs := []string{fifo, tarFifo, "/dev/zero"}
	got := make(chan []Item, 1)
	go func() {
		r, err := Open(inputs, Options{})
		if err != nil {
			t.Error(err)
			got <- nil
			return
		}
		defer r.Close()
		var items []Item
		for {
			it, err := r.Next(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Error(err)
				break
			}
			items = append(items, it)
		}
		got <- items
	}()
	var items []Item
	select {
	case items = <-got:
	case <-time.After(time.Minute):
		t.Fatal("reading a FIFO or device blocked")
	}
	if len(items) != len(inputs) {
		t.Fatalf("%d items, want one per input: %+v", len(items), items)
	}
	for _, it := range items {
		if it.Err == nil || !errors.Is(it.Err, errNotRegular) {
			t.Errorf("%s: err %v, want a refusal", it.ID, it.Err)
		}
	}
	if _, err := os.Stat(fifo); err != nil {
		t.Fatal(err)
	}
}
