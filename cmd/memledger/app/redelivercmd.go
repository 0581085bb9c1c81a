package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
)

// redeliverAlerts is `memledger alerts redeliver`: it moves an alert sink of the running
// service back to a position or a time, from which it delivers every alert again, in order.
func redeliverAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("memledger alerts redeliver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr, actor string
	var q struct {
		Since string `json:"since"`
		Sink  string `json:"sink"`
		Note  string `json:"note,omitempty"`
	}
	clientFlags(fs, &addr)
	fs.StringVar(&q.Since, "since", "", "deliver again from this log sequence, RFC 3339 time or duration ago (1h) (required)")
	fs.StringVar(&q.Sink, "sink", "webhook", "the sink: webhook, file or log")
	fs.StringVar(&q.Note, "note", "", "why (logged)")
	fs.StringVar(&actor, "actor", "cli", "who asks")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitError(2)
	}
	if q.Since == "" {
		fmt.Fprintln(stderr, "memledger alerts redeliver: --since is required")
		return exitError(2)
	}
	data, err := postJSON(ctx, addr, "/admin/alerts/redeliver", actor, q, http.StatusOK)
	if err != nil {
		return err
	}
	var res struct {
		Sink    string `json:"sink"`
		Pending uint64 `json:"pending"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "redelivering to %s from %s: %d alerts to deliver\n", res.Sink, q.Since, res.Pending)
	return nil
}
