package atocore

import (
	"fmt"
	"strings"
	"time"
)

// timeLayouts are the forms AtoCore's times take: SQLite's CURRENT_TIMESTAMP (UTC, with or
// without fractional seconds) and ISO 8601 as Python's isoformat writes it, with or without
// an offset (without one it is UTC).
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	time.RFC3339Nano,
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseTime reads an AtoCore time as UTC.
func parseTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a SQLite time (YYYY-MM-DD HH:MM:SS) nor ISO 8601", s)
}
