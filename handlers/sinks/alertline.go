package sinks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/memledger/memledger/domain"
)

// MaxLineContext is how many characters of an alert's context JSON its log line keeps.
const MaxLineContext = 500

// AlertLine formats an alert as one line of the alert log:
// [2026-04-16T21:54:10Z] [WARNING] title: message {"context":"as JSON, cut at 500 chars"}
// Control characters in the title and message are escaped (see escapeLine).
func AlertLine(a domain.Alert) string {
	line := fmt.Sprintf("[%s] [%s] %s: %s", a.Timestamp.UTC().Format("2006-01-02T15:04:05Z"),
		strings.ToUpper(string(a.Severity)), escapeLine(a.Title, true), escapeLine(a.Message, true))
	if len(a.Context) > 0 {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(a.Context)
		// JSON escapes the C0 controls and U+2028/9 already; escapeLine takes what it leaves
		// (DEL, C1, the bidirectional controls), so the context stays JSON of the same value.
		line += " " + escapeLine(truncate(strings.TrimSuffix(buf.String(), "\n"), MaxLineContext), false)
	}
	return line
}

// truncate cuts s to at most n characters.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// escapeLine makes s safe for one line of the alert log: line breaks, tabs and every other
// control character (C0, DEL, C1), the Unicode line and paragraph separators and the
// bidirectional overrides are written as escapes (\n, \r, \t, \u001b, \u2028, ...), so that a
// title cannot end a line, forge another, or drive the terminal the log is read on. With
// backslash, a backslash is doubled so that the escapes cannot be confused with text.
func escapeLine(s string, backslash bool) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return needsEscape(r) || (backslash && r == '\\') }) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for _, r := range s {
		switch {
		case r == '\\' && backslash:
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// needsEscape reports whether r may not stand as it is in a line of the alert log.
func needsEscape(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c: // bidi controls
		return true
	case r == utf8.RuneError, r == 0xfeff:
		return true
	}
	return false
}
