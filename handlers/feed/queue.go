package feed

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errStalled is a queue that stayed full for the stall timeout: its reader does not keep up.
var errStalled = errors.New("the reader did not keep up")

// queue holds the lines read from the log that the client has not been sent yet, up to max
// bytes (and always at least one line), between the goroutine reading the log and the one
// writing to the client.
type queue struct {
	mu    sync.Mutex
	lines [][]byte
	bytes int
	max   int
	// closed is set once the reader is done; err says why it stopped (nil at the end).
	closed bool
	// pushed and popped are signalled (without blocking) on each change.
	pushed, popped chan struct{}
	// held is called with the change of the bytes held, for the server's count.
	held func(delta int)
}

func newQueue(max int, held func(int)) *queue {
	return &queue{max: max, pushed: make(chan struct{}, 1), popped: make(chan struct{}, 1), held: held}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push adds line, waiting while the queue is full; it gives up with errStalled when the queue
// stays full for stall, and with ctx's error when ctx is done.
func (q *queue) push(ctx context.Context, line []byte, stall time.Duration) error {
	var timer *time.Timer
	for {
		q.mu.Lock()
		if len(q.lines) == 0 || q.bytes+len(line) <= q.max {
			q.lines = append(q.lines, line)
			q.bytes += len(line)
			q.mu.Unlock()
			q.held(len(line))
			signal(q.pushed)
			return nil
		}
		q.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(stall)
			defer timer.Stop()
		}
		select {
		case <-q.popped:
		case <-timer.C:
			return errStalled
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pushLast adds the last line, whatever the queue holds, and closes it.
func (q *queue) pushLast(line []byte) {
	q.mu.Lock()
	if line != nil {
		q.lines = append(q.lines, line)
		q.bytes += len(line)
	}
	q.closed = true
	q.mu.Unlock()
	if line != nil {
		q.held(len(line))
	}
	signal(q.pushed)
}

// take returns every line queued (nil when there is none), their size, and whether the queue
// is closed and empty. The lines still count as held until the caller releases their size,
// once they are written: a feed holds at most twice its queue's bound.
func (q *queue) take() ([][]byte, int, bool) {
	q.mu.Lock()
	lines, n := q.lines, q.bytes
	q.lines, q.bytes = nil, 0
	done := q.closed && len(lines) == 0
	q.mu.Unlock()
	if n > 0 {
		signal(q.popped)
	}
	return lines, n, done
}

// release stops counting n bytes taken as held.
func (q *queue) release(n int) { q.held(-n) }
