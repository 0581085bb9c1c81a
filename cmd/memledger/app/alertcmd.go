package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/sinks"
)

// contextFlag collects repeated --context key=value flags.
type contextFlag map[string]any

func (c contextFlag) String() string { return fmt.Sprint(map[string]any(c)) }

func (c contextFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	c[k] = val
	return nil
}

// clientFlags registers the flags of the commands that talk to a running service.
func clientFlags(fs *flag.FlagSet, addr *string) {
	fs.StringVar(addr, "addr", env("MEMLEDGER_ADDR", DefaultConfig().Addr), "address of the running memledger (MEMLEDGER_ADDR)")
	fs.StringVar(&client.token, "token", "", "token to authenticate with (default $MEMLEDGER_TOKEN, else <data>/admin.token)")
	fs.StringVar(&client.data, "data", env("MEMLEDGER_DATA", DefaultConfig().Data), "data directory whose admin.token is used when no token is given (MEMLEDGER_DATA)")
}

// client holds the credentials of the command that talks to a running service (one per
// process).
var client struct{ token, data string }

// authorize sets the request's token: --token, else MEMLEDGER_TOKEN, else <data>/admin.token.
func authorize(req *http.Request) {
	tok := client.token
	if tok == "" {
		tok = os.Getenv("MEMLEDGER_TOKEN")
	}
	if tok == "" {
		if b, err := os.ReadFile(filepath.Join(client.data, "admin.token")); err == nil {
			tok = strings.TrimSpace(string(b))
		}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

func baseURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

// raiseAlert is `memledger alert`: it raises an alert through the running service.
func raiseAlert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("memledger alert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr, actor string
	var q struct {
		Severity string      `json:"severity"`
		Title    string      `json:"title"`
		Message  string      `json:"message"`
		Context  contextFlag `json:"context,omitempty"`
	}
	q.Context = contextFlag{}
	clientFlags(fs, &addr)
	fs.StringVar(&q.Severity, "severity", "info", "info, warning or critical (anything else is recorded as info)")
	fs.StringVar(&q.Title, "title", "", "the alert's title (required)")
	fs.StringVar(&q.Message, "message", "", "the alert's message")
	fs.StringVar(&actor, "actor", "cli", "who raises the alert")
	fs.Var(q.Context, "context", "key=value to add to the alert's context (repeatable)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "memledger alert: unexpected arguments %q\n", fs.Args())
		return exitError(2)
	}
	if q.Title == "" {
		fmt.Fprintln(stderr, "memledger alert: --title is required")
		return exitError(2)
	}
	data, err := postJSON(ctx, addr, "/admin/alerts", actor, q, http.StatusCreated)
	if err != nil {
		return err
	}
	var a domain.Alert
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	fmt.Fprintln(stdout, sinks.AlertLine(a))
	return nil
}

// watchAlerts is `memledger alerts watch`: it prints alerts as the running service raises them.
func watchAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "redeliver" {
		return redeliverAlerts(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "watch" {
		fmt.Fprintln(stderr, "usage: memledger alerts watch [--severity S] [--since 1h|RFC3339] [--json]\n       memledger alerts redeliver --since SEQ|RFC3339|1h [--sink webhook]")
		return exitError(2)
	}
	fs := flag.NewFlagSet("memledger alerts watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr, severity, since string
	var asJSON bool
	clientFlags(fs, &addr)
	fs.StringVar(&severity, "severity", "", "only alerts of this severity")
	fs.StringVar(&since, "since", "", "replay alerts raised since this time (RFC 3339) or duration ago (1h), then go on live")
	fs.BoolVar(&asJSON, "json", false, "print each alert as JSON instead of an alert log line")
	if err := fs.Parse(args[1:]); err != nil {
		return flagError(err)
	}
	q := url.Values{}
	if severity != "" {
		q.Set("severity", severity)
	}
	if since != "" {
		q.Set("since", since)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL(addr)+"/admin/alerts/watch?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("is memledger serve running on %s? %w", addr, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(res.Body)
		return fmt.Errorf("%s: %s", res.Status, problemDetail(data))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if asJSON {
			fmt.Fprintln(stdout, sc.Text())
			continue
		}
		var end struct {
			End    string `json:"end"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(sc.Bytes(), &end) == nil && end.End != "" {
			// The service ended the stream (its token was revoked or expired).
			return fmt.Errorf("the service ended the stream (%s): %s", end.End, end.Reason)
		}
		var a domain.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			return fmt.Errorf("unreadable alert: %w", err)
		}
		fmt.Fprintln(stdout, sinks.AlertLine(a))
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// postJSON posts body as JSON to the running service and returns the answer's body, or an
// error with the problem's detail when the status is not want.
func postJSON(ctx context.Context, addr, path, actor string, body any, want int) ([]byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL(addr)+path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if actor != "" {
		req.Header.Set("X-Actor", actor)
	}
	authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is memledger serve running on %s? %w", addr, err)
	}
	defer res.Body.Close()
	data, err = io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != want {
		return nil, fmt.Errorf("%s: %s", res.Status, problemDetail(data))
	}
	return data, nil
}

func problemDetail(data []byte) string {
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(data, &p) == nil && p.Detail != "" {
		return p.Detail
	}
	return strings.TrimSpace(string(data))
}
