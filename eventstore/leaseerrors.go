package eventstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrLeaseRefused is wrapped by the error of a lease request the server or cluster refused
// for good (an account limit, a permission, a bucket that cannot be made with the settings
// asked): AcquireLease returns it at once instead of trying again until its context ends.
var ErrLeaseRefused = errors.New("refused")

// JetStream API error codes a lease request meets while a cluster fails over (see
// leaseRetryable), and that of a write that lost a race for a key.
const (
	// codeClusterNoPeers: "no suitable peers for placement", a replicated bucket made while
	// one of its servers is down.
	codeClusterNoPeers = 10005
	// codeClusterNotLeader: "JetStream cluster can not handle request", asked of a server that
	// has just lost its leadership.
	codeClusterNotLeader = 10009
	// codeRaftGeneral: a replication group's error while its peers change.
	codeRaftGeneral = 10041
	// codeStreamOffline: "stream is offline", a stream whose peers are recovering.
	codeStreamOffline = 10118
)

// leaseRaceLost says that err is the answer to a write of a lease key that expected another
// revision: another holder wrote the key first. A KV Create answers it without wrapping
// jetstream.ErrKeyExists when the key held a delete marker (a lease released) and a replicated
// stream checked the revision (code 10164).
func leaseRaceLost(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// leaseRetryable says whether a failed request about a lease may succeed if made again. It
// may when the server or cluster did not answer: the request timed out (a leader election,
// a server gone, or a cluster without quorum), no one answered (a stream electing its leader,
// or a bucket deleted, answer "no responders"), or the connection is being made again. It
// may too when the server answered that it cannot handle the request now: a 503 (JetStream
// temporarily unavailable, resources short while peers are missing), a server that has just
// lost its leadership, a stream offline while its peers recover, a replicated bucket that
// cannot be placed while one of its servers is down. Any other answer of the server is a
// refusal that trying again will not change (a maximum number of streams, storage limits, a
// bucket whose settings conflict with what exists), and so is a request the connection's
// permissions do not allow: NATS answers such a publish with an asynchronous error, so the
// request times out; the connection's last error names the subject refused.
func (s *Store) leaseRetryable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case codeClusterNoPeers, codeClusterNotLeader, codeRaftGeneral, codeStreamOffline:
			return true
		}
		return apiErr.Code == 503
	}
	if s.leasePermissionDenied() {
		return false
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return true
	}
	return false
}

// stampedError is an error and when it came.
type stampedError struct {
	at  time.Time
	err error
}

// leasePermissionDenied says whether the server refused this connection a subject of the lease
// bucket (its stream's API, or its keys) during the last request: a refusal older than a
// request's timeout is another request's, perhaps before the permissions were changed.
func (s *Store) leasePermissionDenied() bool {
	last := s.refused.Load()
	if last == nil || time.Since(last.at) > 2*readTimeout {
		return false
	}
	bucket := LeaseBucket(s.Stream)
	msg := last.err.Error()
	return strings.Contains(msg, "KV_"+bucket) || strings.Contains(msg, "$KV."+bucket+".")
}

// leaseBucketGone says that err may mean the lease bucket is gone: the next try opens (and
// makes) it again. A deleted bucket's key writes answer "no responders" (no stream takes the
// subject), its reads "stream not found".
func leaseBucketGone(err error) bool {
	return errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}
