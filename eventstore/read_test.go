package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/domain"
	"github.com/memledger/memledger/eventstore"
)

// readAll reads the log with opts and returns what Read passed on.
func readAll(t *testing.T, s *eventstore.Store, opts eventstore.ReadOptions) []eventstore.Message {
	t.Helper()
	var out []eventstore.Message
	require.NoError(t, s.Read(t.Context(), opts, func(m eventstore.Message) error {
		out = append(out, m)
		return nil
	}))
	return out
}

func msgSeqs(ms []eventstore.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// mixedLog appends memory events on two memories, alerts of two severities and a project: 10
// events, and returns the memory ids.
func mixedLog(t *testing.T, s *eventstore.Store) (string, string) {
	t.Helper()
	ctx := t.Context()
	a, aSeq := appendCreated(t, s, domain.StatusCandidate) // 1
	b, bSeq := appendCreated(t, s, domain.StatusActive)    // 2
	alert := func(n int, sev domain.Severity) {
		_, err := s.Append(ctx, eventstore.Unchecked, aggregateEvent(string(sev), n, domain.AlertRaised{Severity: sev, Title: "t"}))
		require.NoError(t, err)
	}
	alert(3, domain.SeverityWarning)                                                                                              // 3
	res, err := s.Append(ctx, aSeq, memEvent(a, 4, domain.MemoryReinforced{Delta: 0.1}), memEvent(a, 5, domain.MemoryPromoted{})) // 4, 5
	require.NoError(t, err)
	aSeq = res.Seq
	alert(6, domain.SeverityInfo)                                            // 6
	_, err = s.Append(ctx, bSeq, memEvent(b, 7, domain.MemoryInvalidated{})) // 7
	require.NoError(t, err)
	_, err = s.Append(ctx, 0, aggregateEvent("p-1", 8, domain.ProjectRegistered{Description: "p"})) // 8
	require.NoError(t, err)
	_, err = s.Append(ctx, aSeq, memEvent(a, 9, domain.MemoryReinforced{Delta: 0.1})) // 9
	require.NoError(t, err)
	alert(10, domain.SeverityCritical) // 10
	return a, b
}

func TestRead(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	a, b := mixedLog(t, s)

	t.Run("the whole log, as stored", func(t *testing.T) {
		got := readAll(t, s, eventstore.ReadOptions{})
		require.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, msgSeqs(got))
		for _, m := range got {
			ev, err := eventstore.Decode(m.Data, m.Seq)
			require.NoError(t, err)
			require.Equal(t, ev.ID, m.MsgID, "the message id is the event id")
			subject, err := eventstore.Subject(ev)
			require.NoError(t, err)
			require.Equal(t, subject, m.Subject)
			again, err := eventstore.Encode(ev)
			require.NoError(t, err)
			require.Equal(t, again, m.Data, "the body as stored")
			require.False(t, m.Stored.IsZero())
		}
	})
	t.Run("from a middle position, to another", func(t *testing.T) {
		require.Equal(t, []uint64{4, 5, 6, 7, 8, 9, 10}, msgSeqs(readAll(t, s, eventstore.ReadOptions{From: 4})))
		require.Equal(t, []uint64{4, 5, 6}, msgSeqs(readAll(t, s, eventstore.ReadOptions{From: 4, To: 6})))
		require.Equal(t, []uint64{10}, msgSeqs(readAll(t, s, eventstore.ReadOptions{From: 10, To: 99})))
		require.Empty(t, readAll(t, s, eventstore.ReadOptions{From: 11}))
	})
	t.Run("subject filters", func(t *testing.T) {
		for _, c := range []struct {
			filters []string
			want    []uint64
		}{
			{[]string{"ledger.memory." + a}, []uint64{1, 4, 5, 9}},
			{[]string{"ledger.memory.>"}, []uint64{1, 2, 4, 5, 7, 9}},
			{[]string{"ledger.alert.>", "ledger.project.*"}, []uint64{3, 6, 8, 10}},
			{[]string{"ledger.alert.warning", "ledger.alert.critical"}, []uint64{3, 10}},
			// Overlapping filters, which a consumer refuses: each event once.
			{[]string{"ledger.memory.>", "ledger.memory." + b}, []uint64{1, 2, 4, 5, 7, 9}},
			{[]string{"ledger.*." + b, "ledger.memory.>"}, []uint64{1, 2, 4, 5, 7, 9}},
			{[]string{"ledger.*.warning", "ledger.alert.>"}, []uint64{3, 6, 10}},
			{[]string{"ledger.>"}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
			{[]string{"ledger.document.>"}, []uint64{}},
		} {
			got := msgSeqs(readAll(t, s, eventstore.ReadOptions{Subjects: c.filters}))
			require.Equal(t, c.want, got, "filters %v", c.filters)
			got = msgSeqs(readAll(t, s, eventstore.ReadOptions{Subjects: c.filters, From: 5, To: 9}))
			var want []uint64
			for _, seq := range c.want {
				if seq >= 5 && seq <= 9 {
					want = append(want, seq)
				}
			}
			require.Equal(t, append([]uint64{}, want...), append([]uint64{}, got...), "filters %v from 5 to 9", c.filters)
		}
		err := s.Read(t.Context(), eventstore.ReadOptions{Subjects: []string{"orders.>"}}, func(eventstore.Message) error { return nil })
		require.ErrorIs(t, err, domain.ErrInvalid)
	})
	t.Run("stop", func(t *testing.T) {
		var got []uint64
		require.NoError(t, s.Read(t.Context(), eventstore.ReadOptions{}, func(m eventstore.Message) error {
			got = append(got, m.Seq)
			if len(got) == 3 {
				return eventstore.ErrStop
			}
			return nil
		}))
		require.Equal(t, []uint64{1, 2, 3}, got)
		boom := errors.New("boom")
		require.ErrorIs(t, s.Read(t.Context(), eventstore.ReadOptions{}, func(eventstore.Message) error { return boom }), boom)
	})
}

// TestReadFollowSeam reads the log from its start while appends race the end of the catch-up:
// every event arrives once, in order.
func TestReadFollowSeam(t *testing.T) {
	s := openStore(t, eventstore.FsyncInterval)
	const before, during = 300, 300
	for range before {
		appendCreated(t, s, domain.StatusActive)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var got []uint64
	done := make(chan error, 1)
	go func() {
		done <- s.Read(ctx, eventstore.ReadOptions{From: 1, Follow: true, ReadAhead: 16}, func(m eventstore.Message) error {
			mu.Lock()
			got = append(got, m.Seq)
			mu.Unlock()
			return nil
		})
	}()
	for range during {
		appendCreated(t, s, domain.StatusActive)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= before+during
	}, 30*time.Second, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, before+during)
	for i, seq := range got {
		require.Equal(t, uint64(i+1), seq)
	}
}

func TestCheckFilter(t *testing.T) {
	for _, ok := range []string{"ledger.>", "ledger.memory.>", "ledger.memory.abc", "ledger.state.p-1", "ledger.alert.*",
		"ledger.*.warning", "ledger.*.>", "ledger.*.*", "ledger.system.nightly"} {
		require.NoError(t, eventstore.CheckFilter(ok), ok)
	}
	for filter, why := range map[string]string{
		"orders.>":              "ledger.",
		"ledger":                "needs a kind",
		"ledger.memory":         "aggregate id",
		"ledger.memories.>":     "unknown kind",
		"ledger.memory.a.b":     "4 tokens",
		"ledger.>.x":            "last token",
		"ledger.mem*.x":         "whole token",
		"ledger..x":             "empty token",
		"ledger.memory.a b":     "space",
		">":                     "ledger.",
		"ledger.memory.\x01abc": "control",
	} {
		err := eventstore.CheckFilter(filter)
		require.ErrorIs(t, err, domain.ErrInvalid, filter)
		require.Contains(t, err.Error(), why, filter)
	}
	require.True(t, eventstore.FilterMatches("ledger.>", "ledger.memory.x"))
	require.True(t, eventstore.FilterMatches("ledger.*.x", "ledger.memory.x"))
	require.False(t, eventstore.FilterMatches("ledger.*.x", "ledger.memory.y"))
	require.False(t, eventstore.FilterMatches("ledger.memory.>", "ledger.memory"))
	require.False(t, eventstore.FilterMatches("ledger.memory.*", "ledger.memory.x.y"))
}

func TestExportRestore(t *testing.T) {
	src := openStore(t, eventstore.FsyncInterval)
	mixedLog(t, src)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

	var file bytes.Buffer
	h, tr, err := src.Export(t.Context(), &file, eventstore.ExportRange{}, now, nil)
	require.NoError(t, err)
	require.Equal(t, eventstore.ExportHeader{Format: "memledger-export", Version: 1, Stream: "LEDGER", FirstSeq: 1, LastSeq: 10, ExportedAt: now}, h)
	require.EqualValues(t, 10, tr.Count)
	lines := strings.Split(strings.TrimSuffix(file.String(), "\n"), "\n")
	require.Len(t, lines, 12, "header, 10 events, trailer")
	stored := readAll(t, src, eventstore.ReadOptions{})
	for i, m := range stored {
		require.Equal(t, string(eventstore.AppendMessageLine(nil, m)), lines[i+1])
		require.Contains(t, lines[i+1], `"event":`+string(m.Data), "the body exactly as stored")
	}

	t.Run("restored into an empty log, every message as it was", func(t *testing.T) {
		dst := openStore(t, eventstore.FsyncInterval)
		er, err := eventstore.NewExportReader(bytes.NewReader(file.Bytes()))
		require.NoError(t, err)
		var msgs []eventstore.Message
		for {
			m, err := er.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			msgs = append(msgs, m)
		}
		require.NoError(t, dst.Restore(t.Context(), msgs[:4]))
		require.NoError(t, dst.Restore(t.Context(), msgs[4:]))
		restored := readAll(t, dst, eventstore.ReadOptions{})
		require.Len(t, restored, len(stored))
		for i := range stored {
			require.Equal(t, stored[i].Seq, restored[i].Seq)
			require.Equal(t, stored[i].Subject, restored[i].Subject)
			require.Equal(t, stored[i].MsgID, restored[i].MsgID)
			require.Equal(t, stored[i].Data, restored[i].Data)
		}
		// The aggregates load as they did, and the expected-sequence rule goes on from there.
		evs, last, err := dst.Load(t.Context(), "memory", msgs[0].Subject[len("ledger.memory."):])
		require.NoError(t, err)
		require.Len(t, evs, 4)
		require.EqualValues(t, 9, last)
		// A message restored again, or out of place, is refused.
		require.Error(t, dst.Restore(t.Context(), msgs[9:]))
		require.EqualValues(t, 10, lastSeq(t, dst))
	})

	t.Run("a range", func(t *testing.T) {
		var part bytes.Buffer
		h, tr, err := src.Export(t.Context(), &part, eventstore.ExportRange{From: 4, To: 7}, now, nil)
		require.NoError(t, err)
		require.EqualValues(t, 4, h.FirstSeq)
		require.EqualValues(t, 7, h.LastSeq)
		require.EqualValues(t, 4, tr.Count)
		_, _, err = src.Export(t.Context(), io.Discard, eventstore.ExportRange{To: 11}, now, nil)
		require.ErrorContains(t, err, "beyond the log's end")
		_, _, err = src.Export(t.Context(), io.Discard, eventstore.ExportRange{From: 12}, now, nil)
		require.ErrorContains(t, err, "beyond the log's end")
	})

	t.Run("a changed or shortened file is refused", func(t *testing.T) {
		check := func(data []byte) error {
			er, err := eventstore.NewExportReader(bytes.NewReader(data))
			if err != nil {
				return err
			}
			for {
				if _, err := er.Next(); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
			}
		}
		require.NoError(t, check(file.Bytes()))
		cases := map[string][]byte{}
		// One byte changed inside an event's content.
		changed := bytes.Clone(file.Bytes())
		i := bytes.Index(changed, []byte(`"actor":"test-actor"`))
		changed[i+10] = 'T'
		cases["a byte changed"] = changed
		// One event line removed.
		cases["a line removed"] = []byte(strings.Join(append(append([]string{}, lines[:5]...), lines[6:]...), "\n") + "\n")
		// The last event line removed and the trailer kept.
		cases["the last event removed"] = []byte(strings.Join(append(append([]string{}, lines[:10]...), lines[11]), "\n") + "\n")
		// Cut before the trailer.
		cases["no trailer"] = []byte(strings.Join(lines[:11], "\n") + "\n")
		// Two lines swapped.
		swapped := append([]string{}, lines...)
		swapped[3], swapped[4] = swapped[4], swapped[3]
		cases["lines swapped"] = []byte(strings.Join(swapped, "\n") + "\n")
		cases["a line after the trailer"] = append(bytes.Clone(file.Bytes()), []byte(lines[1]+"\n")...)
		for name, data := range cases {
			err := check(data)
			require.ErrorIs(t, err, eventstore.ErrBadExport, name)
		}
	})
}

// A read that follows with Resume goes on, with a new consumer, when its consumer fails and
// cannot be made again at once (here JetStream is off for longer than the consumer's one
// attempt to be made again): the messages after the last one read arrive, none twice. Without
// Resume the read ends with the consumer's error.
func TestReadResumesAfterItsConsumerFails(t *testing.T) {
	s := eventstore.New(t.TempDir())
	s.ReviveFree = 1 << 62 // the store never switches JetStream back on itself
	var logs lockedBuffer
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	require.NoError(t, s.Open(t.Context()))
	t.Cleanup(func() { s.Close() })
	_, first := appendCreated(t, s, domain.StatusActive)

	read := func(resume bool) (<-chan uint64, <-chan error) {
		seqs, errc := make(chan uint64, 16), make(chan error, 1)
		go func() {
			errc <- s.Read(t.Context(), eventstore.ReadOptions{From: 1, Follow: true, Resume: resume}, func(m eventstore.Message) error {
				seqs <- m.Seq
				return nil
			})
		}()
		return seqs, errc
	}
	resumed, resumedErr := read(true)
	plain, plainErr := read(false)
	for _, seqs := range []<-chan uint64{resumed, plain} {
		select {
		case seq := <-seqs:
			require.Equal(t, first, seq)
		case <-time.After(10 * time.Second):
			require.FailNow(t, "the first message was not read")
		}
	}

	require.NoError(t, s.EmbeddedServer().ShutdownJetStream())
	off := time.Now()
	select {
	case err := <-plainErr:
		t.Logf("without Resume the read ended %v after JetStream was switched off: %v", time.Since(off).Round(time.Millisecond), err)
		require.ErrorContains(t, err, "read log from 2", "without Resume the read ends with its consumer's error")
	case <-time.After(60 * time.Second):
		require.FailNow(t, "without Resume the read did not end")
	}
	failures := func() int {
		return bytes.Count(logs.Bytes(), []byte("read log: its consumer failed; reading with a new one"))
	}
	require.Eventually(t, func() bool { return failures() > 0 }, 20*time.Second, 10*time.Millisecond,
		"the resumed read's consumer failed; log:\n%s", logs.Bytes())
	// Switched on again just as the resumed read begins a pause between two tries (at least
	// 250 ms): nats-server 2.15.2 sets up its API in EnableJetStream unguarded against an API
	// request arriving meanwhile (a new consumer's), which the race detector reports.
	seen := failures()
	require.Eventually(t, func() bool { return failures() > seen }, 20*time.Second, time.Millisecond,
		"the resumed read tries again; log:\n%s", logs.Bytes())
	require.NoError(t, s.EnableJetStreamAgain())
	var second uint64
	require.Eventually(t, func() bool {
		res, err := s.Append(t.Context(), eventstore.Unchecked, memEvent(newMemoryID(), 1, createdPayload(domain.StatusActive)))
		second = res.Seq
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "appends once JetStream is back")
	select {
	case seq := <-resumed:
		require.Equal(t, second, seq, "the next message read is the one after the last read")
	case err := <-resumedErr:
		require.FailNow(t, "the resumed read ended", "%v", err)
	case <-time.After(20 * time.Second):
		require.FailNow(t, "the resumed read did not go on")
	}
}
