package domain

import (
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends m's JSON to b: the bytes encoding/json's Marshal gives for it, written
// without reflection. Every stored memory and audit snapshot, and every write's answer, is one
// of these; the projections write several per event. A test holds it to Marshal's output.
func (m Memory) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = AppendJSONString(b, m.ID)
	b, err := appendMemoryFields(append(b, ','), m.MemoryType, m.Content, m.Project, m.Status, m.Confidence)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"reference_count":`...)
	b = strconv.AppendInt(b, int64(m.ReferenceCount), 10)
	b = append(b, `,"last_referenced_at":`...)
	if b, err = appendJSONTimePtr(b, m.LastReferencedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"source_chunk_id":`...)
	b = AppendJSONString(b, m.SourceChunkID)
	b = append(b, `,"domain_tags":`...)
	b = appendJSONStrings(b, m.DomainTags)
	b = append(b, `,"valid_until":`...)
	if b, err = appendJSONTimePtr(b, m.ValidUntil); err != nil {
		return nil, err
	}
	b = append(b, `,"superseded_by":`...)
	b = AppendJSONString(b, m.SupersededBy)
	b = append(b, `,"created_at":`...)
	if b, err = AppendJSONTime(b, m.CreatedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"updated_at":`...)
	if b, err = AppendJSONTime(b, m.UpdatedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, m.Seq, 10)
	return append(b, '}'), nil
}

// AppendJSON appends the payload's JSON to b: the bytes encoding/json's Marshal gives for it,
// written without reflection (every memory's first event is one).
func (p MemoryCreated) AppendJSON(b []byte) ([]byte, error) {
	b, err := appendMemoryFields(append(b, '{'), p.MemoryType, p.Content, p.Project, p.Status, p.Confidence)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"source_chunk_id":`...)
	b = AppendJSONString(b, p.SourceChunkID)
	b = append(b, `,"domain_tags":`...)
	b = appendJSONStrings(b, p.DomainTags)
	b = append(b, `,"valid_until":`...)
	if b, err = appendJSONTimePtr(b, p.ValidUntil); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendMemoryFields appends the fields a memory and its creation share, in their order.
func appendMemoryFields(b []byte, typ MemoryType, content, project string, status Status, confidence float64) ([]byte, error) {
	b = append(b, `"memory_type":`...)
	b = AppendJSONString(b, string(typ))
	b = append(b, `,"content":`...)
	b = AppendJSONString(b, content)
	b = append(b, `,"project":`...)
	b = AppendJSONString(b, project)
	b = append(b, `,"status":`...)
	b = AppendJSONString(b, string(status))
	b = append(b, `,"confidence":`...)
	return appendJSONFloat(b, confidence)
}

// appendJSONStrings appends ss as a JSON array of strings (null when nil, as Marshal does).
func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string exactly as encoding/json writes it: <, > and &
// escaped for HTML, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendJSONTime appends t as encoding/json writes a time.Time (RFC 3339 with the
// nanoseconds it has), refusing the same times.
func AppendJSONTime(b []byte, t time.Time) ([]byte, error) {
	b, err := t.AppendText(append(b, '"'))
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

func appendJSONTimePtr(b []byte, t *time.Time) ([]byte, error) {
	if t == nil {
		return append(b, "null"...), nil
	}
	return AppendJSONTime(b, *t)
}

// appendJSONFloat appends f as encoding/json writes a float64.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, errors.New("a confidence that is not a finite number has no JSON form")
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 is written e-9.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}
