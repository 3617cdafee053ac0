package train

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// metricsFile is metrics.csv: step, epoch, loss, lr, one row per optimiser
// step, flushed as written. On resume the rows after the checkpoint's step
// (written before a crash) are dropped, so the file matches the run.
type metricsFile struct {
	f *os.File
	w *csv.Writer
}

var metricsHeader = []string{"step", "epoch", "loss", "lr"}

func openMetrics(path string, keepUpTo int) (*metricsFile, error) {
	var kept [][]string
	if old, err := os.ReadFile(path); err == nil {
		kept = readMetricRows(old, keepUpTo)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(metricsHeader)
	w.WriteAll(kept)
	if err := writeAtomic(path, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsFile{f: f, w: csv.NewWriter(f)}, nil
}

// readMetricRows returns the complete rows with step ≤ upTo.
func readMetricRows(b []byte, upTo int) [][]string {
	var rows [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		r, err := csv.NewReader(bytes.NewReader(sc.Bytes())).Read()
		if err != nil || len(r) != len(metricsHeader) {
			continue
		}
		step, err := strconv.Atoi(r[0])
		if err != nil || step > upTo {
			continue
		}
		if _, err := strconv.ParseFloat(r[3], 64); err != nil {
			continue // a line cut by a crash
		}
		rows = append(rows, r)
	}
	return rows
}

func (m *metricsFile) Add(step int, epoch, loss, lr float64) error {
	m.w.Write([]string{strconv.Itoa(step), strconv.FormatFloat(epoch, 'f', 4, 64),
		strconv.FormatFloat(loss, 'g', 9, 64), strconv.FormatFloat(lr, 'g', 9, 64)})
	m.w.Flush()
	return m.w.Error()
}

func (m *metricsFile) Close() error {
	if m.f == nil {
		return nil
	}
	err := m.f.Close()
	m.f = nil
	return err
}
