package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/memledger/memledger/domain"
)

// The export file format: NDJSON, a header line, one line per stored message and a trailer.
const (
	// ExportFormat names the format in the header line.
	ExportFormat = "memledger-export"
	// ExportVersion is the format's version.
	ExportVersion = 1
	// maxExportLine bounds one line of an export file (a message is at most 1 MB by default).
	maxExportLine = 16 << 20
)

// ExportHeader is the first line of an export file.
type ExportHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Stream  string `json:"stream"`
	// FirstSeq and LastSeq are the positions of the first and last message in the file (both 0
	// for an empty log).
	FirstSeq   uint64    `json:"first_seq"`
	LastSeq    uint64    `json:"last_seq"`
	ExportedAt time.Time `json:"exported_at"`
}

// ExportTrailer is the last line of an export file: the number of messages and the SHA-256 of
// every line before it (the header's included, each with its line break), in hex.
type ExportTrailer struct {
	Trailer bool   `json:"trailer"`
	Count   uint64 `json:"count"`
	SHA256  string `json:"sha256"`
}

// exportLine is one stored message in an export file: its body as the JSON value it is
// (Event), or, for a body that is not one JSON value on a line, in base64 (DataBase64).
type exportLine struct {
	Seq        uint64          `json:"seq"`
	Subject    string          `json:"subject"`
	MsgID      string          `json:"msg_id,omitempty"`
	Event      json.RawMessage `json:"event,omitempty"`
	DataBase64 string          `json:"data_base64,omitempty"`
}

// ExportRange is the part of the log an export writes: positions From to To, both included (0:
// the log's first and last).
type ExportRange struct {
	From, To uint64
}

// Export writes the log's messages in rng to w as an export file, each exactly as stored, and
// returns the header and trailer it wrote. progress, when set, is called with each message's
// position and the range's last position.
func (s *Store) Export(ctx context.Context, w io.Writer, rng ExportRange, now time.Time, progress func(seq, last uint64)) (ExportHeader, ExportTrailer, error) {
	last, err := s.LastSeq(ctx)
	if err != nil {
		return ExportHeader{}, ExportTrailer{}, err
	}
	first := max(rng.From, 1)
	if rng.To != 0 && rng.To < first {
		return ExportHeader{}, ExportTrailer{}, fmt.Errorf("export: --to %d is before --from %d: %w", rng.To, first, domain.ErrInvalid)
	}
	if rng.To > last {
		return ExportHeader{}, ExportTrailer{}, fmt.Errorf("export: --to %d is beyond the log's end (%d): %w", rng.To, last, domain.ErrInvalid)
	}
	if rng.To != 0 {
		last = rng.To
	}
	if first > last {
		if rng.From > 1 || last != 0 {
			return ExportHeader{}, ExportTrailer{}, fmt.Errorf("export: --from %d is beyond the log's end (%d): %w", rng.From, last, domain.ErrInvalid)
		}
		first = 0 // an empty log
	}
	h := ExportHeader{Format: ExportFormat, Version: ExportVersion, Stream: s.Stream, FirstSeq: first, LastSeq: last, ExportedAt: now.UTC()}
	ew := newExportWriter(w)
	if err := ew.json(h); err != nil {
		return h, ExportTrailer{}, err
	}
	next := first
	if last > 0 {
		err = s.Read(ctx, ReadOptions{From: first, To: last}, func(m Message) error {
			if m.Seq != next {
				return fmt.Errorf("export: the log holds position %d where %d was expected", m.Seq, next)
			}
			next++
			if err := ew.message(m); err != nil {
				return err
			}
			if progress != nil {
				progress(m.Seq, last)
			}
			return nil
		})
		if err != nil {
			return h, ExportTrailer{}, err
		}
		if next != last+1 {
			return h, ExportTrailer{}, fmt.Errorf("export: the log ended at %d, before %d", next-1, last)
		}
	}
	t := ExportTrailer{Trailer: true, Count: ew.count, SHA256: hex.EncodeToString(ew.sum.Sum(nil))}
	data, _ := json.Marshal(t)
	if _, err := ew.w.Write(append(data, '\n')); err != nil {
		return h, t, err
	}
	return h, t, ew.w.Flush()
}

// exportWriter writes lines and hashes them.
type exportWriter struct {
	w     *bufio.Writer
	sum   hash.Hash
	count uint64
	buf   []byte
}

func newExportWriter(w io.Writer) *exportWriter {
	return &exportWriter{w: bufio.NewWriterSize(w, 256<<10), sum: sha256.New()}
}

func (e *exportWriter) line(b []byte) error {
	e.sum.Write(b)
	_, err := e.w.Write(b)
	return err
}

func (e *exportWriter) json(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return e.line(append(data, '\n'))
}

func (e *exportWriter) message(m Message) error {
	e.buf = AppendMessageLine(e.buf[:0], m)
	e.count++
	return e.line(append(e.buf, '\n'))
}

