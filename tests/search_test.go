package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
)

// searchPage is an answer of GET /memory/search.
type searchPage struct {
	Query string `json:"query"`
	Hits  []struct {
		Memory  domain.Memory `json:"memory"`
		Score   float64       `json:"score"`
		Snippet string        `json:"snippet"`
	} `json:"hits"`
	Total      uint64  `json:"total"`
	NextCursor *string `json:"next_cursor"`
	IndexedSeq uint64  `json:"indexed_seq"`
}

// search runs GET /memory/search with q, after the index has applied every write so far.
func (l *ledger) search(q url.Values) searchPage {
	l.t.Helper()
	q = cloneValues(q)
	if !q.Has("after_seq") {
		q.Set("after_seq", fmt.Sprint(l.lastSeq()))
	}
	var p searchPage
	l.expect(http.StatusOK, "GET", "/memory/search?"+q.Encode(), nil).Decode(l.t, &p)
	return p
}

func (p searchPage) ids() []string {
	out := []string{}
	for _, h := range p.Hits {
		out = append(out, h.Memory.ID)
	}
	return out
}

func TestSearchOverHTTP(t *testing.T) {
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	clk := newClock(now)
	l := startLedger(t, withClock(clk.Now))
	l.expect(http.StatusCreated, "POST", "/projects", map[string]any{"id": "p-laser", "aliases": []string{"cutter"}})

	best := l.mem(map[string]any{"memory_type": "knowledge", "content": "The laser cutter lens must be cleaned before every laser job", "project": "p-laser", "domain_tags": []string{"maintenance"}})
	other := l.mem(map[string]any{"memory_type": "preference", "content": "Prefers the old laser settings; many other words make this one longer than the first", "domain_tags": []string{"settings"}})
	candidate := l.mem(map[string]any{"memory_type": "knowledge", "content": "Maybe the laser needs a new tube", "status": "candidate"})
	expiring := l.mem(map[string]any{"memory_type": "episodic", "content": "Laser workshop booked this week", "valid_until": now.Add(time.Hour).Format(time.RFC3339)})
	replaced := l.mem(map[string]any{"memory_type": "knowledge", "content": "The laser lens is cleaned monthly"})
	l.act("POST", "/memory/"+replaced.ID+"/supersede", map[string]any{"superseded_by": best.ID, "reason": "weekly now"})
	wrong := l.mem(map[string]any{"memory_type": "knowledge", "content": "The laser is blue"})
	l.act("POST", "/memory/"+wrong.ID+"/invalidate", map[string]any{"reason": "it is red"})

	t.Run("the route is not taken for a memory id", func(t *testing.T) {
		p := l.search(url.Values{"q": {"laser"}})
		require.Equal(t, "laser", p.Query)
		require.ElementsMatch(t, []string{best.ID, other.ID, expiring.ID}, p.ids(), "active, not expired")
		require.Equal(t, uint64(3), p.Total)
		p = l.search(url.Values{"q": {"laser lens"}})
		require.Equal(t, best.ID, p.Hits[0].Memory.ID, "the most relevant first")
		require.GreaterOrEqual(t, p.IndexedSeq, best.Seq)
		require.Contains(t, p.Hits[0].Snippet, "<mark>laser</mark>")
		require.Equal(t, best, p.Hits[0].Memory, "the hit is the memory as GET /memory/{id} serves it")
	})
	t.Run("filters", func(t *testing.T) {
		require.Equal(t, []string{candidate.ID}, l.search(url.Values{"q": {"laser"}, "status": {"candidate"}}).ids())
		require.Equal(t, []string{replaced.ID}, l.search(url.Values{"q": {"laser"}, "status": {"superseded"}}).ids())
		require.Equal(t, []string{wrong.ID}, l.search(url.Values{"q": {"laser"}, "status": {"invalid"}}).ids())
		require.Len(t, l.search(url.Values{"q": {"laser"}, "status": {"all"}}).ids(), 6)
		require.Equal(t, []string{other.ID}, l.search(url.Values{"q": {"laser"}, "memory_type": {"preference"}}).ids())
		require.Equal(t, []string{best.ID}, l.search(url.Values{"q": {"laser"}, "project": {"cutter"}}).ids(), "an alias")
		require.Equal(t, []string{best.ID}, l.search(url.Values{"q": {"laser"}, "project": {"p-laser"}}).ids())
		require.Equal(t, []string{other.ID}, l.search(url.Values{"q": {"laser"}, "domain_tags": {"Settings"}}).ids(), "tags are normalised")
		require.Empty(t, l.search(url.Values{"q": {"laser"}, "domain_tags": {"settings,maintenance"}}).ids(), "every tag given must be there")
	})
	t.Run("phrase and prefix", func(t *testing.T) {
		require.Equal(t, []string{best.ID}, l.search(url.Values{"q": {`"laser cutter lens"`}}).ids())
		require.Equal(t, []string{expiring.ID}, l.search(url.Values{"q": {"works*"}}).ids())
	})
	t.Run("paging", func(t *testing.T) {
		all := l.search(url.Values{"q": {"laser"}}).ids()
		var paged []string
		q := url.Values{"q": {"laser"}, "limit": {"1"}}
		for range 10 {
			p := l.search(q)
			paged = append(paged, p.ids()...)
			if p.NextCursor == nil {
				break
			}
			q.Set("cursor", *p.NextCursor)
		}
		require.Equal(t, all, paged)
	})
	t.Run("an update is found by its new words only", func(t *testing.T) {
		l.act("PUT", "/memory/"+other.ID, map[string]any{"content": "Prefers the new engraving settings"})
		require.NotContains(t, l.search(url.Values{"q": {"laser"}}).ids(), other.ID)
		require.Equal(t, []string{other.ID}, l.search(url.Values{"q": {"engraving"}}).ids())
	})
	t.Run("expiry follows the clock", func(t *testing.T) {
		require.Contains(t, l.search(url.Values{"q": {"workshop"}}).ids(), expiring.ID)
		clk.Set(now.Add(2 * time.Hour))
		require.Empty(t, l.search(url.Values{"q": {"workshop"}}).ids())
		require.Equal(t, []string{expiring.ID}, l.search(url.Values{"q": {"workshop"}, "include_expired": {"true"}}).ids())
		clk.Set(now)
	})
	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct{ query, field string }{
			{"", "q"}, {"q=", "q"}, {"q=-laser", "q"}, {"q=%22open", "q"}, {"q=l*", "q"},
			{"q=laser&status=gone", "status"}, {"q=laser&memory_type=x", "memory_type"},
			{"q=laser&project=Not%20Kebab", "project"}, {"q=laser&limit=0", "limit"}, {"q=laser&limit=101", "limit"},
			{"q=laser&cursor=x", "cursor"}, {"q=laser&include_expired=maybe", "include_expired"},
			{"q=laser&after_seq=-1", "after_seq"}, {"q=laser&sort=new", "sort"},
		} {
			requireProblem(t, l.do("GET", "/memory/search?"+c.query, nil), http.StatusBadRequest, c.field)
		}
	})
	t.Run("a search waiting for a position the log has not reached is a 503", func(t *testing.T) {
		l.Main.Ledger.WaitTimeout = 200 * time.Millisecond
		defer func() { l.Main.Ledger.WaitTimeout = 10 * time.Second }()
		requireProblem(t, l.do("GET", fmt.Sprintf("/memory/search?q=laser&after_seq=%d", l.lastSeq()+100), nil),
			http.StatusServiceUnavailable, "", "search index")
	})
	t.Run("health tells the index's position", func(t *testing.T) {
		var h struct {
			LastSeq uint64 `json:"last_seq"`
			Search  struct {
				IndexedSeq uint64 `json:"indexed_seq"`
				Lag        uint64 `json:"lag"`
			} `json:"search"`
		}
		l.search(url.Values{"q": {"laser"}})
		l.expect(http.StatusOK, "GET", "/health", nil).Decode(t, &h)
		require.Equal(t, h.LastSeq, h.Search.IndexedSeq+h.Search.Lag)
		require.NotZero(t, h.Search.IndexedSeq)
	})

	before := map[string]string{}
	queries := []url.Values{{"q": {"laser"}}, {"q": {"laser"}, "status": {"all"}}, {"q": {"engraving settings"}}, {"q": {"laser"}, "project": {"cutter"}}}
	for _, q := range queries {
		data, err := json.Marshal(l.search(q))
		require.NoError(t, err)
		before[q.Encode()] = string(data)
	}
	dir := l.cfg.Data
	l.stop()
	t.Run("verify checks the index; a rebuild answers the same searches", func(t *testing.T) {
		code, out, errOut := runApp(t, "verify", "--data", dir)
		require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
		require.Contains(t, out, "the live search index equals a rebuild")
		// The command builds the search index too (--search), or sets it aside for serve to
		// build again in the background, in bulk; either answers the same.
		for _, args := range [][]string{{"rebuild", "--data", dir, "--search"}, {"rebuild", "--data", dir}} {
			code, out, errOut = runApp(t, args...)
			require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
			if len(args) == 4 {
				require.Contains(t, out, "search index done")
			} else {
				require.Contains(t, out, "search index set aside")
			}
			l.start()
			last := l.lastSeq()
			eventually(t, func() bool {
				var h struct {
					Search struct {
						IndexedSeq uint64 `json:"indexed_seq"`
					} `json:"search"`
				}
				l.expect(http.StatusOK, "GET", "/health", nil).Decode(t, &h)
				return h.Search.IndexedSeq >= last
			}, "the index has caught up with the log")
			for _, q := range queries {
				data, err := json.Marshal(l.search(q))
				require.NoError(t, err)
				require.JSONEq(t, before[q.Encode()], string(data), "q %s", q.Encode())
			}
			l.stop()
		}
		l.start()
	})
}
