package projections

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// How a memory's audit entries are stored (memories projection version 4). An entry's JSON is
// its head (every field but the snapshots) with the snapshot before and the snapshot after the
// change spliced in after its timestamp. The snapshot after an entry is the snapshot before the
// next entry of the same memory, and the last entry's is the memory's current state: so an entry
// stores neither in full, only the change that makes its before from its after (a diff of the
// snapshots' top-level members), and its after is found from the next entries' diffs, back
// from the current state. Every auditKeyframe-th entry of a memory also stores its after in
// full, so that no read folds more than auditKeyframe-1 diffs. A memory created and never
// changed thus costs one copy of its state instead of three, one changed five times one copy
// and six diffs instead of eleven copies.
//
// A stored entry is:
//
//	uvarint n      the entry's index among its memory's entries (0 for the creation)
//	uvarint split  where the snapshots go in the head
//	uvarint len    the head's length, then the head: the entry's JSON without the snapshots
//	byte    1 when the after is stored in full, then its uvarint length and the snapshot; else 0
//	...            the rest: the before as a diff against the after (see appendDiff)

// auditKeyframe is how often a memory's entry stores its snapshot after in full.
const auditKeyframe = 8

// auditRecord is a stored audit entry, decoded.
type auditRecord struct {
	n     uint64
	head  []byte
	split int
	// after is the snapshot after the change when the entry stores it (nil: see the next entry).
	after []byte
	// before is the diff that makes the snapshot before from the one after.
	before []byte
}

var errAuditRecord = errors.New("malformed audit entry")

// appendAuditRecord appends the stored form of e, the n-th entry of its memory, to b.
func appendAuditRecord(b []byte, e AuditEntry, n uint64) ([]byte, error) {
	head, split, err := appendAuditHead(nil, e)
	if err != nil {
		return nil, err
	}
	b = binary.AppendUvarint(b, n)
	b = binary.AppendUvarint(b, uint64(split))
	b = binary.AppendUvarint(b, uint64(len(head)))
	b = append(b, head...)
	if n > 0 && n%auditKeyframe == 0 {
		b = append(b, 1)
		b = binary.AppendUvarint(b, uint64(len(e.After)))
		b = append(b, e.After...)
	} else {
		b = append(b, 0)
	}
	return appendDiff(b, e.Before, e.After), nil
}

// decodeAuditRecord decodes a stored entry; the record's slices point into data.
func decodeAuditRecord(data []byte) (auditRecord, error) {
	var r auditRecord
	next := func() (uint64, bool) {
		v, k := binary.Uvarint(data)
		if k <= 0 {
			return 0, false
		}
		data = data[k:]
		return v, true
	}
	n, ok1 := next()
	split, ok2 := next()
	size, ok3 := next()
	if !ok1 || !ok2 || !ok3 || size > uint64(len(data)) || split > size || int(size) >= len(data) {
		return r, errAuditRecord
	}
	r.n, r.split, r.head = n, int(split), data[:size]
	data = data[size:]
	full := data[0]
	data = data[1:]
	if full == 1 {
		size, ok := next()
		if !ok || size > uint64(len(data)) {
			return r, errAuditRecord
		}
		r.after, data = data[:size], data[size:]
	}
	r.before = data
	return r, nil
}

// entry is the record's JSON with the snapshots before and after.
func (r auditRecord) entry(before, after []byte) json.RawMessage {
	out := make([]byte, 0, len(r.head)+len(before)+len(after)+20)
	out = append(out, r.head[:r.split]...)
	out = append(append(out, `,"before":`...), before...)
	out = append(append(out, `,"after":`...), after...)
	return append(out, r.head[r.split:]...)
}

// memoryID is the memory the record's head names.
func (r auditRecord) memoryID() (string, error) {
	const field = `,"memory_id":"`
	i := bytes.Index(r.head, []byte(field))
	if i < 0 {
		return "", errAuditRecord
	}
	rest := r.head[i+len(field):]
	if end := bytes.IndexByte(rest, '"'); end >= 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
		return string(rest[:end]), nil
	}
	var h struct {
		MemoryID string `json:"memory_id"`
	}
	if err := json.Unmarshal(r.head, &h); err != nil {
		return "", fmt.Errorf("audit entry: %w", err)
	}
	return h.MemoryID, nil
}

