package subscriptions

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeyFileName is the subscription secrets' key file in the data directory.
const KeyFileName = "subscription-secrets.key"

// Keyring seals the subscriptions' secrets for the log and opens them for delivery. The log is
// forever and is read by many (backups, exports, the change feed), so a secret is never stored
// in it in the clear: the registration event holds it sealed with AES-256-GCM under a key that
// lives only in a file beside the log (KeyFileName, mode 0600), bound to its subscription's id.
// Whoever holds the log alone learns nothing of the secrets; deleting the key file makes every
// sealed secret unreadable for good (their subscriptions then say so and must be registered
// again); every memledger process on one log needs a copy of the same file.
type Keyring struct {
	key []byte
	// ID names the key (a digest of it, not the key): sealed secrets carry it, so that a
	// process with another key says which one the secret needs.
	ID string
}

// sealedPrefix starts every sealed secret; the format is v1:<key id>:<base64 nonce+ciphertext>.
const sealedPrefix = "v1:"

// ErrWrongKey is a sealed secret this keyring cannot open.
var ErrWrongKey = errors.New("sealed with another key")

// LoadKeyring reads the key file at path, creating it with a new random key when it does not
// exist.
func LoadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("subscription key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("subscription key: %w", err)
		}
		// Written whole beside it, then linked into place: a process starting at the same time
		// sees either no file or the whole key (never one being written), and only one
		// process's key is taken.
		f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".new-*")
		if err != nil {
			return nil, fmt.Errorf("subscription key: %w", err)
		}
		defer os.Remove(f.Name())
		_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
		serr := f.Sync()
		if err := errors.Join(werr, serr, f.Close()); err != nil {
			return nil, fmt.Errorf("subscription key %s: %w", path, err)
		}
		if err := os.Link(f.Name(), path); err != nil {
			if errors.Is(err, os.ErrExist) {
				return LoadKeyring(path)
			}
			return nil, fmt.Errorf("subscription key: %w", err)
		}
		return NewKeyring(key)
	}
	if err != nil {
		return nil, fmt.Errorf("subscription key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("subscription key %s: not 64 hex digits", path)
	}
	return NewKeyring(key)
}

// NewKeyring returns a keyring for a 32-byte key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("subscription key: %d bytes, want 32", len(key))
	}
	sum := sha256.Sum256(append([]byte("memledger subscription key id\x00"), key...))
	return &Keyring{key: key, ID: hex.EncodeToString(sum[:8])}, nil
}

// Derive returns a 32-byte key for another use of this key file, named by label (the
// HMAC-SHA256 of label under the key): the token digests and the session cookies are keyed
// from the same file, so that an operator has one file to keep and to copy to every instance,
// and no derived key tells anything of the others or of the sealing key.
func (k *Keyring) Derive(label string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("memledger derived key\x00" + label))
	return m.Sum(nil)
}

func (k *Keyring) aead() cipher.AEAD {
	block, err := aes.NewCipher(k.key)
	if err != nil {
		panic(err) // the key's length is checked in NewKeyring
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return g
}

// Seal returns secret sealed for the subscription id.
func (k *Keyring) Seal(id string, secret []byte) (string, error) {
	g := k.aead()
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal secret: %w", err)
	}
	out := g.Seal(nonce, nonce, secret, []byte(id))
	return sealedPrefix + k.ID + ":" + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open returns the secret sealed for the subscription id.
func (k *Keyring) Open(id, sealed string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	keyID, data, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return nil, errors.New("open secret: not a sealed secret")
	}
	if keyID != k.ID {
		return nil, fmt.Errorf("open secret: %w %s; this process has key %s (see %s)", ErrWrongKey, keyID, k.ID, KeyFileName)
	}
	raw, err := base64.RawStdEncoding.DecodeString(data)
	g := k.aead()
	if err != nil || len(raw) < g.NonceSize() {
		return nil, errors.New("open secret: damaged")
	}
	secret, err := g.Open(nil, raw[:g.NonceSize()], raw[g.NonceSize():], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("open secret: does not open for subscription %s: %w", id, err)
	}
	return secret, nil
}

// SealSecret seals secret for subscription id and names the key: what the command layer asks
// of a sealer.
func (k *Keyring) SealSecret(id string, secret []byte) (sealed, keyID string, err error) {
	sealed, err = k.Seal(id, secret)
	return sealed, k.ID, err
}
