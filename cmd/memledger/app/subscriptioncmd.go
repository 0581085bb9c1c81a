package app

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

const subscriptionsUsage = `usage: memledger subscriptions COMMAND [flags]

  add --url URL [--subject S]... [--type T]... [--from POS] [--secret S | --secret-file F] [--description D]
  list [--all] [--json]
  show ID
  pause ID | resume ID | remove ID
  reset ID --from POS

POS is beginning, now, a log sequence (42) or an RFC 3339 time.
`

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// subscriptionsCmd is `memledger subscriptions`: it manages the webhook subscriptions of the
// running service.
func subscriptionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, subscriptionsUsage)
		return exitError(2)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("memledger subscriptions "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr, actor, note string
	clientFlags(fs, &addr)
	fs.StringVar(&actor, "actor", "cli", "who makes the change (recorded on its event)")
	fs.StringVar(&note, "note", "", "why (recorded on the event)")
	var q struct {
		ID          string   `json:"id,omitempty"`
		URL         string   `json:"url"`
		Description string   `json:"description,omitempty"`
		Subjects    listFlag `json:"subjects,omitempty"`
		Types       listFlag `json:"types,omitempty"`
		From        string   `json:"from,omitempty"`
		Secret      string   `json:"secret,omitempty"`
		Note        string   `json:"note,omitempty"`
	}
	var secretFile string
	var all, asJSON bool
	switch sub {
	case "add":
		fs.StringVar(&q.URL, "url", "", "the receiver's URL (required)")
		fs.StringVar(&q.ID, "id", "", "the subscription's id (default a new UUID)")
		fs.StringVar(&q.Description, "description", "", "what the subscription is for")
		fs.Var(&q.Subjects, "subject", "a subject filter within ledger.> (repeatable)")
		fs.Var(&q.Types, "type", "an event type to deliver, like memory.promoted (repeatable)")
		fs.StringVar(&q.From, "from", "now", "where to start: beginning, now, a sequence or an RFC 3339 time")
		fs.StringVar(&q.Secret, "secret", "", "the signing secret (default: one is made and printed once)")
		fs.StringVar(&secretFile, "secret-file", "", "read the signing secret from this file")
	case "list":
		fs.BoolVar(&all, "all", false, "include removed subscriptions")
		fs.BoolVar(&asJSON, "json", false, "print the answer as JSON")
	case "reset":
		fs.StringVar(&q.From, "from", "", "where to start again: beginning, now, a sequence or an RFC 3339 time (required)")
	case "show", "pause", "resume", "remove":
	default:
		fmt.Fprintf(stderr, "memledger subscriptions: unknown command %q\n\n%s", sub, subscriptionsUsage)
		return exitError(2)
	}
	// The id comes first or last: memledger subscriptions pause ID, or ... reset ID --from 1.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitError(2)
	}
	needsID := sub != "add" && sub != "list"
	if needsID != (id != "") {
		if needsID {
			fmt.Fprintf(stderr, "%s: name the subscription: memledger subscriptions %s ID\n", fs.Name(), sub)
		} else {
			fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), id)
		}
		return exitError(2)
	}
	path := "/admin/subscriptions/" + url.PathEscape(id)
	var data []byte
	var err error
	switch sub {
	case "add":
		if q.URL == "" {
			fmt.Fprintln(stderr, "memledger subscriptions add: --url is required")
			return exitError(2)
		}
		if secretFile != "" {
			raw, err := os.ReadFile(secretFile)
			if err != nil {
				return err
			}
			q.Secret = strings.TrimSpace(string(raw))
		}
		q.Note = note
		data, err = requestJSON(ctx, addr, http.MethodPost, "/admin/subscriptions", actor, q, http.StatusCreated)
	case "list":
		p := "/admin/subscriptions"
		if all {
			p += "?include_removed=true"
		}
		data, err = requestJSON(ctx, addr, http.MethodGet, p, "", nil, http.StatusOK)
		if err == nil && !asJSON {
			return printSubscriptions(stdout, data)
		}
	case "show":
		data, err = requestJSON(ctx, addr, http.MethodGet, path, "", nil, http.StatusOK)
	case "pause", "resume":
		data, err = requestJSON(ctx, addr, http.MethodPost, path+"/"+sub, actor, map[string]string{"note": note}, http.StatusOK)
	case "reset":
		if q.From == "" {
			fmt.Fprintln(stderr, "memledger subscriptions reset: --from is required")
			return exitError(2)
		}
		data, err = requestJSON(ctx, addr, http.MethodPost, path+"/reset", actor, map[string]string{"from": q.From, "note": note}, http.StatusOK)
	case "remove":
		data, err = requestJSON(ctx, addr, http.MethodDelete, path, actor, nil, http.StatusOK)
	}
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if json.Indent(&out, data, "", "  ") != nil {
		out.Reset()
		out.Write(data)
	}
	fmt.Fprintln(stdout, strings.TrimSpace(out.String()))
	return nil
}

// printSubscriptions prints GET /admin/subscriptions as a table.
func printSubscriptions(w io.Writer, data []byte) error {
	var v struct {
		Subscriptions []struct {
			ID       string   `json:"id"`
			URL      string   `json:"url"`
			Status   string   `json:"status"`
			Subjects []string `json:"subjects"`
			Types    []string `json:"types"`
			Delivery struct {
				Position  uint64 `json:"position"`
				Lag       uint64 `json:"lag"`
				LastError string `json:"last_error"`
				Error     string `json:"error"`
			} `json:"delivery"`
		} `json:"subscriptions"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("unreadable answer: %w", err)
	}
	if len(v.Subscriptions) == 0 {
		fmt.Fprintln(w, "no subscriptions")
	}
	for _, s := range v.Subscriptions {
		filter := strings.Join(s.Subjects, ",")
		if len(s.Types) > 0 {
			filter += " types=" + strings.Join(s.Types, ",")
		}
		fmt.Fprintf(w, "%s %-7s position=%d lag=%d %s %s\n", s.ID, s.Status, s.Delivery.Position, s.Delivery.Lag, s.URL, filter)
		if e := s.Delivery.Error; e != "" {
			fmt.Fprintf(w, "    error: %s\n", e)
		} else if e := s.Delivery.LastError; e != "" {
			fmt.Fprintf(w, "    last error: %s\n", e)
		}
	}
	return nil
}

// requestJSON sends a request with body as JSON (none when nil) to the running service and
// returns the answer's body, or an error with the problem's detail when the status is not want.
func requestJSON(ctx context.Context, addr, method, path, actor string, body any, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, baseURL(addr)+path, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if actor != "" {
		req.Header.Set("X-Actor", actor)
	}
	authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is memledger serve running on %s? %w", addr, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != want {
		return nil, fmt.Errorf("%s: %s", res.Status, problemDetail(data))
	}
	return data, nil
}
