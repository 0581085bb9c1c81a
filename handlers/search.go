package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

// searchResponse is the answer of GET /memory/search.
type searchResponse struct {
	Query      string                  `json:"query"`
	Hits       []projections.SearchHit `json:"hits"`
	Total      uint64                  `json:"total"`
	NextCursor *string                 `json:"next_cursor"`
	IndexedSeq uint64                  `json:"indexed_seq"`
}

func (s *Server) searchMemories(w http.ResponseWriter, r *http.Request) {
	q, after, err := s.searchQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if after > 0 {
		if err := s.waitIndexed(r.Context(), after); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	res, err := s.Search.Search(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var cursor *string
	if res.NextOffset > 0 {
		c := strconv.Itoa(res.NextOffset)
		cursor = &c
	}
	writeJSON(w, http.StatusOK, searchResponse{Query: q.Text, Hits: res.Hits, Total: res.Total, NextCursor: cursor, IndexedSeq: res.IndexedSeq})
}

// searchQuery reads a search's query parameters, and after_seq: the log position the index
// must have applied before the search runs (0 for none).
func (s *Server) searchQuery(v url.Values) (projections.SearchQuery, uint64, error) {
	q := projections.SearchQuery{Now: s.Now()}
	if _, ok := v["q"]; !ok {
		return q, 0, domain.Invalid("q", "is required: the words to search for")
	}
	q.Text = v.Get("q")
	var err error
	switch st := v.Get("status"); st {
	case "", string(projections.StatusAll):
		q.Status = domain.Status(st)
	default:
		if q.Status, err = domain.ParseStatus(st); err != nil {
			return q, 0, fmt.Errorf("%w (or all)", err)
		}
	}
	if t := v.Get("memory_type"); t != "" {
		if q.MemoryType, err = domain.ParseMemoryType(t); err != nil {
			return q, 0, err
		}
	}
	if q.Project, err = domain.NormalizeProject(v.Get("project")); err != nil {
		return q, 0, err
	}
	var tags []string
	for _, t := range v["domain_tags"] {
		tags = append(tags, strings.Split(t, ",")...)
	}
	if q.Tags, err = domain.NormalizeTags(tags, s.Rules.MaxTags, s.Rules.MaxTagLength); err != nil {
		return q, 0, err
	}
	if x := v.Get("include_expired"); x != "" {
		if q.IncludeExpired, err = strconv.ParseBool(x); err != nil {
			return q, 0, domain.Invalid("include_expired", "must be true or false, got %q", x)
		}
	}
	if l := v.Get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit < 1 || q.Limit > projections.MaxSearchLimit {
			return q, 0, domain.Invalid("limit", "must be a whole number from 1 to %d, got %q", projections.MaxSearchLimit, l)
		}
	}
	if c := v.Get("cursor"); c != "" {
		if q.Offset, err = strconv.Atoi(c); err != nil || q.Offset < 1 || q.Offset > projections.MaxSearchOffset {
			return q, 0, domain.Invalid("cursor", "%q is not a cursor from next_cursor (searches page at most %d hits deep)", c, projections.MaxSearchOffset)
		}
	}
	var after uint64
	if a := v.Get("after_seq"); a != "" {
		if after, err = strconv.ParseUint(a, 10, 64); err != nil {
			return q, 0, domain.Invalid("after_seq", "must be a log position (a write's seq), got %q", a)
		}
	}
	return q, after, nil
}

// waitIndexed waits until the search index has applied the event at seq.
func (s *Server) waitIndexed(ctx context.Context, seq uint64) error {
	err := projections.WaitApplied(ctx, s.Search, seq, s.Ledger.Timeout())
	var behind *projections.BehindError
	if errors.As(err, &behind) {
		return fmt.Errorf("%w: the search index has not applied log position %d within %s (it is at %d; see /health)",
			ledger.ErrNotVisible, seq, s.Ledger.Timeout(), behind.At)
	}
	return err
}
