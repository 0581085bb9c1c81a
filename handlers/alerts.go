package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/auth"
	"github.com/memledger/memledger/handlers/jobs"
)

// ActorAlerts is the default actor of alerts raised over HTTP; the program's own rules raise
// theirs under their own names.
const ActorAlerts = "api-http"

type raiseAlertRequest struct {
	Severity string         `json:"severity"`
	Title    string         `json:"title"`
	Message  string         `json:"message"`
	Context  map[string]any `json:"context"`
}

func (s *Server) postAlert(w http.ResponseWriter, r *http.Request) {
	var q raiseAlertRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := plainCaller(r, ActorAlerts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.Ledger.RaiseAlert(r.Context(), c, domain.RaiseAlert(q))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

func parseSeverityFilter(v string) (domain.Severity, error) {
	if v == "" {
		return "", nil
	}
	sev, ok := domain.ParseSeverity(v)
	if !ok {
		return "", domain.Invalid("severity", "unknown severity %q; expected info, warning or critical", v)
	}
	return sev, nil
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) {
	sev, err := parseSeverityFilter(r.URL.Query().Get("severity"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := queryLimit(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	alerts, err := s.DB.ListAlerts(sev, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	last, err := s.DB.LastAlerts()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, failures, err := s.DB.DeliveryFailures(20)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	lastBySeverity := map[string]json.RawMessage{}
	for _, sv := range domain.Severities {
		lastBySeverity[string(sv)] = last[sv]
		if last[sv] == nil {
			lastBySeverity[string(sv)] = json.RawMessage("null")
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"alerts":            alerts,
		"last":              lastBySeverity,
		"delivery_failures": map[string]any{"count": n, "recent": failures},
	})
}

// watchAlerts streams alerts as they are raised, one JSON object a line, from the given time
// (since, an RFC 3339 time or a duration back from now) or from now on.
func (s *Server) watchAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sev, err := parseSeverityFilter(q.Get("severity"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	subjects := []string{eventstore.AlertSubjects}
	if sev != "" {
		subjects = []string{eventstore.AlertSubject(sev)}
	}
	last, err := s.Store.LastSeq(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// From now on: whatever is appended after the answer's headers is on the stream.
	from := last + 1
	if v := q.Get("since"); v != "" {
		since, err := parseSince(v, s.Now())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		// The projections' timeline finds the first alert at or after since among what they
		// have applied, or the position after it: what they have not applied yet is read.
		if from, _, err = s.DB.FirstAfter(since); err != nil {
			s.fail(w, r, err)
			return
		}
		from = max(from, 1)
	}
	// Streams end when the service stops: http.Server.Shutdown does not end them.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stopAtShutdown := context.AfterFunc(s.streams(), cancel)
	defer stopAtShutdown()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// The server's ReadTimeout is for reading requests: a stream lives longer, and its
	// connection's read deadline is lifted (the request has been read).
	rc.SetReadDeadline(time.Time{})
	rc.Flush()
	out := bufio.NewWriter(w)
	// A consumer that fails (its server died, and it could not be made again at once) is
	// replaced: the stream goes on from the alert after the last one sent.
	err = s.Store.Read(ctx, eventstore.ReadOptions{From: from, Subjects: subjects, Follow: true, Resume: true, ReadAhead: watchReadAhead},
		func(m eventstore.Message) error {
			ev, err := eventstore.Decode(m.Data, m.Seq)
			a, ok := domain.AlertOf(ev)
			if err != nil || !ok {
				return nil
			}
			data, _ := json.Marshal(a)
			out.Write(append(data, '\n'))
			if out.Flush() != nil || rc.Flush() != nil {
				return errWatcherGone
			}
			return nil
		})
	if ended := auth.Ended(r.Context()); ended != nil {
		// The stream's token was revoked or expired, or its session ended: its last line
		// says so.
		data, _ := json.Marshal(watchEnd{End: "unauthenticated",
			Reason: strings.TrimPrefix(ended.Error(), auth.ErrUnauthenticated.Error()+": ")})
		out.Write(append(data, '\n'))
		out.Flush()
		rc.Flush()
		return
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, errWatcherGone) {
		s.Logger.Warn("alert watch: reading the log failed; the stream ends", "err", err)
	}
}

// watchReadAhead is how many alerts an alert watch pulls ahead of its client at most.
const watchReadAhead = 64

// errWatcherGone ends an alert watch whose client no longer takes its lines.
var errWatcherGone = errors.New("the watcher went away")

// watchEnd is the last line of an alert watch stream its credentials ended.
type watchEnd struct {
	End    string `json:"end"`
	Reason string `json:"reason"`
}

// parseSince reads a point in time given as RFC 3339 or as a duration before now ("1h").
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, domain.Invalid("since", "%q is neither an RFC 3339 time nor a duration like 1h", v)
}

type harnessRequest struct {
	PassRate *float64 `json:"pass_rate"`
	Passed   int      `json:"passed"`
	Total    int      `json:"total"`
	Note     string   `json:"note"`
}

func (s *Server) postHarness(w http.ResponseWriter, r *http.Request) {
	var q harnessRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	h := domain.HarnessRecorded{Passed: q.Passed, Total: q.Total}
	if q.PassRate != nil {
		h.PassRate = *q.PassRate
	}
	c, err := plainCaller(r, DefaultActor)
	if err == nil {
		_, err = s.Ledger.RecordHarness(r.Context(), c, q.Note, h, q.PassRate != nil)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	latest, err := s.DB.LatestHarness()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, latest)
}

type pipelineCheckRequest struct {
	MinPassRate   *float64 `json:"min_pass_rate"`
	MaxCandidates *int     `json:"max_candidates"`
}

func (s *Server) postPipelineCheck(w http.ResponseWriter, r *http.Request) {
	var q pipelineCheckRequest
	if err := decodeBody(w, r, &q, true); err != nil {
		s.fail(w, r, err)
		return
	}
	rules := s.Pipeline
	if q.MinPassRate != nil {
		if err := domain.CheckConfidence(*q.MinPassRate); err != nil {
			s.fail(w, r, domain.Invalid("min_pass_rate", "must be between 0 and 1, got %v", *q.MinPassRate))
			return
		}
		rules.MinPassRate = *q.MinPassRate
	}
	if q.MaxCandidates != nil {
		if *q.MaxCandidates < 0 {
			s.fail(w, r, domain.Invalid("max_candidates", "must not be negative, got %d", *q.MaxCandidates))
			return
		}
		rules.MaxCandidates = *q.MaxCandidates
	}
	res, err := jobs.CheckPipeline(r.Context(), s.Ledger, rules)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
