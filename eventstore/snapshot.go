package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Snapshot is what the server says of a snapshot of the log it sends (JetStream's stream
// snapshot API): the stream's configuration and the state the snapshot holds, every message
// from FirstSeq to LastSeq as the stream held them when the snapshot began. Messages appended
// while it is sent are not in it.
type Snapshot struct {
	// Config is the stream's configuration as the server gave it; a restore sends it back.
	Config json.RawMessage `json:"config"`
	// State is the stream's state the snapshot holds.
	State SnapshotState `json:"state"`
}

// SnapshotState is the part of a stream's state a snapshot records (the server's field names).
type SnapshotState struct {
	Msgs       uint64 `json:"messages"`
	Bytes      uint64 `json:"bytes"`
	FirstSeq   uint64 `json:"first_seq"`
	LastSeq    uint64 `json:"last_seq"`
	NumDeleted int    `json:"num_deleted,omitempty"`
	Consumers  int    `json:"consumer_count"`
}

// Sizes of a snapshot's chunks and of the window of chunks in flight (the server's defaults are
// 128 KiB and 8 MiB); restoreChunk is the size of the chunks a restore sends.
const (
	snapshotChunk  = 256 * 1024
	snapshotWindow = 16 * 1024 * 1024
	restoreChunk   = 128 * 1024
)

// snapshotIdle bounds the wait for the next chunk of a snapshot, and restoreWait the wait for
// the server's answer to a restore's chunk or its end.
const (
	snapshotIdle = 30 * time.Second
	restoreWait  = 2 * time.Minute
)

// apiError is the error of a JetStream API answer.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (%d, error %d)", e.Description, e.Code, e.ErrCode)
}

// Snapshot writes a snapshot of the log to w through JetStream's snapshot API: the server's
// archive of the stream's messages and its consumers (the alert sinks' and the subscriptions'
// positions), compressed (S2), as the server sends it. The snapshot is a consistent prefix of
// the log: every message up to the stream's last position when it began, and none after,
// whatever is appended meanwhile. It works on the embedded server and on an external one.
// A chunk that w takes too long to write (more than about 5 s) makes the server give up, and
// Snapshot returns that error.
func (s *Store) Snapshot(ctx context.Context, w io.Writer) (Snapshot, error) {
	inbox := s.nc.NewRespInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "chunk_size": snapshotChunk, "window_size": snapshotWindow})
	rctx, cancel := withReadTimeout(ctx)
	msg, err := s.nc.RequestWithContext(rctx, "$JS.API.STREAM.SNAPSHOT."+s.Stream, req)
	cancel()
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot of stream %s: %w", s.Stream, err)
	}
	var resp struct {
		Snapshot
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot of stream %s: the server's answer: %w", s.Stream, err)
	}
	if resp.Error != nil {
		return Snapshot{}, fmt.Errorf("snapshot of stream %s: %w", s.Stream, resp.Error)
	}
	for {
		nctx, cancel := context.WithTimeout(ctx, snapshotIdle)
		chunk, err := sub.NextMsgWithContext(nctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return Snapshot{}, ctx.Err()
			}
			return Snapshot{}, fmt.Errorf("snapshot of stream %s: no chunk for %s: %w", s.Stream, snapshotIdle, err)
		}
		if len(chunk.Data) == 0 && chunk.Reply == "" {
			// The end: a status 204, or what went wrong.
			if status := chunk.Header.Get("Status"); status != "" && status != "204" {
				return Snapshot{}, fmt.Errorf("snapshot of stream %s: the server stopped sending: %s %s", s.Stream, status, chunk.Header.Get("Description"))
			}
			return resp.Snapshot, nil
		}
		if _, err := w.Write(chunk.Data); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot of stream %s: write: %w", s.Stream, err)
		}
		if chunk.Reply != "" {
			// The acknowledgement that lets the server send the next chunk.
			if err := chunk.Respond(nil); err != nil {
				return Snapshot{}, fmt.Errorf("snapshot of stream %s: %w", s.Stream, err)
			}
		}
	}
}

