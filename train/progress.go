package train

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// NewProgress returns a Status callback for Options.Progress: a bar with
// step, epoch, loss, lr and images/s when w is a terminal, else a log line
// every interval (and at the last step).
func NewProgress(w io.Writer, total int, interval time.Duration) func(Status) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionShowDescriptionAtLineEnd(),
		)
		return func(s Status) {
			bar.Describe(fmt.Sprintf("epoch %.2f loss %.4f lr %.2e %.1f img/s", s.Epoch, s.Loss, s.LR, s.ImagesPerSec))
			bar.Set(s.Step)
			if s.Step == s.TotalSteps {
				bar.Finish()
				fmt.Fprintln(w)
			}
		}
	}
	var last time.Time
	return func(s Status) {
		if time.Since(last) < interval && s.Step != s.TotalSteps {
			return
		}
		last = time.Now()
		slog.Info("train", "step", s.Step, "of", s.TotalSteps, "epoch", fmt.Sprintf("%.2f", s.Epoch),
			"loss", fmt.Sprintf("%.5f", s.Loss), "lr", fmt.Sprintf("%.3e", s.LR), "img_per_s", fmt.Sprintf("%.2f", s.ImagesPerSec))
	}
}
