package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
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
	data, err := postJSON(ctx, addr, "/admin/shadow", "", q, http.StatusOK)
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
	for _, d := range rep.Differences {
		fmt.Fprintf(stdout, "%s %s/%s: %s since %s, would be %s since %s\n", d.MemoryID, d.MemoryType, d.Project,
			d.Actual, d.ActualSince.Format("2006-01-02T15:04:05Z07:00"), d.Shadow, d.ShadowSince.Format("2006-01-02T15:04:05Z07:00"))
	}
	fmt.Fprintf(stdout, "%d events replayed to log position %d in %.2fs (%.0f events/s): %d memories would differ, %d recorded events refused\n",
		rep.Events, rep.AtSeq, rep.Seconds, float64(rep.Events)/max(rep.Seconds, 1e-9), len(rep.Differences), rep.Refused)
	return nil
}
