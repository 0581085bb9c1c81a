package eventstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/memledger/memledger/domain"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// An append the log does not acknowledge in time is ErrUnavailable (a 503 that says a retry
// with the same key is safe), one too large ErrTooLarge (a 413): neither is a 500.
func TestMapErrorOfAppends(t *testing.T) {
	for _, err := range []error{context.DeadlineExceeded, nats.ErrTimeout, jetstream.ErrNoStreamResponse,
		fmt.Errorf("publish: %w", context.DeadlineExceeded)} {
		got := mapError(err)
		require.ErrorIs(t, got, domain.ErrUnavailable, "%v", err)
		require.ErrorContains(t, got, "Idempotency-Key")
	}
	require.ErrorIs(t, mapError(nats.ErrMaxPayload), domain.ErrTooLarge)
	require.ErrorIs(t, mapError(&jetstream.APIError{ErrorCode: errCodeMessageTooLarge}), domain.ErrTooLarge)
	require.False(t, errors.Is(mapError(errors.New("other")), domain.ErrUnavailable))
}
