package handlers

import (
	"errors"
	"html/template"
	"math"
	"net/http"
	"strings"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/handlers/auth"
)

type issueTokenRequest struct {
	Name      string       `json:"name"`
	Role      domain.Role  `json:"role"`
	OnBehalf  bool         `json:"on_behalf"`
	ExpiresAt optionalTime `json:"expires_at"`
	Note      string       `json:"note"`
}

type issuedToken struct {
	domain.Token
	// Secret is shown once, here; only its digest is kept.
	Secret string `json:"secret"`
}

func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	var req issueTokenRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := plainCaller(r, DefaultActor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	secret, res, err := s.Ledger.IssueToken(r.Context(), c, req.Note, domain.IssueToken{
		Name: req.Name, Role: req.Role, OnBehalf: req.OnBehalf, ExpiresAt: req.ExpiresAt.Value})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.DB.Token(res.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/tokens/"+t.Name)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, issuedToken{Token: t, Secret: secret})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.DB.ListTokens()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": ts})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	c, err := plainCaller(r, DefaultActor)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.Ledger.RevokeToken(r.Context(), c, r.URL.Query().Get("note"), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.DB.Token(res.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

var signInTemplate = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · memledger</title>
<link rel="stylesheet" href="/ui/static/app.css"></head>
<body><main><h1>Sign in</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/ui/signin">
<label>Token <input type="password" name="token" id="token" autocomplete="off" required></label>
<button type="submit" id="signin">Sign in</button>
</form></main></body></html>
`))

func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	signInTemplate.Execute(w, map[string]string{"Error": ""})
}

// signIn checks the token a person pasted and starts a session for it: the HttpOnly,
// SameSite=Strict cookie holds the signed session (its token's name, a random id, its end),
// which the pages then authenticate with on any instance; the secret stays in no cookie.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		s.problem(w, r, http.StatusBadRequest, "the sign-in form could not be read: "+err.Error(), "token")
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	if s.Auth == nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	c, id, expires, err := s.Auth.SignIn(secret)
	if err != nil {
		status := http.StatusUnauthorized
		if !errors.Is(err, auth.ErrUnauthenticated) {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		signInTemplate.Execute(w, map[string]string{"Error": "That token is not accepted: " + strings.TrimPrefix(err.Error(), "unauthenticated: ")})
		return
	}
	// The session's end is in whole seconds, at most one before SessionTTL from now.
	http.SetCookie(w, sessionCookie(r, id, int(math.Ceil(expires.Sub(s.Now()).Seconds()))))
	w.Header().Set("Cache-Control", "no-store")
	s.Logger.Info("signed in", "principal", c.Principal, "role", c.Role)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// signOut ends the session (in the log, so on every instance and after a restart, not only
// in the browser) and clears its cookie. A sign-out that cannot be recorded (the service
// cannot write) clears the cookie all the same and answers the error that says why: the
// session then stays valid until it ends by itself.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, sessionCookie(r, "", -1))
	if ck, err := r.Cookie(auth.SessionCookie); err == nil && s.Auth != nil {
		if err := s.Auth.SignOut(r.Context(), ck.Value); err != nil {
			s.Logger.Error("a sign-out could not be recorded: the session stays valid until it ends by itself", "err", err)
			s.fail(w, r, err)
			return
		}
	}
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
}

// sessionCookie is the session cookie holding id for maxAge seconds (-1 clears it). It is
// Secure when the request came over TLS, or through a proxy that says it did
// (X-Forwarded-Proto or Forwarded proto=https): a client that forges that header only keeps
// its own cookie from being sent back over plain HTTP, so no proxy needs to be trusted for it.
func sessionCookie(r *http.Request, id string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: auth.SessionCookie, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: overHTTPS(r), MaxAge: maxAge}
}

// overHTTPS reports whether r came over TLS, here or at a proxy in front that says so.
func overHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if p, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ","); strings.EqualFold(strings.TrimSpace(p), "https") {
		return true
	}
	first, _, _ := strings.Cut(r.Header.Get("Forwarded"), ",")
	for part := range strings.SplitSeq(first, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(k, "proto") && strings.EqualFold(strings.Trim(v, `"`), "https") {
			return true
		}
	}
	return false
}
