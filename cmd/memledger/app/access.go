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

// ensureAdminToken issues the first admin token when the ledger has no token at all, and
// writes its secret to <data>/admin.token (0600).
func (m *Main) ensureAdminToken(ctx context.Context) error {
	// The log says whether a token was ever issued: the projections may still be catching up
	// (the service answers meanwhile), and a start must not wait for them.
	last, err := m.Store.LastSeqOf(ctx, eventstore.SubjectPrefix+domain.KindToken+".>")
	if err != nil || last > 0 {
		return err
	}
	path := m.Config.AdminTokenPath()
	secret, _, err := m.Ledger.IssueToken(ctx, ledger.Caller{Actor: "memledger"}, "issued at the first start",
		domain.IssueToken{Name: AdminTokenName, Role: domain.RoleAdmin})
	if err != nil {
		return fmt.Errorf("first admin token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, dataFileMode)
	if err != nil {
		return fmt.Errorf("first admin token: %w", err)
	}
	_, err = f.WriteString(secret + "\n")
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("first admin token: %w", err)
	}
	m.Logger.Info("issued the first admin token; use it as: Authorization: Bearer $(cat "+path+")", "path", path)
	return nil
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
