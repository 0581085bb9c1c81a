package handlers

import (
	"net"
	"net/http"
	"strings"
)

// pageSecurityHeaders are sent with every answer: no page of memledger may be framed by
// another site (clickjacking), scripts and styles come only from memledger's own files.
var pageSecurityHeaders = map[string]string{
	"X-Frame-Options":         "DENY",
	"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
	"X-Content-Type-Options":  "nosniff",
}

// hostAllowed reports whether the request's Host names one this server answers to: the
// hostname (without port) is one of hosts. An empty hosts allows every Host.
func hostAllowed(hosts []string, host string) bool {
	if len(hosts) == 0 {
		return true
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.Trim(name, "[]"), ".")
	for _, h := range hosts {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// hostIsLocalAddr reports whether the request's Host is the IP address the connection came
// in on (a scraper or client on a wildcard listener that uses the machine's address). A DNS
// rebinding page cannot send it: its Host is the attacker's name, never an IP literal.
func hostIsLocalAddr(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	lh, _, err := net.SplitHostPort(local.String())
	if err != nil {
		return false
	}
	name := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		name = h
	}
	ip, lip := net.ParseIP(strings.Trim(name, "[]")), net.ParseIP(lh)
	return ip != nil && lip != nil && ip.Equal(lip)
}

// guardHost refuses a request whose Host the server does not answer to (a DNS rebinding page
// sends its own name), and sets the security headers; it reports whether to go on.
func (s *Server) guardHost(w http.ResponseWriter, r *http.Request) bool {
	for k, v := range pageSecurityHeaders {
		w.Header().Set(k, v)
	}
	if hostAllowed(s.AllowedHosts, r.Host) || hostIsLocalAddr(r) {
		return true
	}
	s.problem(w, r, http.StatusMisdirectedRequest, "Host "+quoteHost(r.Host)+" is not one this server answers to; add it with --allowed-hosts (behind a reverse proxy, the name clients use)", "Host")
	return false
}

func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100]
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < ' ' || r == '"' || r > '~' {
			return '?'
		}
		return r
	}, h) + `"`
}
