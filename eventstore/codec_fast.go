package eventstore

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/memledger/memledger/domain"
)

// decodeFast reads an event stored as encode writes it, without reflection: the envelope's
// fields in encode's order, no space between tokens, and a memory.created payload as
// domain.MemoryCreated.AppendJSON writes it (other payloads are read by encoding/json). Every
// event is decoded on the write's own path (for the runner) and again by each follower of the
// log, and encoding/json's reflection and its validation pass were a tenth of a write's CPU.
// Anything else (another order, a space, a key in other case, an escape it does not read, an
// older version, a payload that does not decode) is false, and codec.decode reads the event
// with encoding/json instead: what decodeFast returns when it returns true is what that would
// (a fuzz test holds the two together).
func (c *codec) decodeFast(raw []byte, seq uint64) (domain.Event, bool) {
	r := jsonReader{b: raw, ok: true}
	ev := domain.Event{Seq: seq}
	r.lit(`{"id":`)
	ev.ID = r.str()
	r.lit(`,"type":`)
	ev.Type = r.str()
	r.lit(`,"version":`)
	version := r.int()
	r.lit(`,"aggregate_id":`)
	ev.AggregateID = r.str()
	r.lit(`,"actor":`)
	ev.Actor = r.str()
	r.lit(`,"principal":`)
	ev.Principal = r.str()
	if r.next(`,"note":`) {
		ev.Note = r.str()
	}
	if r.next(`,"correlation_id":`) {
		ev.CorrelationID = r.str()
	}
	r.lit(`,"time":`)
	ev.Time = r.time().UTC()
	r.lit(`,"data":`)
	if !r.ok || len(raw) < r.i+2 || raw[len(raw)-1] != '}' {
		return ev, false
	}
	data := raw[r.i : len(raw)-1]
	t, known := c.types[ev.Type]
	// An older version is upcast, an unknown type's payload is not decoded but must be
	// valid JSON: encoding/json reads both.
	if !known || version != t.version {
		return ev, false
	}
	if ev.Type == domain.EventMemoryCreated {
		p, ok := decodeMemoryCreated(data)
		if !ok {
			return ev, false
		}
		ev.Data = p
		return ev, true
	}
	// encoding/json refuses JSON nested more than 10,000 levels deep, the envelope being one:
	// a payload shorter than that cannot be nested so deep, a longer one is read with it.
	if len(data) >= maxPayloadDepth {
		return ev, false
	}
	p, err := t.decode(data)
	if err != nil {
		return ev, false
	}
	ev.Data = p
	return ev, true
}

// maxPayloadDepth is one less than encoding/json's deepest nesting.
const maxPayloadDepth = 10000 - 1

// decodeMemoryCreated reads a memory.created payload as its AppendJSON writes it.
func decodeMemoryCreated(data []byte) (domain.MemoryCreated, bool) {
	r := jsonReader{b: data, ok: true}
	var p domain.MemoryCreated
	r.lit(`{"memory_type":`)
	p.MemoryType = domain.MemoryType(r.str())
	r.lit(`,"content":`)
	p.Content = r.str()
	r.lit(`,"project":`)
	p.Project = r.str()
	r.lit(`,"status":`)
	p.Status = domain.Status(r.str())
	r.lit(`,"confidence":`)
	p.Confidence = r.float()
	r.lit(`,"source_chunk_id":`)
	p.SourceChunkID = r.str()
	r.lit(`,"domain_tags":`)
	p.DomainTags = r.strs()
	r.lit(`,"valid_until":`)
	if !r.next("null") {
		t := r.time()
		p.ValidUntil = &t
	}
	r.lit(`}`)
	return p, r.ok && r.i == len(data)
}

// jsonReader reads JSON of a known shape from b at i; any departure from it clears ok, after
// which every read returns a zero value.
type jsonReader struct {
	b  []byte
	i  int
	ok bool
}

