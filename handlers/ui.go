package handlers

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/auth"
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/projections"
)

//go:embed ui/templates ui/static
var uiFiles embed.FS

// ActorTriage is the actor of decisions taken in the review queue.
const ActorTriage = "human-triage"

// reviewLimit bounds the review queue a page shows.
const reviewLimit = 500

// timeLayout is how the pages show a time.
const timeLayout = "2006-01-02 15:04:05 UTC"

var uiFuncs = template.FuncMap{
	"fmtTime": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format(timeLayout)
		case *time.Time:
			if v != nil {
				return v.UTC().Format(timeLayout)
			}
		case string:
			if p, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return p.UTC().Format(timeLayout)
			}
			return v
		}
		return ""
	},
	"plural": plural,
	// snippet shows a search hit's snippet, which the index has HTML-escaped but for the
	// <mark> elements around the matches.
	"snippet": func(s string) template.HTML { return template.HTML(s) },
	// searchbox is the search form's data: where it searches (the search page, with a status
	// choice, or the review queue), the query and the status chosen.
	"searchbox": func(action, query, status string) map[string]any {
		box := map[string]any{"Action": action, "Query": query, "Status": status,
			"Placeholder": "search memories: words, \"a phrase\", prefix*"}
		if action == "/ui/search" {
			box["Statuses"] = domain.Statuses
		} else {
			box["Placeholder"] = "search the candidates"
		}
		return box
	},
}

// pages are the UI's templates, each page with the layout.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, p := range []string{"dashboard", "review", "memory", "search", "revert", "error"} {
		out[p] = template.Must(template.New(p).Funcs(uiFuncs).ParseFS(uiFiles,
			"ui/templates/layout.html", "ui/templates/"+p+".html"))
	}
	return out
}()

// page is what every page template gets.
type page struct {
	Title, Nav, Flash, Version string
	Data                       any
	Statuses                   []domain.Status
	Types                      []domain.MemoryType
	Severities                 []domain.Severity
	Checks                     []string
	LastNightly                *projections.NightlyRun
	// Principal and Role are who is signed in (empty without authentication, when every
	// role's pages are offered).
	Principal string
	Role      domain.Role
}

// May reports whether the signed-in role may use the route with ServeMux pattern p, as the
// route table says: a page offers only the links and buttons its reader may use (the
// server refuses the others all the same).
func (p page) May(pattern string) bool {
	need, public := RouteRole(pattern)
	return public || p.Role.Allows(need)
}

// flashPattern is the only message a page shows from its address: what the review queue's
// redirect says, so that a link cannot put words of its own on the page.
var flashPattern = regexp.MustCompile(`^[0-9a-zA-Z_-]{1,128}: (promoted|rejected)$`)

func flashOf(r *http.Request) string {
	if f := r.URL.Query().Get("flash"); flashPattern.MatchString(f) {
		return f
	}
	return ""
}

// uiFail answers err as a page a person can read, with the same status the API would give.
func (s *Server) uiFail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status == http.StatusInternalServerError {
		s.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		err = fmt.Errorf("internal error; see the server log")
	}
	w.WriteHeader(status)
	s.render(w, r, "error", page{Title: http.StatusText(status), Data: struct {
		Status int
		Title  string
		Detail string
	}{status, http.StatusText(status), err.Error()}})
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	p.Version, p.Statuses, p.Types, p.Severities, p.Checks = s.Version, domain.Statuses, domain.MemoryTypes, domain.Severities, domain.IntegrityChecks
	if p.Flash == "" {
		p.Flash = flashOf(r)
	}
	p.Role = domain.RoleAdmin // without authentication every role's pages are offered
	if c, ok := auth.CallerFrom(r.Context()); ok {
		p.Principal, p.Role = c.Principal, c.Role
	} else if s.Auth != nil {
		p.Role = ""
	}
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	buf.WriteTo(w)
}