// appendAuditHead appends e's JSON without the snapshots, as appendAuditEntry writes the rest,
// and returns where the snapshots go.
func appendAuditHead(b []byte, e AuditEntry) ([]byte, int, error) {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"event_id":`...)
	b = domain.AppendJSONString(b, e.EventID)
	b = append(b, `,"memory_id":`...)
	b = domain.AppendJSONString(b, e.MemoryID)
	b = append(b, `,"action":`...)
	b = domain.AppendJSONString(b, string(e.Action))
	b = append(b, `,"actor":`...)
	b = domain.AppendJSONString(b, e.Actor)
	b = append(b, `,"principal":`...)
	b = domain.AppendJSONString(b, e.Principal)
	b = append(b, `,"note":`...)
	b = domain.AppendJSONString(b, e.Note)
	b = append(b, `,"timestamp":`...)
	b, err := domain.AppendJSONTime(b, e.Timestamp)
	if err != nil {
		return nil, 0, err
	}
	split := len(b)
	if e.CorrelationID != "" {
		b = append(b, `,"correlation_id":`...)
		b = domain.AppendJSONString(b, e.CorrelationID)
	}
	if len(e.Undoes) > 0 {
		b = append(b, `,"undoes":[`...)
		for i, id := range e.Undoes {
			if i > 0 {
				b = append(b, ',')
			}
			b = domain.AppendJSONString(b, id)
		}
		b = append(b, ']')
	}
	return append(b, '}'), split, nil
}

// A diff makes a target JSON value from a source one. When both are objects it lists the
// target's top-level members, each either a member of the source (its index) or written out:
//
//	byte 1, then per member: uvarint 2*i for the source's member i, or 2*len+1 and the bytes
//
// otherwise it is byte 0 and the target as it is.

// jsonMembers splits a JSON object into its top-level members, the bytes between its braces
// and commas, exactly: joined with commas inside braces they are the object again.
func jsonMembers(b []byte, into [][]byte) ([][]byte, bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return into, false
	}
	inner := b[1 : len(b)-1]
	if len(inner) == 0 {
		return into, true
	}
	depth, inString, escaped, start := 0, false, false, 0
	for i, c := range inner {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ',' && depth == 0:
			into = append(into, inner[start:i])
			start = i + 1
		}
	}
	if inString || depth != 0 {
		return into, false
	}
	return append(into, inner[start:]), true
}

// appendDiff appends the diff that makes target from source to b.
func appendDiff(b, target, source []byte) []byte {
	var tbuf, sbuf [24][]byte
	tm, ok1 := jsonMembers(target, tbuf[:0])
	sm, ok2 := jsonMembers(source, sbuf[:0])
	if !ok1 || !ok2 {
		return append(append(b, 0), target...)
	}
	b = append(b, 1)
	for i, m := range tm {
		j := -1
		if i < len(sm) && bytes.Equal(sm[i], m) {
			j = i
		} else {
			for k, s := range sm {
				if bytes.Equal(s, m) {
					j = k
					break
				}
			}
		}
		if j >= 0 {
			b = binary.AppendUvarint(b, 2*uint64(j))
			continue
		}
		b = binary.AppendUvarint(b, 2*uint64(len(m))+1)
		b = append(b, m...)
	}
	return b
}

// applyDiff returns the target that diff makes from source.
func applyDiff(diff, source []byte) ([]byte, error) {
	if len(diff) == 0 {
		return nil, errAuditRecord
	}
	if diff[0] == 0 {
		return diff[1:], nil
	}
	var sbuf [24][]byte
	sm, ok := jsonMembers(source, sbuf[:0])
	if !ok {
		return nil, errAuditRecord
	}
	out := make([]byte, 0, len(source)+len(diff))
	out = append(out, '{')
	for rest, first := diff[1:], true; len(rest) > 0; first = false {
		v, k := binary.Uvarint(rest)
		if k <= 0 {
			return nil, errAuditRecord
		}
		rest = rest[k:]
		if !first {
			out = append(out, ',')
		}
		if v%2 == 0 {
			if v/2 >= uint64(len(sm)) {
				return nil, errAuditRecord
			}
			out = append(out, sm[v/2]...)
			continue
		}
		n := v / 2
		if n > uint64(len(rest)) {
			return nil, errAuditRecord
		}
		out = append(out, rest[:n]...)
		rest = rest[n:]
	}
	return append(out, '}'), nil
}

// auditReader reads stored audit entries back as their JSON, within one read transaction.
type auditReader struct {
	idx, audit, mems *bolt.Bucket
}

func newAuditReader(tx *bolt.Tx) (auditReader, bool) {
	r := auditReader{idx: tx.Bucket(bucketAuditIndex), audit: tx.Bucket(bucketAudit), mems: tx.Bucket(bucketMemories)}
	return r, r.idx != nil && r.audit != nil && r.mems != nil
}

// record decodes the stored entry at position seq (ok false when there is none).
func (a auditReader) record(seq []byte) (auditRecord, bool, error) {
	data := a.audit.Get(seq)
	if data == nil {
		return auditRecord{}, false, nil
	}
	r, err := decodeAuditRecord(data)
	if err != nil {
		return r, false, fmt.Errorf("audit entry %d: %w", decodeSeq(seq), err)
	}
	return r, true, nil
}

// after returns the snapshot after the change of r, memory id's entry at position seq: stored
// in it, or made from the next entries' diffs back from the next one that stores it or from the
// memory's current state.
func (a auditReader) after(r auditRecord, id string, seq []byte) ([]byte, error) {
	if r.after != nil {
		return r.after, nil
	}
	prefix := indexKey(indexAuditMemory, id, nil)
	c := a.idx.Cursor()
	k, _ := c.Seek(indexKey(indexAuditMemory, id, seq))
	if k == nil || !bytes.Equal(k[len(prefix):], seq) {
		return nil, fmt.Errorf("audit entry %d of memory %s: not in the index", decodeSeq(seq), id)
	}
	var later []auditRecord
	var after []byte
	for k, _ = c.Next(); ; k, _ = c.Next() {
		if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
			after = a.mems.Get([]byte(id))
			if after == nil {
				return nil, fmt.Errorf("audit of memory %s: no current state", id)
			}
			break
		}
		next, ok, err := a.record(k[len(prefix):])
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("audit of memory %s: entry %d is missing", id, decodeSeq(k[len(prefix):]))
		}
		if next.after != nil {
			after = next.after
			later = append(later, next)
			break
		}
		later = append(later, next)
	}
	for i := len(later) - 1; i >= 0; i-- {
		var err error
		if after, err = applyDiff(later[i].before, after); err != nil {
			return nil, fmt.Errorf("audit of memory %s: %w", id, err)
		}
	}
	return after, nil
}

// entry returns the JSON of the entry at position seq, or nil when there is none.
func (a auditReader) entry(seq []byte) (json.RawMessage, error) {
	r, ok, err := a.record(seq)
	if err != nil || !ok {
		return nil, err
	}
	id, err := r.memoryID()
	if err != nil {
		return nil, fmt.Errorf("audit entry %d: %w", decodeSeq(seq), err)
	}
	after, err := a.after(r, id, seq)
	if err != nil {
		return nil, err
	}
	before, err := applyDiff(r.before, after)
	if err != nil {
		return nil, fmt.Errorf("audit entry %d: %w", decodeSeq(seq), err)
	}
	return r.entry(before, after), nil
}

// memory returns the JSON of every entry of memory id up to position upTo (allEntries: every
// one), oldest first: the whole audit read once, back from the current state.
func (a auditReader) memory(id string, upTo uint64) ([]json.RawMessage, error) {
	prefix := indexKey(indexAuditMemory, id, nil)
	var recs []auditRecord
	c := a.idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		r, ok, err := a.record(k[len(prefix):])
		if err != nil {
			return nil, err
		}
		if ok {
			recs = append(recs, r)
		}
	}
	out := make([]json.RawMessage, len(recs))
	if len(recs) == 0 {
		return out, nil
	}
	after := a.mems.Get([]byte(id))
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.after != nil {
			after = r.after
		}
		if after == nil {
			return nil, fmt.Errorf("audit of memory %s: no current state", id)
		}
		before, err := applyDiff(r.before, after)
		if err != nil {
			return nil, fmt.Errorf("audit of memory %s: %w", id, err)
		}
		out[i] = r.entry(before, after)
		after = before
	}
	if upTo != allEntries {
		kept := out[:0]
		for _, e := range out {
			if seq, ok := entrySeq(e); ok && seq <= upTo {
				kept = append(kept, e)
			}
		}
		out = kept
	}
	return out, nil
}

// allEntries, as memory's upTo, reads every entry.
const allEntries = ^uint64(0)

// entrySeq is the position an entry's JSON begins with.
func entrySeq(e []byte) (uint64, bool) {
	const field = `{"seq":`
	if !bytes.HasPrefix(e, []byte(field)) {
		return 0, false
	}
	rest := e[len(field):]
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return seq, err == nil
}

// lastAuditIndex is the index of memory id's last audit entry among its entries, and false when
// it has none in the file.
func lastAuditIndex(tx *bolt.Tx, id string) (uint64, bool, error) {
	idx, audit := tx.Bucket(bucketAuditIndex), tx.Bucket(bucketAudit)
	if idx == nil || audit == nil {
		return 0, false, nil
	}
	prefix := indexKey(indexAuditMemory, id, nil)
	k, _ := seekLast(idx.Cursor(), prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
		return 0, false, nil
	}
	data := audit.Get(k[len(prefix):])
	if data == nil {
		return 0, false, nil
	}
	r, err := decodeAuditRecord(data)
	if err != nil {
		return 0, false, fmt.Errorf("audit entry %d of memory %s: %w", decodeSeq(k[len(prefix):]), id, err)
	}
	return r.n, true, nil
}
