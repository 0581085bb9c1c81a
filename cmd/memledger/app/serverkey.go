package app

import (
	"github.com/memledger/memledger/handlers/ledger"
	"github.com/memledger/memledger/handlers/subscriptions"
)

// The labels of the keys derived from the server key file (--subscription-key-file, default
// <data>/subscription-secrets.key): the subscriptions' secrets are sealed with the file's key
// itself, the token digests and the session cookies are keyed with these, so that an operator
// keeps and copies one file.
const (
	tokenKeyLabel   = "token digest"
	sessionKeyLabel = "session cookie"
)

// LoadTokenKey reads the server key file at path (made when it does not exist) and returns the
// token key derived from it.
func LoadTokenKey(path string) (*ledger.TokenKey, error) {
	keys, err := subscriptions.LoadKeyring(path)
	if err != nil {
		return nil, err
	}
	return tokenKey(keys, path)
}

func tokenKey(keys *subscriptions.Keyring, path string) (*ledger.TokenKey, error) {
	return ledger.NewTokenKey(keys.Derive(tokenKeyLabel), keys.ID, path)
}
