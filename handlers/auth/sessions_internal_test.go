package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A session cookie is its signed fields: it parses back to them under the key that signed it,
// and any change of a character, or another key, is refused as unauthenticated.
func TestSessionCookieSigned(t *testing.T) {
	a := &Authenticator{SessionKey: []byte("0123456789abcdef0123456789abcdef")}
	s := session{token: "rita", id: "q83vEjRWeJq83vEjRWeJqw", expires: time.Unix(1_800_000_000, 0).UTC()}
	value := a.cookie(s)
	require.True(t, strings.HasPrefix(value, "mls_rita.q83vEjRWeJq83vEjRWeJqw.1800000000."), value)
	got, err := a.parse(value)
	require.NoError(t, err)
	require.Equal(t, s, got)

	for i := range value {
		for _, c := range []byte{'a', '0', '.', '_'} {
			if value[i] == c {
				continue
			}
			bad := value[:i] + string(c) + value[i+1:]
			_, err := a.parse(bad)
			require.ErrorIs(t, err, ErrUnauthenticated, "%q", bad)
		}
	}
	for _, bad := range []string{"", "mls_", "mls_rita", "mls_rita.x.1.", value + ".x", "mlt_abc", strings.Replace(value, "rita", "admin", 1)} {
		_, err := a.parse(bad)
		require.ErrorIs(t, err, ErrUnauthenticated, "%q", bad)
	}
	other := &Authenticator{SessionKey: []byte("another key, of 32 bytes also!!!")}
	_, err = other.parse(value)
	require.ErrorIs(t, err, ErrUnauthenticated)
	require.ErrorContains(t, err, "not signed with this service's key")
}

// FuzzSessionCookie: any cookie value is refused with an ErrUnauthenticated or parses to a
// session whose cookie is that value; it never panics.
func FuzzSessionCookie(f *testing.F) {
	a := &Authenticator{SessionKey: []byte("0123456789abcdef0123456789abcdef")}
	f.Add(a.cookie(session{token: "rita", id: "q83vEjRWeJq83vEjRWeJqw", expires: time.Unix(1_800_000_000, 0)}))
	for _, s := range []string{"", "mls_", "mls_a.b.c.d", "mls_a..1.", "mls_a.b.-1.AAAA", "mls_\xff.b.1.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		s, err := a.parse(value)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("%q: %v is not ErrUnauthenticated", value, err)
			}
			return
		}
		if a.cookie(s) != value {
			t.Fatalf("%q parsed to %+v, whose cookie is %q", value, s, a.cookie(s))
		}
	})
}
