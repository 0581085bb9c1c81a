package app

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/memledger/memledger/handlers/feed"
)

// repeated collects a flag given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// tail is `memledger tail`: it prints the running service's events as they are appended (or
// from --from on), one readable line each, or as the change feed's JSON with --json.
func tail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("memledger tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr, from string
	var subjects, types repeated
	var asJSON bool
	clientFlags(fs, &addr)
	fs.StringVar(&from, "from", "now", "where to start: now, a log position, or an RFC 3339 time")
	fs.Var(&subjects, "subject", "only events on subjects matching this NATS filter, like ledger.memory.> (repeatable)")
	fs.Var(&types, "type", "only events of this type, like memory.promoted (repeatable)")
	fs.BoolVar(&asJSON, "json", false, "print each event as the change feed's JSON line")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "memledger tail: unexpected arguments %q\n", fs.Args())
		return exitError(2)
	}
	q := url.Values{"from": {from}}
	for _, s := range subjects {
		q.Add("subject", s)
	}
	for _, t := range types {
		q.Add("type", t)
	}
	for {
		end, err := tailOnce(ctx, addr, q, asJSON, stdout)
		if err != nil || end == nil {
			return err
		}
		if end.End != feed.EndCut {
			return fmt.Errorf("the feed ended (%s): %s", end.End, end.Reason)
		}
		// Cut for not keeping up (a slow terminal): go on where it stopped.
		fmt.Fprintf(stderr, "memledger tail: %s; resuming\n", end.Reason)
		q.Set("from", fmt.Sprint(end.NextFrom))
	}
}

// tailOnce reads one feed and returns its end line (nil when ctx ended it).
func tailOnce(ctx context.Context, addr string, q url.Values, asJSON bool, stdout io.Writer) (*feed.End, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL(addr)+"/events?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, fmt.Errorf("is memledger serve running on %s? %w", addr, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(res.Body)
		return nil, fmt.Errorf("%s: %s", res.Status, problemDetail(data))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line struct {
			feed.End
			Seq     uint64          `json:"seq"`
			Subject string          `json:"subject"`
			Event   json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("unreadable feed line: %w", err)
		}
		if line.End.End != "" {
			return &line.End, nil
		}
		if asJSON {
			fmt.Fprintln(stdout, sc.Text())
			continue
		}
		fmt.Fprintln(stdout, EventLine(line.Seq, line.Subject, line.Event))
	}
	if ctx.Err() != nil {
		return nil, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("the feed ended without an end line (the service stopped?)")
}

// EventLine is a readable line for the stored event at seq on subject:
// "#42 2026-04-16T12:00:00Z memory.promoted ledger.memory.<id> by human-triage: checked".
func EventLine(seq uint64, subject string, event json.RawMessage) string {
	var e struct {
		Type  string    `json:"type"`
		Actor string    `json:"actor"`
		Note  string    `json:"note"`
		Time  time.Time `json:"time"`
	}
	if json.Unmarshal(event, &e) != nil {
		return fmt.Sprintf("#%d %s (not an event)", seq, subject)
	}
	line := fmt.Sprintf("#%d %s %s %s by %s", seq, e.Time.UTC().Format(time.RFC3339), e.Type, subject, e.Actor)
	if e.Note != "" {
		line += ": " + strings.ReplaceAll(e.Note, "\n", `\n`)
	}
	return line
}
