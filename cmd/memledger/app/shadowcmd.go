package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/memledger/memledger/handlers/jobs"
)

// shadow is `memledger shadow`: it asks the running service to replay the history under the
// policy its flags give (a flag not given keeps the live threshold) and prints the difference.
func shadow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("memledger shadow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr string
	var asJSON bool
	var refs, maxCandidates int
	var conf, maxAge, passRate float64
	var since, until string
	clientFlags(fs, &addr)
	fs.IntVar(&refs, "auto-promote-refs", 0, "auto-promote candidates reinforced at least this often")
	fs.Float64Var(&conf, "auto-promote-confidence", 0, "...and at least this confident")
	fs.Float64Var(&maxAge, "candidate-max-age-days", 0, "expire candidates never reinforced and older than this")
	fs.Float64Var(&passRate, "min-pass-rate", 0, "pipeline rule: a harness pass rate below this raises a warning")
	fs.IntVar(&maxCandidates, "max-candidates", 0, "pipeline rule: more candidates than this raise a warning")
	fs.StringVar(&since, "since", "", "decide again the nightly runs recorded at or after this RFC 3339 time")
	fs.StringVar(&until, "until", "", "...and before this one")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitError(2)
	}
	q := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "auto-promote-refs":
			q["auto_promote_refs"] = refs
		case "auto-promote-confidence":
			q["auto_promote_confidence"] = conf
		case "candidate-max-age-days":
			q["candidate_max_age_days"] = maxAge
		case "min-pass-rate":
			q["min_pass_rate"] = passRate
		case "max-candidates":
			q["max_candidates"] = maxCandidates
		case "since":
			q["since"] = since
		case "until":
			q["until"] = until
		}
	})
	// The replay streams its progress: a bar on a terminal, nothing otherwise.
	var bar *barReporter
	data, err := postShadow(ctx, addr, q, func(seq, last uint64) {
		if bar == nil && last > 0 && isTerminal(stdout) {
			bar = newBar(stdout, "shadow replay", last)
		}
		if bar != nil {
			bar.update(seq)
		}
	})
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return err
	}
	if asJSON {
		_, err := stdout.Write(append(data, '\n'))
		return err
	}
	var rep jobs.ShadowReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "policy: auto-promote at %d references and %v confidence, expiry after %v days, pass rate %v, %d candidates\n",
		rep.AutoPromoteRefs, rep.AutoPromoteConfidence, rep.CandidateMaxAgeDays, rep.MinPassRate, rep.MaxCandidates)
	for _, r := range rep.Runs {
		fmt.Fprintf(stdout, "run %s (#%d): promoted %d, would promote %d; expired %d, would expire %d; alerts [%s], would raise [%s]\n",
			r.Night, r.Seq, len(r.Promoted), len(r.ShadowPromoted), len(r.Expired), len(r.ShadowExpired),
			strings.Join(r.Alerts, "; "), strings.Join(r.ShadowAlerts, "; "))
	}
	for _, a := range rep.Alerts {
		fired := map[bool]string{true: "fired", false: "did not fire"}[a.Fired]
		would := map[bool]string{true: "would have", false: "would not have"}[a.WouldFire]
		fmt.Fprintf(stdout, "alert %q at run %s (#%d): %s, %s\n", a.Title, a.Night, a.Seq, fired, would)
	}
	for _, d := range rep.Differences {
		fmt.Fprintf(stdout, "%s %s/%s: %s since %s, would be %s since %s\n", d.MemoryID, d.MemoryType, d.Project,
			d.Actual, d.ActualSince.Format("2006-01-02T15:04:05Z07:00"), d.Shadow, d.ShadowSince.Format("2006-01-02T15:04:05Z07:00"))
	}
	if len(rep.Differences) > 0 {
		c := rep.DifferenceCounts
		fmt.Fprintf(stdout, "differences by type: %s; by project: %s; by change: %s\n",
			countList(c.ByType), countList(c.ByProject), countList(c.ByChange))
	}
	fmt.Fprintf(stdout, "%d events replayed to log position %d in %.2fs (%.0f events/s): %d memories would differ, %d recorded events refused\n",
		rep.Events, rep.AtSeq, rep.Seconds, float64(rep.Events)/max(rep.Seconds, 1e-9), len(rep.Differences), rep.Refused)
	return nil
}

// countList is a count map as "a 2, b 1", by key; a global project's key is "(global)".
func countList[K ~string](m map[K]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := k
		if name == "" {
			name = "(global)"
		}
		parts[i] = fmt.Sprintf("%s %d", name, m[K(k)])
	}
	return strings.Join(parts, ", ")
}

// postShadow asks the service at addr for the shadow replay q, streamed
// (Accept: application/x-ndjson): it calls progress with each progress line's position and
// returns the report's JSON.
func postShadow(ctx context.Context, addr string, q map[string]any, progress func(seq, last uint64)) ([]byte, error) {
	body, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL(addr)+"/admin/shadow", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is memledger serve running on %s? %w", addr, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(res.Body)
		return nil, fmt.Errorf("%s: %s", res.Status, problemDetail(data))
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/x-ndjson" {
		// A service that does not stream answers the report as one JSON object.
		return io.ReadAll(res.Body)
	}
	rd := bufio.NewReader(res.Body)
	for {
		line, err := rd.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var l struct {
				Progress *struct {
					Seq  uint64 `json:"seq"`
					Last uint64 `json:"last"`
				} `json:"progress"`
				Report json.RawMessage `json:"report"`
				Error  *struct {
					Status int    `json:"status"`
					Detail string `json:"detail"`
				} `json:"error"`
			}
			if jerr := json.Unmarshal(line, &l); jerr != nil {
				return nil, fmt.Errorf("shadow replay: unreadable line from the service: %w", jerr)
			}
			switch {
			case l.Error != nil:
				return nil, fmt.Errorf("%d %s: %s", l.Error.Status, http.StatusText(l.Error.Status), l.Error.Detail)
			case l.Report != nil:
				return l.Report, nil
			case l.Progress != nil:
				progress(l.Progress.Seq, l.Progress.Last)
			}
		}
		if err == io.EOF {
			return nil, errors.New("shadow replay: the service ended the answer before its report")
		}
		if err != nil {
			return nil, fmt.Errorf("shadow replay: %w", err)
		}
	}
}
