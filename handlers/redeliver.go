package handlers

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/sinks"
	"github.com/memledger/memledger/handlers/subscriptions"
)

type redeliverRequest struct {
	Since string `json:"since"`
	Sink  string `json:"sink"`
	Note  string `json:"note"`
}

// redeliverAlerts moves an alert sink back (or on) to a position or a time: the alerts from
// there on are delivered again, in order.
func (s *Server) redeliverAlerts(w http.ResponseWriter, r *http.Request) {
	var q redeliverRequest
	if err := decodeBody(w, r, &q, false); err != nil {
		s.fail(w, r, err)
		return
	}
	if q.Sink == "" {
		q.Sink = "webhook"
	}
	var names []string
	var runner *sinks.Runner
	for _, sr := range s.Sinks {
		names = append(names, sr.Sink.Name())
		if sr.Sink.Name() == q.Sink {
			runner = sr
		}
	}
	if runner == nil {
		slices.Sort(names)
		s.fail(w, r, domain.Invalid("sink", "no alert sink %q runs here; the sinks are %s", q.Sink, strings.Join(names, ", ")))
		return
	}
	var start subscriptions.Start
	if n, err := strconv.ParseUint(strings.TrimSpace(q.Since), 10, 64); err == nil && n > 0 {
		start.Seq = n
	} else if q.Since == "" {
		s.fail(w, r, domain.Invalid("since", "is required: a log sequence, an RFC 3339 time or a duration back from now (1h)"))
		return
	} else if start.Time, err = parseSince(q.Since, s.Now()); err != nil {
		s.fail(w, r, domain.Invalid("since", "%q is neither a log sequence (from 1), an RFC 3339 time nor a duration like 1h", q.Since))
		return
	}
	c, err := plainCaller(r, ActorAlerts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := runner.Redeliver(r.Context(), start); err != nil {
		s.fail(w, r, err)
		return
	}
	s.Logger.Info("alerts redelivered", "sink", q.Sink, "since", q.Since, "actor", c.Actor, "note", q.Note)
	st := runner.Status()
	writeJSON(w, http.StatusOK, map[string]any{"sink": q.Sink, "since": q.Since, "pending": st.Lag})
}