// AppendMessageLine appends m as one JSON object, without a line break, to b:
// {"seq":N,"subject":"...","msg_id":"...","event":<the body as stored>}. A body that is not
// one JSON value without line breaks (no event of this program's) is given as data_base64
// instead, so that the line reads back byte for byte.
func AppendMessageLine(b []byte, m Message) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, `,"subject":`...)
	b = domain.AppendJSONString(b, m.Subject)
	if m.MsgID != "" {
		b = append(b, `,"msg_id":`...)
		b = domain.AppendJSONString(b, m.MsgID)
	}
	if verbatimJSON(m.Data) {
		b = append(b, `,"event":`...)
		b = append(b, m.Data...)
	} else {
		b = append(b, `,"data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, m.Data)
		b = append(b, '"')
	}
	return append(b, '}')
}

// verbatimJSON reports whether data can stand in a line as it is and be read back unchanged:
// one JSON object or array with no line break and no space around it.
func verbatimJSON(data []byte) bool {
	if len(data) < 2 || (data[0] != '{' && data[0] != '[') || (data[len(data)-1] != '}' && data[len(data)-1] != ']') {
		return false
	}
	return !bytes.ContainsAny(data, "\r\n") && json.Valid(data)
}

// ErrBadExport is an export file that is not whole or not as written: edited, cut short, or
// not an export file at all.
var ErrBadExport = errors.New("not a whole export file")

// ExportReader reads an export file line by line, checking it as it goes. Its Next returns
// the messages; the header is read first, the trailer checked last.
type ExportReader struct {
	Header ExportHeader
	// Trailer is set once Next has returned io.EOF.
	Trailer ExportTrailer

	sc     *bufio.Scanner
	sum    hash.Hash
	lineNo int
	next   uint64
	count  uint64
	done   bool
}

// NewExportReader reads the header of the export file r.
func NewExportReader(r io.Reader) (*ExportReader, error) {
	er := &ExportReader{sc: bufio.NewScanner(r), sum: sha256.New()}
	er.sc.Buffer(make([]byte, 0, 256<<10), maxExportLine)
	line, err := er.read()
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&er.Header); err != nil || er.Header.Format != ExportFormat {
		return nil, er.bad("the first line is not a %s header", ExportFormat)
	}
	if er.Header.Version != ExportVersion {
		return nil, er.bad("format version %d; this program reads version %d", er.Header.Version, ExportVersion)
	}
	if er.Header.FirstSeq > er.Header.LastSeq || (er.Header.FirstSeq == 0) != (er.Header.LastSeq == 0) {
		return nil, er.bad("the header's range %d to %d is not a range", er.Header.FirstSeq, er.Header.LastSeq)
	}
	er.next = er.Header.FirstSeq
	er.sum.Write(line)
	er.sum.Write([]byte{'\n'})
	return er, nil
}

func (er *ExportReader) read() ([]byte, error) {
	if !er.sc.Scan() {
		if err := er.sc.Err(); err != nil {
			return nil, fmt.Errorf("line %d: %w", er.lineNo+1, err)
		}
		return nil, io.EOF
	}
	er.lineNo++
	return er.sc.Bytes(), nil
}

func (er *ExportReader) bad(format string, args ...any) error {
	return fmt.Errorf("line %d: %s: %w", er.lineNo, fmt.Sprintf(format, args...), ErrBadExport)
}

// Next returns the next message of the file, or io.EOF after the last, once the trailer is
// read and matches every line before it. Any other error is ErrBadExport or the reader's.
func (er *ExportReader) Next() (Message, error) {
	if er.done {
		return Message{}, io.EOF
	}
	line, err := er.read()
	if errors.Is(err, io.EOF) {
		er.lineNo++
		return Message{}, er.bad("the file ends without a trailer (cut short?)")
	}
	if err != nil {
		return Message{}, err
	}
	if bytes.HasPrefix(line, []byte(`{"trailer":`)) {
		return Message{}, er.trailer(line)
	}
	var l exportLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Message{}, er.bad("not a message line: %v", err)
	}
	er.sum.Write(line)
	er.sum.Write([]byte{'\n'})
	if er.next == 0 || l.Seq != er.next || l.Seq > er.Header.LastSeq {
		return Message{}, er.bad("position %d where %d was expected (a line removed or moved?)", l.Seq, er.next)
	}
	er.next++
	er.count++
	if strings.ContainsAny(l.Subject, "*> ") || !strings.HasPrefix(l.Subject, SubjectPrefix) {
		return Message{}, er.bad("subject %q is not a subject of the log", l.Subject)
	}
	m := Message{Seq: l.Seq, Subject: l.Subject, MsgID: l.MsgID}
	switch {
	case l.Event != nil && l.DataBase64 == "":
		m.Data = bytes.Clone(l.Event)
	case l.Event == nil:
		if m.Data, err = base64.StdEncoding.DecodeString(l.DataBase64); err != nil {
			return Message{}, er.bad("data_base64: %v", err)
		}
	default:
		return Message{}, er.bad("both event and data_base64")
	}
	return m, nil
}

func (er *ExportReader) trailer(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&er.Trailer); err != nil || !er.Trailer.Trailer {
		return er.bad("unreadable trailer")
	}
	sum := hex.EncodeToString(er.sum.Sum(nil))
	switch {
	case er.Trailer.SHA256 != sum:
		return er.bad("the lines' SHA-256 is %s, the trailer says %s: the file was changed", sum, er.Trailer.SHA256)
	case er.Trailer.Count != er.count:
		return er.bad("%d messages, the trailer says %d", er.count, er.Trailer.Count)
	case er.Header.LastSeq != 0 && er.next != er.Header.LastSeq+1:
		return er.bad("the messages end at %d, the header says %d", er.next-1, er.Header.LastSeq)
	}
	if _, err := er.read(); !errors.Is(err, io.EOF) {
		if err == nil {
			return er.bad("lines after the trailer")
		}
		return err
	}
	er.done = true
	return io.EOF
}
