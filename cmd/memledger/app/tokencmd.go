package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/ledger"
)

const tokenUsage = `usage:
  memledger token create --name NAME --role reader|writer|reviewer|admin [--on-behalf] [--expires 30d|RFC3339] [--note WHY]
      issues a token and prints its secret alone on stdout (T=$(memledger token create ...))
  memledger token list [--json]
  memledger token revoke --name NAME [--note WHY]
Each talks to the running service as an admin: --token, else MEMLEDGER_TOKEN, else <data>/admin.token.
  memledger token recover [--name NAME] [--data DIR] [--nats-url ...]
      with the service stopped: issues a new admin token on the data directory itself and
      writes its secret to <data>/admin.token (the way back when no admin token is at hand)
`

// tokenCmd is `memledger token create|list|revoke`: the token API of the running service.
func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, tokenUsage)
		return exitError(2)
	}
	sub, args := args[0], args[1:]
	if sub == "recover" {
		return tokenRecover(ctx, args, stdout, stderr)
	}
	fs := flag.NewFlagSet("memledger token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr, name, role, expires, note string
	var onBehalf, asJSON bool
	clientFlags(fs, &addr)
	switch sub {
	case "create":
		fs.StringVar(&name, "name", "", "the token's name, recorded as the actor of what it does (required)")
		fs.StringVar(&role, "role", "", "reader, writer, reviewer or admin (required)")
		fs.BoolVar(&onBehalf, "on-behalf", false, "the right to name another actor in X-Actor (a trusted proxy, a pipeline)")
		fs.StringVar(&expires, "expires", "", "when it stops working: a duration from now (90m, 12h, 30d) or an RFC 3339 time")
		fs.StringVar(&note, "note", "", "why it is issued (recorded on its event)")
	case "list":
		fs.BoolVar(&asJSON, "json", false, "print the service's JSON answer")
	case "revoke":
		fs.StringVar(&name, "name", "", "the token to revoke (required)")
		fs.StringVar(&note, "note", "", "why it is revoked (recorded on its event)")
	default:
		fmt.Fprintf(stderr, "memledger token: unknown subcommand %q\n\n%s", sub, tokenUsage)
		return exitError(2)
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "memledger token %s: unexpected arguments %q\n", sub, fs.Args())
		return exitError(2)
	}
	switch sub {
	case "create":
		if name == "" || role == "" {
			fmt.Fprint(stderr, "memledger token create: --name and --role are required\n")
			return exitError(2)
		}
		body := map[string]any{"name": name, "role": role, "on_behalf": onBehalf, "note": note}
		if expires != "" {
			at, err := expiryTime(expires, time.Now())
			if err != nil {
				return err
			}
			body["expires_at"] = at.UTC().Format(time.RFC3339)
		}
		data, err := requestJSON(ctx, addr, http.MethodPost, "/admin/tokens", "", body, http.StatusCreated)
		if err != nil {
			return err
		}
		var t struct {
			Secret string `json:"secret"`
		}
		if err := json.Unmarshal(data, &t); err != nil || t.Secret == "" {
			return fmt.Errorf("the service's answer holds no secret: %s", data)
		}
		fmt.Fprintln(stdout, t.Secret)
		fmt.Fprintf(stderr, "memledger token create: issued %s (%s); the secret above is shown only this once\n", name, role)
		return nil
	case "list":
		data, err := requestJSON(ctx, addr, http.MethodGet, "/admin/tokens", "", nil, http.StatusOK)
		if err != nil {
			return err
		}
		if asJSON {
			_, err = stdout.Write(append(data, '\n'))
			return err
		}
		var v struct {
			Tokens []struct {
				Name      string     `json:"name"`
				Role      string     `json:"role"`
				OnBehalf  bool       `json:"on_behalf"`
				ExpiresAt *time.Time `json:"expires_at"`
				IssuedBy  string     `json:"issued_by"`
				IssuedAt  time.Time  `json:"issued_at"`
				RevokedAt *time.Time `json:"revoked_at"`
			} `json:"tokens"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("the service's answer: %w", err)
		}
		w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tROLE\tON-BEHALF\tISSUED BY\tISSUED AT\tEXPIRES\tREVOKED")
		when := func(t *time.Time) string {
			if t == nil {
				return "-"
			}
			return t.UTC().Format(time.RFC3339)
		}
		for _, t := range v.Tokens {
			fmt.Fprintf(w, "%s\t%s\t%t\t%s\t%s\t%s\t%s\n", t.Name, t.Role, t.OnBehalf, t.IssuedBy,
				t.IssuedAt.UTC().Format(time.RFC3339), when(t.ExpiresAt), when(t.RevokedAt))
		}
		return w.Flush()
	default: // revoke
		if name == "" {
			fmt.Fprint(stderr, "memledger token revoke: --name is required\n")
			return exitError(2)
		}
		path := "/admin/tokens/" + url.PathEscape(name)
		if note != "" {
			path += "?" + url.Values{"note": {note}}.Encode()
		}
		if _, err := requestJSON(ctx, addr, http.MethodDelete, path, "", nil, http.StatusOK); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s: it is refused from the next request on\n", name)
		return nil
	}
}

// expiryTime reads --expires: a duration from now (Go's, or a number of days like 30d) or an
// RFC 3339 time.
func expiryTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return now.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("--expires %q: give a duration from now (90m, 12h, 30d) or an RFC 3339 time", s)
}

// tokenRecover is `memledger token recover`: with the service stopped, it opens the data
// directory itself (the data lock refuses while serve runs), issues an admin token recorded as
// issued by memledger on the data directory, and writes its secret to <data>/admin.token.
func tokenRecover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("memledger token recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.flags(fs, false)
	name := fs.String("name", "", "the new admin token's name (default admin-recovered-<UTC time>; a name is never reused)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "memledger token recover: unexpected arguments %q\n", fs.Args())
		return exitError(2)
	}
	if *name == "" {
		*name = "admin-recovered-" + strings.ToLower(time.Now().UTC().Format("20060102t150405"))
	}
	logger, err := cfg.logger(stderr)
	if err != nil {
		return err
	}
	cfg.Addr, cfg.NightlyAt, cfg.Auth, cfg.MetricsAddr = "127.0.0.1:0", "", AuthOn, ""
	m := NewMain(cfg, logger)
	m.recovering = true
	if err := m.Open(ctx); err != nil {
		return fmt.Errorf("open the data directory (stop the service first): %w", err)
	}
	secret := ledger.NewTokenSecret()
	path := cfg.AdminTokenPath()
	_, _, err = m.Ledger.IssueTokenSecret(ctx, ledger.Caller{Actor: "memledger"}, "recovered on the data directory by memledger token recover",
		domain.IssueToken{Name: *name, Role: domain.RoleAdmin}, secret)
	if err == nil {
		// The token is issued before the file is replaced: a failed issue leaves the file
		// as it was (perhaps holding a working token) rather than a secret no token has. A
		// crash in between loses only this new token's secret; run the command again.
		err = writeSecretFile(path, secret)
	}
	if err = errors.Join(err, m.Close()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "issued the admin token %s and wrote its secret to %s; start the service and use it as: Authorization: Bearer $(cat %s)\n", *name, path, path)
	return nil
}
