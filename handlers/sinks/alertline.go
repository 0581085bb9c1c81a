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
func AlertLine(a domain.Alert) string {
	oneLine := strings.NewReplacer("\r", `\r`, "\n", `\n`)
	line := fmt.Sprintf("[%s] [%s] %s: %s", a.Timestamp.UTC().Format("2006-01-02T15:04:05Z"),
		strings.ToUpper(string(a.Severity)), oneLine.Replace(a.Title), oneLine.Replace(a.Message))
	if len(a.Context) > 0 {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(a.Context)
		line += " " + truncate(strings.TrimSuffix(buf.String(), "\n"), MaxLineContext)
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
