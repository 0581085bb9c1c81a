package subscriptions_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/stretchr/testify/require"
)

func TestSignature(t *testing.T) {
	secret, body := []byte("whsec-1"), []byte(`{"seq":1}`)
	at := time.Unix(1764584400, 0)
	h := subscriptions.Sign(secret, body, at)
	// The documented recipe, computed independently.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1764584400." + string(body)))
	require.Equal(t, "t=1764584400,v1="+hex.EncodeToString(m.Sum(nil)), h)

	require.NoError(t, subscriptions.Verify(secret, body, h, at.Add(time.Minute), subscriptions.DefaultTolerance))
	require.ErrorIs(t, subscriptions.Verify([]byte("other"), body, h, at, time.Minute), subscriptions.ErrSignatureMismatch)
	require.ErrorIs(t, subscriptions.Verify(secret, []byte(`{"seq":2}`), h, at, time.Minute), subscriptions.ErrSignatureMismatch)
	require.ErrorIs(t, subscriptions.Verify(secret, body, h, at.Add(time.Hour), time.Minute), subscriptions.ErrSignatureExpired)
	require.ErrorIs(t, subscriptions.Verify(secret, body, "v1=00", at, time.Minute), subscriptions.ErrSignatureMalformed)
	require.ErrorIs(t, subscriptions.Verify(secret, body, "t=1764584400,v1=zz", at, time.Minute), subscriptions.ErrSignatureMalformed)
	require.ErrorIs(t, subscriptions.Verify(secret, body, "", at, time.Minute), subscriptions.ErrSignatureMalformed)
}
