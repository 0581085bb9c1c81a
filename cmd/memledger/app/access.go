package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
	"github.com/memledger/memledger/handlers/ledger"
)

// Auth modes.
const (
	AuthOn  = "on"
	AuthOff = "off"
)

// AdminTokenName is the name of the token the first start issues.
const AdminTokenName = "admin"

// AdminTokenPath is where the first start writes the admin token.
func (c Config) AdminTokenPath() string { return filepath.Join(c.Data, "admin.token") }

// checkAuth refuses --auth off on an address other hosts can reach.
func (c Config) checkAuth() error {
	switch c.Auth {
	case AuthOn:
		return nil
	case AuthOff:
		host, _, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return fmt.Errorf("addr %q: %w", c.Addr, err)
		}
		if !isLoopback(host) {
			return fmt.Errorf("--auth off is allowed only on a loopback address (127.0.0.1, ::1, localhost), not on %s: anyone who can reach it could write and approve memories in anyone's name", c.Addr)
		}
		return nil
	}
	return fmt.Errorf("auth must be %q or %q, got %q", AuthOn, AuthOff, c.Auth)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ensureAdminToken issues the first admin token when the ledger has no token at all. Its
// secret is in <data>/admin.token (0600, written to a temporary file, synced and renamed)
// before the token is issued: a crash in between leaves a file whose token was never issued,
// which the next start replaces, never an admin token whose secret is lost. A ledger that
// has tokens but no admin.token is told how to get an admin token back (token recover).
func (m *Main) ensureAdminToken(ctx context.Context) error {
	// The log says whether a token was ever issued: the projections may still be catching up
	// (the service answers meanwhile), and a start must not wait for them.
	last, err := m.Store.LastSeqOf(ctx, eventstore.SubjectPrefix+domain.KindToken+".>")
	if err != nil {
		return err
	}
	path := m.Config.AdminTokenPath()
	if last > 0 {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && !m.recovering {
			m.Logger.Warn("tokens were issued but "+path+" is missing: if no admin token is at hand, stop the service and run `memledger token recover --data "+m.Config.Data+"`, which issues a new admin token and writes it there",
				"path", path)
		}
		return nil
	}
	if m.BeforeAdminToken != nil {
		m.BeforeAdminToken()
	}
	secret := ledger.NewTokenSecret()
	if err := writeSecretFile(path, secret); err != nil {
		return fmt.Errorf("first admin token: %w", err)
	}
	_, _, err = m.Ledger.IssueTokenSecret(ctx, ledger.Caller{Actor: "memledger"}, "issued at the first start",
		domain.IssueToken{Name: AdminTokenName, Role: domain.RoleAdmin}, secret)
	if errors.Is(err, domain.ErrConflict) {
		// Another instance on the same log started at the same time and issued the admin
		// token first: the file written here holds a secret no token has.
		if rerr := os.Remove(path); rerr != nil {
			return fmt.Errorf("first admin token: another instance issued it first, and %s, which holds no issued token's secret, could not be removed: %w", path, rerr)
		}
		m.Logger.Warn("another instance on this log issued the first admin token at the same time as this one: its secret is in that instance's admin.token; this instance wrote none ("+path+" removed). Copy that file here to use the token commands on this instance",
			"path", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("first admin token: %w", err)
	}
	m.Logger.Info("issued the first admin token; use it as: Authorization: Bearer $(cat "+path+")", "path", path)
	return nil
}

// writeSecretFile replaces path with a file (0600) holding secret and a line break, through a
// temporary file beside it that is synced before it is renamed, and the directory synced
// after: path holds the old content or the new, whole, on disk.
func writeSecretFile(path, secret string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(dataFileMode)
	if err == nil {
		_, err = f.WriteString(secret + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// allowedHosts are the hostnames the HTTP API answers to: the loopback names, --addr's host
// (unless it is a wildcard) and --allowed-hosts.
func (c Config) allowedHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(c.Addr); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	for _, h := range strings.Split(c.AllowedHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// metricsHosts are the hostnames the metrics listener answers to: the API's, and
// --metrics-addr's host (unless it is a wildcard).
func (c Config) metricsHosts() []string {
	hosts := c.allowedHosts()
	if h, _, err := net.SplitHostPort(c.MetricsAddr); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	return hosts
}
