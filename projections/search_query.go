package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"
	"github.com/memledger/memledger/domain"
)

// Search limits.
const (
	DefaultSearchLimit = 20
	MaxSearchLimit     = 100
	// MaxSearchOffset is the furthest a search pages: deeper pages cost memory for every hit
	// before them.
	MaxSearchOffset = 10000
	// MaxSearchQuery is the longest query text, in characters.
	MaxSearchQuery = 500
	// minPrefix is the shortest prefix of a prefix query (lase*).
	minPrefix = 2
	// snippetLength is the longest snippet, in characters of the content.
	snippetLength = 200
)

// StatusAll is the status filter of a search over memories of every status.
const StatusAll domain.Status = "all"

// SearchQuery is a full-text search over memories.
type SearchQuery struct {
	// Text is the query: words (a memory matching more of them, and rarer ones, ranks
	// higher), "quoted phrases", prefixes (lase*); a leading + requires a term, a leading -
	// excludes it. Words are matched in the content and the tags.
	Text string
	// Status selects one status; empty means active, StatusAll every status.
	Status     domain.Status
	MemoryType domain.MemoryType
	// Project is a project id or alias; empty matches every project.
	Project string
	// Tags are tags a memory must all have.
	Tags []string
	// Now is the time validity is judged at: memories whose valid_until is at or before it
	// are left out, unless IncludeExpired is set.
	Now            time.Time
	IncludeExpired bool
	// Limit is the most hits returned (DefaultSearchLimit when 0); Offset skips that many.
	Limit  int
	Offset int
}

// SearchHit is one memory a search found.
type SearchHit struct {
	// Memory is the memory's JSON as the index holds it (as of IndexedSeq).
	Memory json.RawMessage `json:"memory"`
	Score  float64         `json:"score"`
	// Snippet is a piece of the content around the matches, HTML-escaped, each match in
	// <mark></mark>.
	Snippet string `json:"snippet"`
}

// SearchResult is a page of a search's hits, best first.
type SearchResult struct {
	Hits []SearchHit `json:"hits"`
	// Total is how many memories match.
	Total uint64 `json:"total"`
	// NextOffset is the Offset of the next page, 0 when this is the last.
	NextOffset int `json:"-"`
	// IndexedSeq is the log position the index had applied: writes after it are not seen.
	IndexedSeq uint64 `json:"indexed_seq"`
}

// Search runs q. A query that is empty, too long or malformed is a domain.ErrInvalid naming the
// field (q, status, limit, ...); a project alias is resolved with the index's own copy of the
// projects.
func (s *Search) Search(ctx context.Context, q SearchQuery) (SearchResult, error) {
	text, err := parseSearchText(q.Text)
	if err != nil {
		return SearchResult{}, err
	}
	if q.Limit == 0 {
		q.Limit = DefaultSearchLimit
	}
	if q.Limit < 1 || q.Limit > MaxSearchLimit {
		return SearchResult{}, domain.Invalid("limit", "must be from 1 to %d, got %d", MaxSearchLimit, q.Limit)
	}
	if q.Offset < 0 || q.Offset > MaxSearchOffset {
		return SearchResult{}, domain.Invalid("cursor", "must be from 0 to %d, got %d", MaxSearchOffset, q.Offset)
	}
	applied := s.Applied()
	filter, err := s.filter(q)
	if err != nil {
		return SearchResult{}, err
	}
	bq := bleve.NewBooleanQuery()
	bq.AddFilter(filter)
	musts, shoulds := 0, 0
	for _, c := range text {
		switch c.occur {
		case '+':
			bq.AddMust(c.q)
			musts++
		case '-':
			bq.AddMustNot(c.q)
		default:
			bq.AddShould(c.q)
			shoulds++
		}
	}
	if shoulds > 0 && musts == 0 {
		bq.SetMinShould(1)
	}
	req := bleve.NewSearchRequestOptions(bq, q.Limit, q.Offset, false)
	req.Fields = []string{fieldMemory, fieldContent}
	req.Highlight = bleve.NewHighlightWithStyle("html")
	req.Highlight.AddField(fieldContent)
	req.SortBy([]string{"-_score", "_id"})
	res, err := s.index.SearchInContext(ctx, req)
	if err != nil {
		return SearchResult{}, fmt.Errorf("search: %w", err)
	}
	out := SearchResult{Hits: make([]SearchHit, 0, len(res.Hits)), Total: res.Total, IndexedSeq: applied}
	for _, h := range res.Hits {
		mem, _ := h.Fields[fieldMemory].(string)
		content, _ := h.Fields[fieldContent].(string)
		snippet := ""
		if fr := h.Fragments[fieldContent]; len(fr) > 0 {
			snippet = fr[0]
		} else {
			snippet = html.EscapeString(cut(content, snippetLength))
		}
		out.Hits = append(out.Hits, SearchHit{Memory: json.RawMessage(mem), Score: h.Score, Snippet: snippet})
	}
	if next := q.Offset + len(res.Hits); uint64(next) < res.Total && len(res.Hits) > 0 {
		out.NextOffset = next
	}
	return out, nil
}

