package tests

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/handlers"
)

// The end-to-end tests' HTTP traffic to the ledgers they start goes through apiCheck (TestMain
// puts it in http.DefaultTransport), which validates every request and every answer against
// the OpenAPI document the service serves (handlers/openapi.json):
//   - a route the document does not describe fails the request, unless the server refused it
//     too (404 or 405);
//   - a request the document refuses must be refused by the server (a 4xx problem);
//   - every answer must match the document (status, content type, body).
// A failure is returned as the request's error, so the test that sent it fails, naming it.

// baseTransport is the transport the checked requests go out on.
var baseTransport = http.DefaultTransport.(*http.Transport)

func TestMain(m *testing.M) {
	for _, t := range []string{"text/html", "text/css", "text/javascript"} {
		openapi3filter.RegisterBodyDecoder(t, textBody)
	}
	// The check sees each request as the test wrote it, then the token transport adds the
	// admin token (unless the test sends its own or asks for none).
	check, err := newAPICheck(handlers.OpenAPI, tokenTransport{next: baseTransport})
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapi document:", err)
		os.Exit(1)
	}
	http.DefaultTransport = check
	code := m.Run()
	if code == 0 && check.checked() == 0 && !strings.Contains(strings.Join(os.Args, " "), "-test.run") {
		fmt.Fprintln(os.Stderr, "openapi: no request was checked against the document")
		code = 1
	}
	os.Exit(code)
}

// textBody decodes a text answer (a page, a stylesheet, a script) as a string.
func textBody(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	return string(b), err
}

// apiCheck is an http.RoundTripper that validates the traffic to registered hosts against an
// OpenAPI document; other hosts' traffic (webhook receivers, say) passes as it is.
type apiCheck struct {
	next   http.RoundTripper
	doc    *openapi3.T
	router routers.Router

	mu    sync.Mutex
	hosts map[string]bool
	count int
}

func newAPICheck(data []byte, next http.RoundTripper) (*apiCheck, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		return nil, fmt.Errorf("the document is OpenAPI %s, not 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return &apiCheck{next: next, doc: doc, router: router, hosts: map[string]bool{}}, nil
}

// apiChecked registers the address of a ledger the tests started.
func apiChecked(addr string) { setAPIChecked(addr, true) }

// apiUnchecked forgets the address of a ledger that stopped: the port is free again, and a
// webhook receiver the kernel gives it next is not an API to check.
func apiUnchecked(addr string) { setAPIChecked(addr, false) }

func setAPIChecked(addr string, on bool) {
	if c, ok := http.DefaultTransport.(*apiCheck); ok {
		c.mu.Lock()
		if on {
			c.hosts[addr] = true
		} else {
			delete(c.hosts, addr)
		}
		c.mu.Unlock()
	}
}

func (c *apiCheck) checked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// streamTypes are answers whose body the check does not read: streams that do not end while
// the test reads them, and backups (multipart/mixed), which the test reads itself.
var streamTypes = []string{"application/x-ndjson", "text/event-stream", "multipart/mixed"}

func (c *apiCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	checked := c.hosts[req.URL.Host]
	if checked {
		c.count++
	}
	c.mu.Unlock()
	if !checked {
		return c.next.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	// The router matches on a copy that names the document's server.
	route, pathParams, routeErr := c.router.FindRoute(req)

	res, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	call := fmt.Sprintf("%s %s", req.Method, req.URL.RequestURI())
	if routeErr != nil {
		if res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed {
			return res, nil // refused by both
		}
		res.Body.Close()
		return nil, fmt.Errorf("openapi: %s is not in the document (handlers/openapi.json), yet the server answered %d: document the route", call, res.StatusCode)
	}
	in := &openapi3filter.RequestValidationInput{Request: cloneWithBody(req, body), PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	reqErr := openapi3filter.ValidateRequest(req.Context(), in)

	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	stream := slices.Contains(streamTypes, mt)
	var resBody []byte
	if !stream {
		if resBody, err = io.ReadAll(res.Body); err != nil {
			res.Body.Close()
			return nil, err
		}
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(resBody))
	}
	if reqErr != nil && (res.StatusCode < 400 || res.StatusCode >= 500) {
		return nil, fmt.Errorf("openapi: the document refuses the request %s (%v), yet the server answered %d: %s", call, reqErr, res.StatusCode, resBody)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Options: &openapi3filter.Options{ExcludeResponseBody: stream, IncludeResponseStatus: true}}
	out.SetBodyBytes(resBody)
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		return nil, fmt.Errorf("openapi: the answer %d to %s does not match the document: %v\nbody: %s", res.StatusCode, call, err, cut(resBody, 500))
	}
	return res, nil
}

func cloneWithBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return r
}

