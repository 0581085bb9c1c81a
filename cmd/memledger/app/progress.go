package app

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// reporter shows the progress of a long run over a known number of events.
type reporter interface {
	update(done uint64)
	finish()
}

// newReporter returns a progress bar when w is a terminal, and plain progress lines (at most
// one a second) otherwise.
func newReporter(w io.Writer, label string, total uint64) reporter {
	if isTerminal(w) {
		return newBar(w, label, total)
	}
	return &lineReporter{newProgress(w, label, total)}
}

// newBar returns a progress bar over total events drawn on w, a terminal.
func newBar(w io.Writer, label string, total uint64) *barReporter {
	bar := progressbar.NewOptions64(int64(total),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	return &barReporter{bar: bar}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type barReporter struct{ bar *progressbar.ProgressBar }

func (b *barReporter) update(done uint64) { b.bar.Set64(int64(done)) }
func (b *barReporter) finish()            { b.bar.Finish() }

type lineReporter struct{ p *progress }

func (l *lineReporter) update(done uint64) { l.p.update(done) }

// finish prints the last line unless update already did.
func (l *lineReporter) finish() {
	if l.p.reported != l.p.total {
		l.p.last = time.Time{}
		l.p.update(l.p.total)
	}
}