// OpenRestore starts or connects to the server as Open does, restores the log's stream from a
// snapshot (see Snapshot) read from r through JetStream's restore API, checks that the stream
// holds what the snapshot says, and then opens it as Open does. The stream must not exist.
// The snapshot's configuration is kept but for the replicas, which are the store's.
func (s *Store) OpenRestore(ctx context.Context, snap Snapshot, r io.Reader) (err error) {
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	var cfg map[string]any
	if err := json.Unmarshal(snap.Config, &cfg); err != nil {
		return fmt.Errorf("restore: the snapshot's stream configuration: %w", err)
	}
	if name, _ := cfg["name"].(string); name != s.Stream {
		return fmt.Errorf("restore: the snapshot is of stream %q, this log's stream is %q", name, s.Stream)
	}
	cfg["num_replicas"] = s.Replicas
	if err := s.check(); err != nil {
		return err
	}
	if err := s.connect(); err != nil {
		return err
	}
	if _, err := s.js.Stream(ctx, s.Stream); err == nil {
		return fmt.Errorf("restore: stream %s already exists; restore into an empty log", s.Stream)
	}
	if err := s.restore(ctx, cfg, snap, r); err != nil {
		return errors.Join(fmt.Errorf("restore stream %s: %w", s.Stream, err), s.deleteUnfinished(ctx))
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.deleteUnfinished(ctx))
		}
	}()
	if err := s.createStream(ctx); err != nil {
		return err
	}
	st, err := s.State(ctx)
	if err != nil {
		return err
	}
	if want := snap.State; st.LastSeq != want.LastSeq || st.Msgs != want.Msgs || st.FirstSeq != want.FirstSeq {
		return fmt.Errorf("restore stream %s: it holds %d messages from %d to %d, the snapshot %d from %d to %d",
			s.Stream, st.Msgs, st.FirstSeq, st.LastSeq, want.Msgs, want.FirstSeq, want.LastSeq)
	}
	return nil
}

// DeleteStream deletes the log's stream and everything in it, even when ctx is done (a
// restore cut short is undone): what a restore that did not complete calls, so that no
// complete-looking log is left on the server. A stream already gone is not an error.
func (s *Store) DeleteStream(ctx context.Context) error {
	ctx, cancel := withReadTimeout(context.WithoutCancel(ctx))
	defer cancel()
	if err := s.js.DeleteStream(ctx, s.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream %s: %w", s.Stream, err)
	}
	return nil
}

// deleteUnfinished deletes the stream of a restore that failed after it began.
func (s *Store) deleteUnfinished(ctx context.Context) error {
	if err := s.DeleteStream(ctx); err != nil {
		return fmt.Errorf("undo the restore: %w", err)
	}
	return nil
}

// restore sends the restore request and then the snapshot, chunk by chunk, each one answered.
func (s *Store) restore(ctx context.Context, cfg map[string]any, snap Snapshot, r io.Reader) error {
	req, err := json.Marshal(map[string]any{"config": cfg, "state": snap.State})
	if err != nil {
		return err
	}
	var start struct {
		DeliverSubject string    `json:"deliver_subject"`
		Error          *apiError `json:"error"`
	}
	if err := s.request(ctx, "$JS.API.STREAM.RESTORE."+s.Stream, req, &start); err != nil {
		return err
	}
	if start.Error != nil {
		return start.Error
	}
	buf := make([]byte, restoreChunk)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			var ans struct {
				Error *apiError `json:"error"`
			}
			if err := s.request(ctx, start.DeliverSubject, buf[:n], &ans); err != nil {
				return err
			}
			if ans.Error != nil {
				return ans.Error
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read the snapshot: %w", rerr)
		}
	}
	// An empty chunk ends it; the answer says whether the server made a stream of it.
	var done struct {
		Error *apiError `json:"error"`
	}
	if err := s.request(ctx, start.DeliverSubject, nil, &done); err != nil {
		return err
	}
	if done.Error != nil {
		return done.Error
	}
	return nil
}

// request sends data to subject and decodes a JSON answer into v (an empty answer leaves v).
func (s *Store) request(ctx context.Context, subject string, data []byte, v any) error {
	ctx, cancel := context.WithTimeout(ctx, restoreWait)
	defer cancel()
	msg, err := s.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data})
	if err != nil {
		return err
	}
	if len(msg.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(msg.Data, v); err != nil {
		return fmt.Errorf("the server's answer %q: %w", msg.Data, err)
	}
	return nil
}
