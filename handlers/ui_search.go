package handlers

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/projections"
)

// searchPageData is what the search page shows.
type searchPageData struct {
	Query, Status, MemoryType, Project string
	Hits                               []searchPageHit
	Total                              uint64
	// Next is the address of the next page, "" on the last.
	Next       string
	IndexedSeq uint64
}

type searchPageHit struct {
	Memory  domain.Memory
	Snippet string
}

// uiSearch is the search page: the same search as GET /memory/search, as a page.
func (s *Server) uiSearch(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	data := searchPageData{Query: v.Get("q"), Status: v.Get("status"), MemoryType: v.Get("memory_type"), Project: v.Get("project")}
	if data.Query == "" {
		s.render(w, r, "search", page{Title: "Search", Nav: "search", Data: data})
		return
	}
	q, _, err := s.searchQuery(v)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	res, err := s.Search.Search(r.Context(), q)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	data.Total, data.IndexedSeq = res.Total, res.IndexedSeq
	for _, h := range res.Hits {
		var m domain.Memory
		if err := json.Unmarshal(h.Memory, &m); err != nil {
			s.uiFail(w, r, err)
			return
		}
		data.Hits = append(data.Hits, searchPageHit{Memory: m, Snippet: h.Snippet})
	}
	if res.NextOffset > 0 {
		next := url.Values{}
		for k, vs := range v {
			next[k] = vs
		}
		next.Set("cursor", strconv.Itoa(res.NextOffset))
		data.Next = "/ui/search?" + next.Encode()
	}
	s.render(w, r, "search", page{Title: "Search: " + data.Query, Nav: "search", Data: data})
}

// searchCandidates are the candidates of the review queue that a search finds, best first.
func (s *Server) searchCandidates(r *http.Request, text string, f projections.MemoryFilter) ([]domain.Memory, error) {
	res, err := s.Search.Search(r.Context(), projections.SearchQuery{Text: text, Status: domain.StatusCandidate,
		MemoryType: f.MemoryType, Project: f.Project, Now: s.Now(), IncludeExpired: true, Limit: projections.MaxSearchLimit})
	if err != nil {
		return nil, err
	}
	out := make([]domain.Memory, 0, len(res.Hits))
	for _, h := range res.Hits {
		var m domain.Memory
		if err := json.Unmarshal(h.Memory, &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
