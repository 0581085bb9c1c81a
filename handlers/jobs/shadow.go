package jobs

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// Policy is what a shadow replay decides the nightly jobs under: the thresholds of
// auto-promotion and expiry, and of the pipeline rules.
type Policy struct {
	Rules    Rules         `json:"-"`
	Pipeline PipelineRules `json:"-"`
}

// ShadowOptions qualify a shadow replay.
type ShadowOptions struct {
	// Since and Until bound the recorded nightly runs decided again (by the run's record's
	// time: at or after Since, before Until); zero values leave that side open.
	Since, Until time.Time
	// Progress, when set, is called as the replay goes: the log position read, of last; first
	// with 0 once the policy is accepted, then every 1,000 positions and at last.
	Progress func(seq, last uint64)
}

// ShadowDifference is a memory whose status under the policy differs from the real one.
type ShadowDifference struct {
	MemoryID   string            `json:"memory_id"`
	MemoryType domain.MemoryType `json:"memory_type"`
	Project    string            `json:"project"`
	Actual     domain.Status     `json:"actual"`
	Shadow     domain.Status     `json:"shadow"`
	// ActualSince and ShadowSince are when each history last changed the memory's status.
	ActualSince time.Time `json:"actual_since"`
	ShadowSince time.Time `json:"shadow_since"`
}

// ShadowRun is one recorded nightly run, decided again.
type ShadowRun struct {
	Seq   uint64 `json:"seq"`
	Night string `json:"night"`
	// Promoted and Expired are what the run did; ShadowPromoted and ShadowExpired what it
	// would have done under the policy.
	Promoted       []string `json:"promoted"`
	Expired        []string `json:"expired"`
	ShadowPromoted []string `json:"shadow_promoted"`
	ShadowExpired  []string `json:"shadow_expired"`
	// Alerts are the titles of the pipeline rules' alerts the run raised; ShadowAlerts those
	// the policy's rules would have raised on the shadow history.
	Alerts       []string `json:"alerts"`
	ShadowAlerts []string `json:"shadow_alerts"`
}

// ShadowAlert is an alert of the pipeline rules that one history raised at a nightly run and
// the other would not have: Fired says whether the recorded run raised it, WouldFire whether
// the policy's rules would have.
type ShadowAlert struct {
	Seq       uint64 `json:"seq"`
	Night     string `json:"night"`
	Title     string `json:"title"`
	Fired     bool   `json:"fired"`
	WouldFire bool   `json:"would_fire"`
}

// ShadowDifferenceCounts count the memories whose status would differ: by type, by project
// ("" for global ones) and by change ("active→candidate": actual, then shadow).
type ShadowDifferenceCounts struct {
	ByType    map[domain.MemoryType]int `json:"by_type"`
	ByProject map[string]int            `json:"by_project"`
	ByChange  map[string]int            `json:"by_change"`
}

// ShadowCounts are the memories by status, by type and by project ("" for global ones).
type ShadowCounts struct {
	ByStatus  map[domain.Status]int     `json:"by_status"`
	ByType    map[domain.MemoryType]int `json:"by_type"`
	ByProject map[string]int            `json:"by_project"`
}

// ShadowReport is the answer of a shadow replay: the difference between the recorded history
// and the one the policy would have made.
type ShadowReport struct {
	AutoPromoteRefs       int     `json:"auto_promote_refs"`
	AutoPromoteConfidence float64 `json:"auto_promote_confidence"`
	CandidateMaxAgeDays   float64 `json:"candidate_max_age_days"`
	MinPassRate           float64 `json:"min_pass_rate"`
	MaxCandidates         int     `json:"max_candidates"`
	// Events is how many events were replayed, up to log position AtSeq.
	Events uint64 `json:"events"`
	AtSeq  uint64 `json:"at_seq"`
	// Runs are the recorded nightly runs decided again, in log order.
	Runs        []ShadowRun        `json:"runs"`
	Differences []ShadowDifference `json:"differences"`
	// DifferenceCounts count Differences by type, project and change.
	DifferenceCounts ShadowDifferenceCounts `json:"difference_counts"`
	// Alerts are the pipeline rules' alerts that would have fired and did not, or fired and
	// would not have, run by run.
	Alerts []ShadowAlert `json:"alerts"`
	Actual ShadowCounts  `json:"actual"`
	Shadow ShadowCounts  `json:"shadow"`
	// Refused counts the recorded events the shadow history refuses (a review of a candidate
	// the policy had already promoted or expired, say): they are left out of it.
	Refused int     `json:"refused"`
	Seconds float64 `json:"seconds"`
}