// filter is the part of a search that selects memories without ranking them.
func (s *Search) filter(q SearchQuery) (query.Query, error) {
	var parts []query.Query
	term := func(field, value string) query.Query {
		t := bleve.NewTermQuery(value)
		t.SetField(field)
		return t
	}
	switch q.Status {
	case "":
		parts = append(parts, term(fieldStatus, string(domain.StatusActive)))
	case StatusAll:
	default:
		if _, err := domain.ParseStatus(string(q.Status)); err != nil {
			return nil, err
		}
		parts = append(parts, term(fieldStatus, string(q.Status)))
	}
	if q.MemoryType != "" {
		if _, err := domain.ParseMemoryType(string(q.MemoryType)); err != nil {
			return nil, err
		}
		parts = append(parts, term(fieldType, string(q.MemoryType)))
	}
	if q.Project != "" {
		names := s.projectNames(q.Project)
		either := make([]query.Query, len(names))
		for i, n := range names {
			either[i] = term(fieldProject, n)
		}
		parts = append(parts, bleve.NewDisjunctionQuery(either...))
	}
	for _, tag := range q.Tags {
		parts = append(parts, term(fieldTag, tag))
	}
	if !q.IncludeExpired {
		now := expiresAt(q.Now)
		incl := false
		r := bleve.NewNumericRangeInclusiveQuery(&now, nil, &incl, nil)
		r.SetField(fieldExpires)
		parts = append(parts, r)
	}
	if len(parts) == 0 {
		return bleve.NewMatchAllQuery(), nil
	}
	return bleve.NewConjunctionQuery(parts...), nil
}

// projectNames are the names memories of project name may carry: its canonical id and every
// alias, so that a memory recorded under an alias before the alias was registered is found.
func (s *Search) projectNames(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.projects.Resolve(name)
	p, ok := s.projects[id]
	if !ok {
		return []string{name}
	}
	return append([]string{p.ID}, p.Aliases...)
}

// ProjectID resolves a project name (an id or an alias) with the index's copy of the projects.
func (s *Search) ProjectID(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.projects.Resolve(name)
}

// clause is one part of a query's text.
type clause struct {
	occur byte // '+' must, '-' must not, 0 should
	q     query.Query
}

// parseSearchText reads a query's text: words, "phrases" and prefixes (word*), each with an
// optional leading + or -. Anything else in a word (?, :, /) is plain text to the analyser.
func parseSearchText(text string) ([]clause, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, domain.Invalid("q", "is empty; give words to search for")
	}
	if n := utf8.RuneCountInString(text); n > MaxSearchQuery {
		return nil, domain.Invalid("q", "is %d characters long; the maximum is %d", n, MaxSearchQuery)
	}
	for _, r := range text {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return nil, domain.Invalid("q", "holds a control character (%U)", r)
		}
	}
	var out []clause
	positive := false
	rest := text
	for {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		if rest == "" {
			break
		}
		var occur byte
		if rest[0] == '+' || rest[0] == '-' {
			occur, rest = rest[0], rest[1:]
		}
		var q query.Query
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, domain.Invalid("q", "has a phrase without its closing quote: %s", rest)
			}
			phrase := rest[1 : end+1]
			rest = rest[end+2:]
			if strings.TrimSpace(phrase) == "" {
				continue
			}
			q = textQuery(func(field string) query.Query {
				p := bleve.NewMatchPhraseQuery(phrase)
				p.SetField(field)
				return p
			})
		} else {
			end := strings.IndexFunc(rest, unicode.IsSpace)
			if end < 0 {
				end = len(rest)
			}
			word := rest[:end]
			rest = rest[end:]
			if prefix, ok := strings.CutSuffix(word, "*"); ok && prefix != "" && !strings.ContainsAny(prefix, "*") {
				prefix = strings.ToLower(prefix)
				if utf8.RuneCountInString(prefix) < minPrefix {
					return nil, domain.Invalid("q", "prefix %q is too short: give at least %d characters before the *", word, minPrefix)
				}
				q = textQuery(func(field string) query.Query {
					p := bleve.NewPrefixQuery(prefix)
					p.SetField(field)
					return p
				})
			} else {
				if !strings.ContainsFunc(word, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
					continue
				}
				q = textQuery(func(field string) query.Query {
					m := bleve.NewMatchQuery(word)
					m.SetField(field)
					return m
				})
			}
		}
		if occur != '-' {
			positive = true
		}
		out = append(out, clause{occur: occur, q: q})
	}
	if !positive {
		return nil, domain.Invalid("q", "has nothing to look for (only excluded terms, or no words)")
	}
	return out, nil
}

// textQuery is the query made by mk for the content or the tags.
func textQuery(mk func(field string) query.Query) query.Query {
	return bleve.NewDisjunctionQuery(mk(fieldContent), mk(fieldTags))
}

// cut returns the first n characters of s, with an ellipsis when it is longer.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
