package ledger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// TokenKey digests token secrets for the log and the tokens projection: HMAC-SHA256 under a
// server key that is never in the log (derived from the key file beside it, see
// subscriptions.Keyring.Derive). Whoever holds the log, a backup of it or an export, but not
// the key, cannot test a guessed or leaked secret against a digest. Every instance on one log
// needs the same key, or the tokens issued on another are unknown to it.
type TokenKey struct {
	key []byte
	// ID names the key (a digest of the key file's key, not the key): token.issued records
	// it, so that an instance with another key says which one a token needs.
	ID string
	// File is where the key is kept, for the messages that say which file to copy.
	File string
}

// NewTokenKey returns the token key for a 32-byte key named id, kept in file.
func NewTokenKey(key []byte, id, file string) (*TokenKey, error) {
	if len(key) != 32 || id == "" {
		return nil, fmt.Errorf("token key: %d bytes named %q, want 32 bytes and a name", len(key), id)
	}
	return &TokenKey{key: key, ID: id, File: file}, nil
}

// Digest is the hex HMAC-SHA256 of secret under the key (domain.DigestHMAC).
func (k *TokenKey) Digest(secret string) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil))
}

// LegacyTokenDigest is the hex SHA-256 of secret (domain.DigestSHA256): the digest of the tokens
// issued before the keyed one, still looked up so that they keep working. No token is issued
// with it any more.
func LegacyTokenDigest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