// shadowMemory is a memory in one of the two histories, with when its status last changed.
type shadowMemory struct {
	m     domain.Memory
	since time.Time
}

// history is one of the two replays: the memories and their creation order.
type history struct {
	mems  map[string]*shadowMemory
	order []string
}

func newHistory() *history { return &history{mems: map[string]*shadowMemory{}} }

func (h *history) apply(ev domain.Event) {
	s := h.mems[ev.AggregateID]
	if s == nil {
		s = &shadowMemory{}
		h.mems[ev.AggregateID] = s
		h.order = append(h.order, ev.AggregateID)
	}
	before := s.m.Status
	s.m = domain.ApplyMemory(s.m, ev)
	if s.m.Status != before {
		s.since = ev.Time
	}
}

func (h *history) candidates() int {
	n := 0
	for _, s := range h.mems {
		if s.m.Status == domain.StatusCandidate {
			n++
		}
	}
	return n
}

func (h *history) counts() ShadowCounts {
	c := ShadowCounts{ByStatus: map[domain.Status]int{}, ByType: map[domain.MemoryType]int{}, ByProject: map[string]int{}}
	for _, s := range h.mems {
		if !s.m.Exists() {
			continue
		}
		c.ByStatus[s.m.Status]++
		c.ByType[s.m.MemoryType]++
		c.ByProject[s.m.Project]++
	}
	return c
}

// recordedRun is a nightly run as the first pass of a replay reads it.
type recordedRun struct {
	seq   uint64
	at    time.Time
	run   domain.NightlyRan
	jobs  map[string]bool // actor\x00memory id of the run's job writes
	start time.Time       // the first step's start
	in    bool            // in the window: decided again
}

