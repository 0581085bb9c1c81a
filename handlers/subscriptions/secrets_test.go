package subscriptions_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memledger/memledger/handlers/subscriptions"
	"github.com/stretchr/testify/require"
)

func TestKeyring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", subscriptions.KeyFileName)
	k, err := subscriptions.LoadKeyring(path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	sealed, err := k.Seal("sub-1", []byte("whsec-abc"))
	require.NoError(t, err)
	require.NotContains(t, sealed, "whsec-abc")
	require.True(t, strings.HasPrefix(sealed, "v1:"+k.ID+":"))
	again, err := k.Seal("sub-1", []byte("whsec-abc"))
	require.NoError(t, err)
	require.NotEqual(t, sealed, again, "a fresh nonce each time")

	// The same file gives the same key.
	k2, err := subscriptions.LoadKeyring(path)
	require.NoError(t, err)
	got, err := k2.Open("sub-1", sealed)
	require.NoError(t, err)
	require.Equal(t, "whsec-abc", string(got))

	// Bound to its subscription; refused under another key, or damaged.
	_, err = k2.Open("sub-2", sealed)
	require.ErrorContains(t, err, "does not open for subscription sub-2")
	other, err := subscriptions.LoadKeyring(filepath.Join(t.TempDir(), subscriptions.KeyFileName))
	require.NoError(t, err)
	_, err = other.Open("sub-1", sealed)
	require.ErrorIs(t, err, subscriptions.ErrWrongKey)
	_, err = k.Open("sub-1", sealed[:len(sealed)-4]+"AAAA")
	require.Error(t, err)
	_, err = k.Open("sub-1", "plain")
	require.Error(t, err)

	require.NoError(t, os.WriteFile(path, []byte("nothex\n"), 0o600))
	_, err = subscriptions.LoadKeyring(path)
	require.ErrorContains(t, err, "not 64 hex digits")
}