func cut(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// TestOpenAPIDocument: the served document is the repository's, valid OpenAPI 3.1, and it
// describes every route the handlers register (read from their source), and nothing else.
func TestOpenAPIDocument(t *testing.T) {
	l := startLedger(t)
	res := l.expect(http.StatusOK, "GET", "/openapi.json", nil)
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	require.Equal(t, handlers.OpenAPI, res.Body)
	check, err := newAPICheck(res.Body, baseTransport)
	require.NoError(t, err)
	require.Equal(t, "3.1.0", check.doc.OpenAPI)

	documented := map[string]bool{}
	for path, item := range check.doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	registered := registeredRoutes(t)
	require.NotEmpty(t, registered)
	var missing []string
	for _, r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
		delete(documented, r)
	}
	require.Empty(t, missing, "routes the handlers register and handlers/openapi.json does not describe")
	require.Empty(t, documented, "routes handlers/openapi.json describes and no handler registers")

	// Each operation describes exactly the query parameters its route takes (the route table
	// the server checks every request against).
	for op, pattern := range registeredPatterns(t) {
		method, path, _ := strings.Cut(op, " ")
		item := check.doc.Paths.Value(path)
		var described []string
		for _, p := range slices.Concat(item.Parameters, item.GetOperation(method).Parameters) {
			if p.Value.In == openapi3.ParameterInQuery {
				described = append(described, p.Value.Name)
			}
		}
		taken, checked := handlers.QueryParams(pattern)
		require.True(t, checked, "%s: the route's query is not checked", pattern)
		require.ElementsMatch(t, taken, described, "%s: the query parameters the route takes (handlers/routes.go) and those handlers/openapi.json describes", op)
	}
}

// TestUnknownQueryParameterRefused walks every route the handlers register, sending each an
// unknown query parameter: each refuses it with a 400 that names it (a problem, or the error
// page on the web pages) before doing anything else, whatever else the request holds.
func TestUnknownQueryParameterRefused(t *testing.T) {
	l := startLedger(t)
	before := l.lastSeq()
	paths := strings.NewReplacer("{id}", "no-such-id", "{file}", "app.css")
	for op, pattern := range registeredPatterns(t) {
		method, path, _ := strings.Cut(op, " ")
		taken, _ := handlers.QueryParams(pattern)
		q := url.Values{"no_such_param": {"1"}}
		for _, p := range taken {
			q.Set(p, "1") // a known parameter beside it changes nothing
		}
		res := l.do(method, paths.Replace(path)+"?"+q.Encode(), nil)
		require.Equal(t, http.StatusBadRequest, res.Status, "%s: %s", op, res.Body)
		if strings.HasPrefix(path, "/ui/") {
			requireUIError(t, res, http.StatusBadRequest, "no_such_param: unknown query parameter")
			continue
		}
		p := requireProblem(t, res, http.StatusBadRequest, "no_such_param", "unknown query parameter")
		if len(taken) > 0 {
			require.Contains(t, p.Detail, taken[len(taken)-1], "%s: the detail names the parameters the route takes", op)
		} else {
			require.Contains(t, p.Detail, "takes none", op)
		}
	}
	require.Equal(t, before, l.lastSeq(), "a refused request writes nothing")
}

// routePattern is a ServeMux pattern with a method: "GET /memory/{id}".
var routePattern = regexp.MustCompile(`^([A-Z]+) (/\S*)$`)

// registeredRoutes reads the routes the handlers register (every Handle or HandleFunc call with
// a pattern that names a method) from their source, as OpenAPI operations ("GET /memory/{id}").
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	var out []string
	for op := range registeredPatterns(t) {
		out = append(out, op)
	}
	slices.Sort(out)
	return out
}

// registeredPatterns reads the routes the handlers register as registeredRoutes does: each
// OpenAPI operation with its ServeMux pattern ("GET /ui/" → "GET /ui/{$}").
func registeredPatterns(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir("../handlers", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			pattern, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			m := routePattern.FindStringSubmatch(pattern)
			if m == nil {
				return true
			}
			p := strings.ReplaceAll(m[2], "{$}", "")
			p = strings.ReplaceAll(p, "...}", "}")
			out[m[1]+" "+p] = pattern
			return true
		})
		return nil
	})
	require.NoError(t, err)
	return out
}

// TestOpenAPICheckFailsLoudly: the check refuses an answer from a route the document does not
// describe, and an answer that does not match it.
func TestOpenAPICheckFailsLoudly(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/memory/x":
			w.Write([]byte(`{"id":"x"}`)) // far from a memory
		default:
			w.Write([]byte(`{}`))
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	apiChecked(addr)
	defer apiUnchecked(addr)
	go srv.Serve(ln)
	defer srv.Close()

	_, err = http.Get("http://" + addr + "/undocumented")
	require.ErrorContains(t, err, "is not in the document")
	_, err = http.Get("http://" + addr + "/memory/x")
	require.ErrorContains(t, err, "does not match the document")
}