// routeUI adds the web pages to mux.
func (s *Server) routeUI(mux *http.ServeMux) {
	static, _ := fs.Sub(uiFiles, "ui/static")
	mux.HandleFunc("GET /ui/static/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if st, err := fs.Stat(static, name); err != nil || st.IsDir() {
			s.problem(w, r, http.StatusNotFound, "no such asset: "+name, "")
			return
		}
		http.ServeFileFS(w, r, static, name)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	mux.HandleFunc("GET /ui/{$}", s.uiDashboard)
	mux.HandleFunc("GET /ui/review", s.uiReview)
	mux.HandleFunc("GET /ui/search", s.uiSearch)
	mux.HandleFunc("POST /ui/review/{id}", s.uiDecide)
	mux.HandleFunc("GET /ui/memory/{id}", s.uiMemory)
	mux.HandleFunc("GET /ui/revert", s.uiRevert)
	mux.HandleFunc("POST /ui/revert", s.uiRevertApply)
}

func (s *Server) uiDashboard(w http.ResponseWriter, r *http.Request) {
	d, err := s.Dashboard(r.Context())
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	p := page{Title: "Dashboard", Nav: "dashboard", Data: d}
	if string(d.Ledger.LastNightly) != "null" {
		p.LastNightly = &projections.NightlyRun{}
		json.Unmarshal(d.Ledger.LastNightly, p.LastNightly)
	}
	s.render(w, r, "dashboard", p)
}

type reviewPage struct {
	Candidates          []domain.Memory
	Projects            []string
	Project, MemoryType string
	// Query, when set, is the search the candidates were found by, best match first.
	Query  string
	Return string
}

func (s *Server) uiReview(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := projections.MemoryFilter{Status: domain.StatusCandidate}
	var err error
	if v := q.Get("memory_type"); v != "" {
		if f.MemoryType, err = domain.ParseMemoryType(v); err != nil {
			s.uiFail(w, r, err)
			return
		}
	}
	if f.Project, err = s.Ledger.Project(q.Get("project")); err != nil {
		s.uiFail(w, r, err)
		return
	}
	data := reviewPage{Project: f.Project, MemoryType: string(f.MemoryType), Query: strings.TrimSpace(q.Get("q")), Return: r.URL.RequestURI()}
	if data.Query != "" {
		data.Candidates, err = s.searchCandidates(r, data.Query, f)
	} else {
		f.Limit = reviewLimit
		data.Candidates, err = s.DB.FirstMemories(f)
	}
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	if len(data.Candidates) > reviewLimit {
		data.Candidates = data.Candidates[:reviewLimit]
	}
	counts, err := s.DB.MemoryCounts()
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	for p := range counts.ByProject {
		if p != "" {
			data.Projects = append(data.Projects, p)
		}
	}
	slices.Sort(data.Projects)
	s.render(w, r, "review", page{Title: "Review queue", Nav: "review", Data: data})
}

// uiDecide takes a review decision posted by a form (the page without JavaScript) and sends
// the browser back to the queue.
func (s *Server) uiDecide(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		s.uiFail(w, r, domain.Invalid("body", "unreadable form: %v", err))
		return
	}
	id := r.PathValue("id")
	var cmd domain.Command
	var done string
	switch r.PostForm.Get("action") {
	case "promote":
		cmd, done = domain.PromoteMemory{}, "promoted"
	case "reject":
		cmd, done = domain.RejectMemory{}, "rejected"
	default:
		s.uiFail(w, r, domain.Invalid("action", "must be promote or reject"))
		return
	}
	c, ok := auth.CallerFrom(r.Context())
	if !ok {
		c = ledger.Caller{Actor: ActorTriage}
	}
	_, err := s.Ledger.ChangeMemory(r.Context(), c, strings.TrimSpace(r.PostForm.Get("reason")), id, cmd, ledger.MemoryOptions{})
	var fe *domain.FieldError
	if errors.As(err, &fe) && fe.Field == "note" {
		// The form calls the note the reason.
		err = domain.Invalid("reason", "%s", fe.Reason)
	}
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	back := r.PostForm.Get("return")
	if !strings.HasPrefix(back, "/ui/review") {
		back = "/ui/review"
	}
	u, _ := url.Parse(back)
	q := u.Query()
	q.Set("flash", fmt.Sprintf("%s: %s", id, done))
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

