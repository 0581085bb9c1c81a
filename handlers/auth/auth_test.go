package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/handlers/auth"
)

func TestParseBearer(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer mlt_abc":   "mlt_abc",
		"bearer mlt_abc":   "mlt_abc",
		"BEARER   mlt_abc": "mlt_abc",
	} {
		got, err := auth.ParseBearer(header)
		require.NoError(t, err, header)
		require.Equal(t, want, got)
	}
	for _, header := range []string{"", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "mlt_abc", "Bearer a b", "Bearer \x00", "Bearer " + strings.Repeat("a", 257)} {
		_, err := auth.ParseBearer(header)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, "%q", header)
	}
}

// FuzzParseBearer: any header either yields a token of printable characters without spaces
// that the header ends with, or an ErrUnauthenticated; it never panics.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer mlt_abc", "bearer  x", "Basic x", "", "Bearer", "Bearer \xff", "Bearer a\tb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, err := auth.ParseBearer(header)
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("%q: %v is not ErrUnauthenticated", header, err)
			}
			return
		}
		if tok == "" || len(tok) > 256 || !strings.HasSuffix(header, tok) || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }) {
			t.Fatalf("%q gave the token %q", header, tok)
		}
	})
}
