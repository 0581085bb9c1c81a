package sinks

import (
	"encoding/json"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/memledger/memledger/domain"
)

// discordHosts are the hosts Discord serves webhooks on.
var discordHosts = []string{"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com",
	"ptb.discordapp.com", "canary.discordapp.com", "www.discord.com", "www.discordapp.com"}

// discordWebhookPath is a webhook's path: /api/webhooks/<id>/<token>, optionally with an API
// version (/api/v10/webhooks/...), and a trailing slash. Paths ending in /slack or /github
// take those services' payloads, not an embed, and are not matched.
var discordWebhookPath = regexp.MustCompile(`^/api(/v[0-9]+)?/webhooks/[0-9]+/[A-Za-z0-9_.-]+/?$`)

// IsDiscordWebhook reports whether u is a Discord webhook URL, in any of its forms:
// discord.com, discordapp.com, ptb. and canary., with or without an API version.
func IsDiscordWebhook(u string) bool {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") {
		return false
	}
	return slices.Contains(discordHosts, strings.ToLower(p.Hostname())) && discordWebhookPath.MatchString(p.Path)
}

// discordText is s for an embed's name or value: Discord refuses empty (or blank) ones.
func discordText(s string, n int) string {
	if strings.TrimSpace(s) == "" {
		return "(empty)"
	}
	return truncate(s, n)
}

// Discord embed colours by severity.
var discordColours = map[domain.Severity]int{
	domain.SeverityInfo:     0x3498DB,
	domain.SeverityWarning:  0xF1C40F,
	domain.SeverityCritical: 0xE74C3C,
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	Color       int            `json:"color"`
	Fields      []discordField `json:"fields,omitempty"`
	Timestamp   string         `json:"timestamp"`
}

// DiscordPayload is the body a Discord webhook gets for a: one embed, within Discord's limits.
func DiscordPayload(a domain.Alert) map[string]any {
	e := discordEmbed{
		Title:       truncate("["+strings.ToUpper(string(a.Severity))+"] "+a.Title, 256),
		Description: truncate(a.Message, 4096),
		Color:       discordColours[a.Severity],
		Timestamp:   a.Timestamp.UTC().Format(time.RFC3339),
	}
	for _, k := range sortedKeys(a.Context) {
		if len(e.Fields) == 25 {
			break
		}
		v, ok := a.Context[k].(string)
		if !ok {
			data, _ := json.Marshal(a.Context[k])
			v = string(data)
		}
		// Discord refuses a field whose name or value is empty (or blank) with a 400.
		e.Fields = append(e.Fields, discordField{Name: discordText(k, 256), Value: discordText(v, 1024), Inline: true})
	}
	// Discord refuses an embed whose texts add up to more than 6,000 characters.
	size := func() int {
		n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
		for _, f := range e.Fields {
			n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
		}
		return n
	}
	for size() > discordMaxTotal && len(e.Fields) > 0 {
		e.Fields = e.Fields[:len(e.Fields)-1]
	}
	if over := size() - discordMaxTotal; over > 0 {
		e.Description = truncate(e.Description, utf8.RuneCountInString(e.Description)-over)
	}
	return map[string]any{"embeds": []discordEmbed{e}}
}

// discordMaxTotal is Discord's limit on the characters of one embed.
const discordMaxTotal = 6000

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
