// Package jobs holds memledger's automatic jobs: the thresholds of auto-promotion and candidate
// expiry, the pipeline alert rules, and the nightly pipeline with its scheduler. They write
// through the command layer (handlers/ledger) and read the projections; the HTTP routes that
// start them are in handlers.
package jobs

import (
	"time"

	"github.com/memledger/memledger/domain"
)

// Actors of the automatic jobs.
const (
	ActorAutoPromote   = "phase10-auto-promote"
	ActorExpiry        = "candidate-expiry"
	ActorPipelineRules = "pipeline-rules"
	// ActorIntegrity is the actor of recorded integrity runs and of their alerts.
	ActorIntegrity = "integrity-check"
	ActorNightly   = "nightly"
)

// Rules are the default thresholds of the automatic jobs (a request may name others).
type Rules struct {
	// AutoPromoteRefs and AutoPromoteConfidence: a candidate reinforced at least this often
	// and this confident is promoted.
	AutoPromoteRefs       int
	AutoPromoteConfidence float64
	// CandidateMaxAge: a candidate never reinforced and older than this expires.
	CandidateMaxAge time.Duration
}

// DefaultRules are the thresholds the README gives (Jobs): 3 references and 0.7, 14 days.
func DefaultRules() Rules {
	return Rules{AutoPromoteRefs: domain.DefaultAutoPromoteRefs, AutoPromoteConfidence: domain.DefaultAutoPromoteConf,
		CandidateMaxAge: domain.DefaultCandidateMaxAge}
}