// Shadow replays the log under policy p: the memory events as recorded, but at each recorded
// nightly run in the window the auto-promotion and expiry are decided again under p's
// thresholds (the run's own writes are left out) and the pipeline rules checked with p's, on
// the shadow history. Nothing is written. The report says which memories would have another
// status now, since when, the counts by status, type and project, each run's decisions and
// alerts both ways, and the recorded events the shadow history refuses.
func Shadow(ctx context.Context, store *eventstore.Store, p Policy, o ShadowOptions) (ShadowReport, error) {
	started := time.Now()
	rep := ShadowReport{AutoPromoteRefs: p.Rules.AutoPromoteRefs, AutoPromoteConfidence: p.Rules.AutoPromoteConfidence,
		CandidateMaxAgeDays: p.Rules.CandidateMaxAge.Hours() / 24, MinPassRate: p.Pipeline.MinPassRate,
		MaxCandidates: p.Pipeline.MaxCandidates, Runs: []ShadowRun{}, Differences: []ShadowDifference{}, Alerts: []ShadowAlert{},
		DifferenceCounts: ShadowDifferenceCounts{ByType: map[domain.MemoryType]int{}, ByProject: map[string]int{}, ByChange: map[string]int{}}}
	if err := checkPolicy(p); err != nil {
		return rep, err
	}
	last, err := store.LastSeq(ctx)
	if err != nil {
		return rep, err
	}
	rep.AtSeq = last
	if o.Progress != nil {
		o.Progress(0, last)
	}
	if last == 0 {
		rep.Actual, rep.Shadow = newHistory().counts(), newHistory().counts()
		return rep, nil
	}
	// First pass: the recorded runs, to know which job writes each one made.
	var runs []*recordedRun
	err = readEvents(ctx, store, last, []string{eventstore.KindSubjects(domain.KindSystem)}, nil, func(ev domain.Event) error {
		run, ok := ev.Data.(domain.NightlyRan)
		if !ok {
			return nil
		}
		r := &recordedRun{seq: ev.Seq, at: ev.Time, run: run, jobs: map[string]bool{},
			in: (o.Since.IsZero() || !ev.Time.Before(o.Since)) && (o.Until.IsZero() || ev.Time.Before(o.Until))}
		for i, s := range run.Steps {
			if i == 0 || s.StartedAt.Before(r.start) {
				r.start = s.StartedAt
			}
			if s.Status != domain.StepOK {
				continue
			}
			for _, key := range []string{"promoted", "expired"} {
				list, _ := s.Summary[key].([]any)
				for _, v := range list {
					if id, ok := v.(string); ok {
						r.jobs[s.Actor+"\x00"+id] = true
					}
				}
			}
		}
		runs = append(runs, r)
		return nil
	})
	if err != nil {
		return rep, err
	}
	// Second pass: both histories.
	actual, shadow := newHistory(), newHistory()
	var passRate *float64
	next := 0 // the first run whose record is after the event read
	var alerts []string
	rules := domain.DefaultRules()
	err = readEvents(ctx, store, last, nil, o.Progress, func(ev domain.Event) error {
		rep.Events++
		for next < len(runs) && runs[next].seq < ev.Seq {
			next++
		}
		switch d := ev.Data.(type) {
		case domain.HarnessRecorded:
			r := d.PassRate
			passRate = &r
		case domain.AlertRaised:
			if ev.Actor == ActorPipelineRules {
				alerts = append(alerts, d.Title)
			}
		case domain.NightlyRan:
			r := runs[next]
			if r.seq != ev.Seq || !r.in {
				alerts = nil
				return nil
			}
			sr := ShadowRun{Seq: ev.Seq, Night: d.Night, Alerts: orEmpty(alerts)}
			alerts = nil
			for _, s := range d.Steps {
				if s.Status != domain.StepOK {
					continue
				}
				switch s.Name {
				case StepAutoPromote:
					sr.Promoted = summaryList(s.Summary, "promoted")
					sr.ShadowPromoted = decideJobs(shadow, rules, s, domain.AutoPromoteMemory{
						MinReferenceCount: p.Rules.AutoPromoteRefs, MinConfidence: p.Rules.AutoPromoteConfidence})
				case StepExpire:
					sr.Expired = summaryList(s.Summary, "expired")
					sr.ShadowExpired = decideJobs(shadow, rules, s, domain.ExpireMemory{Now: s.StartedAt, MaxAge: p.Rules.CandidateMaxAge})
				case StepPipeline:
					sr.ShadowAlerts = pipelineAlerts(p.Pipeline, passRate, shadow.candidates())
				}
			}
			sr.Promoted, sr.Expired, sr.ShadowPromoted, sr.ShadowExpired = orEmpty(sr.Promoted), orEmpty(sr.Expired), orEmpty(sr.ShadowPromoted), orEmpty(sr.ShadowExpired)
			sr.ShadowAlerts = orEmpty(sr.ShadowAlerts)
			rep.Runs = append(rep.Runs, sr)
			rep.Alerts = append(rep.Alerts, alertDifferences(sr)...)
			return nil
		}
		if ev.Kind() != domain.KindMemory || ev.Data == nil {
			return nil
		}
		actual.apply(ev)
		if next < len(runs) && runs[next].in && runs[next].jobs[ev.Actor+"\x00"+ev.AggregateID] && !ev.Time.Before(runs[next].start) {
			return nil // a write of the run, decided again at its record
		}
		if !allowed(shadow, ev) {
			rep.Refused++
			return nil
		}
		shadow.apply(ev)
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, id := range actual.order {
		a, s := actual.mems[id], shadow.mems[id]
		if s == nil {
			s = &shadowMemory{}
		}
		if a.m.Status != s.m.Status {
			rep.Differences = append(rep.Differences, ShadowDifference{MemoryID: id, MemoryType: a.m.MemoryType,
				Project: a.m.Project, Actual: a.m.Status, Shadow: s.m.Status, ActualSince: a.since, ShadowSince: s.since})
			rep.DifferenceCounts.ByType[a.m.MemoryType]++
			rep.DifferenceCounts.ByProject[a.m.Project]++
			rep.DifferenceCounts.ByChange[string(a.m.Status)+"→"+string(orNone(s.m.Status))]++
		}
	}
	rep.Actual, rep.Shadow = actual.counts(), shadow.counts()
	rep.Seconds = time.Since(started).Seconds()
	return rep, nil
}

// checkPolicy refuses thresholds the jobs refuse.
func checkPolicy(p Policy) error {
	switch {
	case p.Rules.AutoPromoteRefs < 1:
		return domain.Invalid("auto_promote_refs", "must be at least 1, got %d", p.Rules.AutoPromoteRefs)
	case !(p.Rules.AutoPromoteConfidence >= 0 && p.Rules.AutoPromoteConfidence <= 1):
		return domain.Invalid("auto_promote_confidence", "must be between 0 and 1, got %v", p.Rules.AutoPromoteConfidence)
	case p.Rules.CandidateMaxAge <= 0:
		return domain.Invalid("candidate_max_age_days", "must be positive, got %v", p.Rules.CandidateMaxAge.Hours()/24)
	case !(p.Pipeline.MinPassRate >= 0 && p.Pipeline.MinPassRate <= 1):
		return domain.Invalid("min_pass_rate", "must be between 0 and 1, got %v", p.Pipeline.MinPassRate)
	case p.Pipeline.MaxCandidates < 0:
		return domain.Invalid("max_candidates", "must not be negative, got %d", p.Pipeline.MaxCandidates)
	}
	return nil
}

// allowed reports whether the shadow history takes a recorded event: its memory exists there
// (or the event creates it) and the state machine allows its action from the shadow status.
func allowed(h *history, ev domain.Event) bool {
	s := h.mems[ev.AggregateID]
	var before domain.Memory
	if s != nil {
		before = s.m
	}
	switch ev.Data.(type) {
	case domain.MemoryCreated:
		return !before.Exists()
	case domain.MemoryReconciled, domain.MemoryReverted:
		return before.Exists()
	}
	if !before.Exists() {
		return false
	}
	if u, ok := ev.Data.(domain.MemoryUpdated); ok && slices.Contains(u.Changed, "status") && u.Status != before.Status {
		if _, err := domain.StatusChange(ev.AggregateID, before.Status, u.Status); err != nil {
			return false
		}
	}
	_, err := domain.Transition(ev.AggregateID, before.Status, domain.AuditAction(before, ev))
	return err == nil
}

// decideJobs decides cmd on every candidate of the shadow history, in creation order, as the
// job does, applies what it decides and returns the ids it changed.
func decideJobs(h *history, rules domain.Rules, step domain.StepResult, cmd domain.Command) []string {
	var out []string
	for _, id := range h.order {
		s := h.mems[id]
		if s.m.Status != domain.StatusCandidate {
			continue
		}
		evs, err := rules.Decide(s.m, id, cmd, domain.Meta{EventID: "shadow", Actor: step.Actor, Time: step.StartedAt})
		if err != nil || len(evs) == 0 {
			continue
		}
		for _, ev := range evs {
			h.apply(ev)
		}
		out = append(out, id)
	}
	return out
}

// alertDifferences are the alerts one of run's histories raised and the other would not have.
func alertDifferences(run ShadowRun) []ShadowAlert {
	var out []ShadowAlert
	for _, t := range []string{titlePassRate, titleCandidates} {
		fired, would := slices.Contains(run.Alerts, t), slices.Contains(run.ShadowAlerts, t)
		if fired != would {
			out = append(out, ShadowAlert{Seq: run.Seq, Night: run.Night, Title: t, Fired: fired, WouldFire: would})
		}
	}
	return out
}

// orNone names the status of a memory a history does not hold.
func orNone(s domain.Status) domain.Status {
	if s == "" {
		return "none"
	}
	return s
}

// pipelineAlerts are the titles of the alerts the pipeline rules raise on these figures.
func pipelineAlerts(rules PipelineRules, passRate *float64, candidates int) []string {
	var out []string
	if passRate != nil && *passRate < rules.MinPassRate {
		out = append(out, titlePassRate)
	}
	if candidates > rules.MaxCandidates {
		out = append(out, titleCandidates)
	}
	return out
}

func summaryList(summary map[string]any, key string) []string {
	var out []string
	list, _ := summary[key].([]any)
	for _, v := range list {
		if id, ok := v.(string); ok {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// readEvents calls fn with the decoded events of the log up to last (those on subjects, when
// set), in order.
func readEvents(ctx context.Context, store *eventstore.Store, last uint64, subjects []string, progress func(seq, last uint64), fn func(domain.Event) error) error {
	return store.Read(ctx, eventstore.ReadOptions{From: 1, To: last, Subjects: subjects}, func(m eventstore.Message) error {
		ev, err := eventstore.Decode(m.Data, m.Seq)
		if err != nil {
			return fmt.Errorf("event at %d: %w", m.Seq, err)
		}
		if progress != nil && (m.Seq%1000 == 0 || m.Seq == last) {
			progress(m.Seq, last)
		}
		return fn(ev)
	})
}
