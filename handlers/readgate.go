package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
)

// The read-your-writes parameter and headers of every read.
const (
	// ParamMinSeq is the query parameter naming the log position a read must reflect.
	ParamMinSeq = "min_seq"
	// HeaderMinSeq is the same as a request header.
	HeaderMinSeq = "Memledger-Min-Seq"
	// HeaderPosition, on every read's answer, is the log position the projections had applied
	// when the read was served: the answer reflects every event up to it (and maybe later ones).
	HeaderPosition = "Memledger-Position"
)

// DefaultReadWait bounds how long a read waits for the projections when ReadWait is 0.
const DefaultReadWait = 10 * time.Second

// notReads are the GET routes that do not read the projections: they take no min_seq.
var notReads = map[string]bool{
	"GET /health":           true,
	"GET /metrics":          true,
	"GET /openapi.json":     true,
	"GET /{$}":              true,
	"GET /ui/static/{file}": true,
	"GET /ui/signin":        true,
}

// isRead says whether the route pattern is a read of the projections: every GET route but
// notReads.
func isRead(pattern string) bool {
	return strings.HasPrefix(pattern, "GET ") && !notReads[pattern]
}

func (s *Server) readWait() time.Duration {
	if s.ReadWait <= 0 {
		return DefaultReadWait
	}
	return s.ReadWait
}

// gateRead holds a read back until the projections are where it may be served from: past the
// position the log had when the service started (they catch up after a start) and past the
// read's min_seq (query parameter or Memledger-Min-Seq header: read-your-writes). The wait is
// bounded by ReadWait; then the read is a 503 with Retry-After. It strips min_seq from the
// query, sets Memledger-Position and returns false when it has answered.
func (s *Server) gateRead(w http.ResponseWriter, r *http.Request, pattern string) bool {
	fail := s.fail
	if strings.HasPrefix(pattern, "GET /ui/") {
		// A page answers a page.
		fail = func(w http.ResponseWriter, r *http.Request, err error) {
			if statusOf(err) == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			s.uiFail(w, r, err)
		}
	}
	minSeq, err := s.minSeq(r)
	if err != nil {
		fail(w, r, err)
		return false
	}
	_, target := s.Runner.CatchUp()
	want := max(minSeq, target)
	views := []positioned{{"projections", s.Runner}}
	if pattern == "GET /memory/search" && s.Search != nil {
		views = append(views, positioned{"search index", s.Search})
	}
	if minSeq > views[0].v.Applied() {
		// A position the log does not hold yet can never be reached by waiting.
		last, err := s.Store.LastSeq(r.Context())
		if err != nil {
			fail(w, r, err)
			return false
		}
		if minSeq > last {
			fail(w, r, domain.Invalid(minSeqField(r), "%d is beyond the log's end (its last event is %d)", minSeq, last))
			return false
		}
	}
	position := ^uint64(0)
	for _, v := range views {
		if err := projections.WaitApplied(r.Context(), v.v, want, s.readWait()); err != nil {
			var behind *projections.BehindError
			if errors.As(err, &behind) {
				why := "min_seq"
				if want == target && minSeq < target {
					why = "the log's position at start (they are catching up; see /health)"
				}
				err = fmt.Errorf("%w: the %s are at log position %d, behind %d, %s, after waiting %s; retry",
					errReadBehind, v.name, behind.At, want, why, s.readWait())
			}
			fail(w, r, err)
			return false
		}
		position = min(position, v.v.Applied())
	}
	if q := r.URL.Query(); q.Has(ParamMinSeq) {
		q.Del(ParamMinSeq)
		r.URL.RawQuery = q.Encode()
	}
	w.Header().Set(HeaderPosition, strconv.FormatUint(position, 10))
	return true
}

// waitCatchUp holds a request back, at most ReadWait, while the projections catch up with
// the log's position at the start; then it answers 503 and returns false.
func (s *Server) waitCatchUp(w http.ResponseWriter, r *http.Request, pattern string) bool {
	applied, target := s.Runner.CatchUp()
	if applied >= target {
		return true
	}
	err := projections.WaitApplied(r.Context(), s.Runner, target, s.readWait())
	if err == nil {
		return true
	}
	var behind *projections.BehindError
	if errors.As(err, &behind) {
		err = fmt.Errorf("%w: the projections are at log position %d, behind %d, the log's position at start (they are catching up; see /health), after waiting %s; retry",
			errReadBehind, behind.At, target, s.readWait())
	}
	if strings.HasPrefix(pattern, "GET /ui/") {
		w.Header().Set("Retry-After", "1")
		s.uiFail(w, r, err)
	} else {
		s.fail(w, r, err)
	}
	return false
}

type positioned struct {
	name string
	v    projections.Positioned
}

// errReadBehind is a read that waited its bound for the projections: a 503.
var errReadBehind = errors.New("the views are behind the position this read must reflect")

// minSeq reads a request's min_seq: the query parameter or the Memledger-Min-Seq header (the
// higher of the two when both are given); 0 when neither is.
func (s *Server) minSeq(r *http.Request) (uint64, error) {
	var seq uint64
	for _, src := range []struct{ field, value string }{
		{ParamMinSeq, r.URL.Query().Get(ParamMinSeq)},
		{HeaderMinSeq, r.Header.Get(HeaderMinSeq)},
	} {
		if src.value == "" {
			continue
		}
		n, err := strconv.ParseUint(src.value, 10, 64)
		if err != nil {
			return 0, domain.Invalid(src.field, "must be a log position (a write's seq), got %q", src.value)
		}
		seq = max(seq, n)
	}
	return seq, nil
}

// minSeqField names where the request gave its min_seq, for a problem's field.
func minSeqField(r *http.Request) string {
	if r.URL.Query().Get(ParamMinSeq) == "" {
		return HeaderMinSeq
	}
	return ParamMinSeq
}