// lit reads the exact bytes s.
func (r *jsonReader) lit(s string) {
	if !r.next(s) {
		r.ok = false
	}
}

// next reads the exact bytes s if they come next, and reports whether they did.
func (r *jsonReader) next(s string) bool {
	if !r.ok || len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return false
	}
	r.i += len(s)
	return true
}

// str reads a string. It reads the escapes encoding/json writes but the \u escapes of
// surrogates, and valid UTF-8; a control character, invalid UTF-8 (which encoding/json would
// replace) or a surrogate's escape clears ok.
func (r *jsonReader) str() string {
	if !r.ok || r.i >= len(r.b) || r.b[r.i] != '"' {
		r.ok = false
		return ""
	}
	start := r.i + 1
	ascii := true
	for j := start; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			s := r.b[start:j]
			if !ascii && !utf8.Valid(s) {
				r.ok = false
				return ""
			}
			r.i = j + 1
			return string(s)
		case c == '\\':
			return r.escaped(start)
		case c < 0x20:
			r.ok = false
			return ""
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	r.ok = false
	return ""
}

// escaped reads the rest of a string that holds an escape, from start (after its quote).
func (r *jsonReader) escaped(start int) string {
	out := make([]byte, 0, 64)
	plain := start // the start of the bytes not yet copied
	for j := start; j < len(r.b); {
		c := r.b[j]
		switch {
		case c == '"':
			out = append(out, r.b[plain:j]...)
			if !utf8.Valid(out) {
				r.ok = false
				return ""
			}
			r.i = j + 1
			return string(out)
		case c < 0x20:
			r.ok = false
			return ""
		case c != '\\':
			j++
			continue
		}
		out = append(out, r.b[plain:j]...)
		if j+1 >= len(r.b) {
			r.ok = false
			return ""
		}
		switch e := r.b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if j+6 > len(r.b) {
				r.ok = false
				return ""
			}
			v, err := strconv.ParseUint(string(r.b[j+2:j+6]), 16, 16)
			if err != nil || (v >= 0xD800 && v <= 0xDFFF) {
				r.ok = false
				return ""
			}
			out = utf8.AppendRune(out, rune(v))
			j += 6
			plain = j
			continue
		default:
			r.ok = false
			return ""
		}
		j += 2
		plain = j
	}
	r.ok = false
	return ""
}

// strs reads null (nil) or an array of strings ([] is an empty slice, as encoding/json reads it).
func (r *jsonReader) strs() []string {
	if r.next("null") {
		return nil
	}
	r.lit("[")
	out := []string{}
	if r.next("]") {
		return out
	}
	for r.ok {
		out = append(out, r.str())
		if r.next("]") {
			return out
		}
		r.lit(",")
	}
	return nil
}

// number reads the bytes of a JSON number.
func (r *jsonReader) number() []byte {
	if !r.ok {
		return nil
	}
	b, i := r.b, r.i
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		r.ok = false
		return nil
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			r.ok = false
			return nil
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			r.ok = false
			return nil
		}
	}
	n := b[r.i:i]
	r.i = i
	return n
}

// float reads a number as a float64, as encoding/json does.
func (r *jsonReader) float() float64 {
	n := r.number()
	if !r.ok {
		return 0
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		r.ok = false
		return 0
	}
	return f
}

// int reads a number as an int, as encoding/json does (an integer that fits).
func (r *jsonReader) int() int {
	n := r.number()
	if !r.ok {
		return 0
	}
	v, err := strconv.Atoi(string(n))
	if err != nil {
		r.ok = false
		return 0
	}
	return v
}

// time reads a string as time.Time's UnmarshalJSON does.
func (r *jsonReader) time() time.Time {
	start := r.i
	r.str()
	var t time.Time
	if !r.ok {
		return t
	}
	if err := t.UnmarshalJSON(r.b[start:r.i]); err != nil {
		r.ok = false
	}
	return t
}