type timelineEntry struct {
	Seq       uint64
	Action    domain.Action
	Actor     string
	Principal string
	Note      string
	Timestamp time.Time
	Changes   []fieldChange
	Selected  bool
	// Undoes, on a reverted entry, are the entries it undid; UndoneBy is the entry that
	// reverted this one.
	Undoes   []uint64
	UndoneBy uint64
}

type fieldChange struct{ Field, Before, After string }

type memoryPage struct {
	Current, Shown domain.Memory
	AsOf           uint64
	Entries        []timelineEntry
}

// diffFields are the memory's fields a timeline entry compares, in display order.
var diffFields = []string{"status", "memory_type", "content", "project", "confidence", "reference_count",
	"last_referenced_at", "domain_tags", "valid_until", "source_chunk_id", "superseded_by"}

func (s *Server) uiMemory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	data, err := s.DB.GetMemory(id)
	if err == nil && data == nil {
		err = fmt.Errorf("memory %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	var p memoryPage
	if err := json.Unmarshal(data, &p.Current); err != nil {
		s.uiFail(w, r, err)
		return
	}
	p.Shown = p.Current
	if v := r.URL.Query().Get("at"); v != "" {
		if p.AsOf, err = strconv.ParseUint(v, 10, 64); err != nil || p.AsOf == 0 {
			s.uiFail(w, r, domain.Invalid("at", "%q is not an entry's sequence number", v))
			return
		}
	}
	entries, err := s.DB.MemoryAudit(id)
	if err != nil {
		s.uiFail(w, r, err)
		return
	}
	found := p.AsOf == 0
	seqOf := map[string]int{} // event id → index in p.Entries
	for _, raw := range entries {
		var e projections.AuditEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			s.uiFail(w, r, err)
			return
		}
		te := timelineEntry{Seq: e.Seq, Action: e.Action, Actor: e.Actor, Principal: e.Principal, Note: e.Note, Timestamp: e.Timestamp,
			Changes: changes(e.Before, e.After), Selected: e.Seq == p.AsOf}
		for _, id := range e.Undoes {
			if i, ok := seqOf[id]; ok {
				te.Undoes = append(te.Undoes, p.Entries[i].Seq)
				p.Entries[i].UndoneBy = e.Seq
			}
		}
		seqOf[e.EventID] = len(p.Entries)
		found = found || e.Seq == p.AsOf
		p.Entries = append(p.Entries, te)
	}
	if !found {
		s.uiFail(w, r, fmt.Errorf("memory %s has no history entry %d: %w", id, p.AsOf, domain.ErrNotFound))
		return
	}
	if p.AsOf != 0 {
		// The same as-of read as GET /memory/{id}?as_of=.
		shown, err := s.DB.MemoryAsOf(id, p.AsOf)
		if err == nil && shown == nil {
			err = fmt.Errorf("memory %s as of %d: %w", id, p.AsOf, domain.ErrNotFound)
		}
		if err == nil {
			p.Shown = domain.Memory{}
			err = json.Unmarshal(shown, &p.Shown)
		}
		if err != nil {
			s.uiFail(w, r, err)
			return
		}
	}
	if p.AsOf == 0 && len(p.Entries) > 0 {
		p.Entries[len(p.Entries)-1].Selected = true
	}
	s.render(w, r, "memory", page{Title: "Memory " + id, Data: p})
}

// changes lists the fields that differ between two memory snapshots.
func changes(before, after json.RawMessage) []fieldChange {
	var b, a map[string]any
	json.Unmarshal(before, &b)
	json.Unmarshal(after, &a)
	var out []fieldChange
	for _, f := range diffFields {
		bv, av := show(b[f]), show(a[f])
		if bv != av {
			out = append(out, fieldChange{Field: f, Before: bv, After: av})
		}
	}
	return out
}

// show formats a snapshot's field for a person.
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case string:
		if x == "" {
			return "—"
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t.UTC().Format(timeLayout)
		}
		return x
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = fmt.Sprint(p)
		}
		if len(parts) == 0 {
			return "—"
		}
		return strings.Join(parts, ", ")
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
