package handlers

import (
	"mime/multipart"
	"net/http"

	"github.com/memledger/memledger/handlers/backup"
)

// startOnWrite sends the backup's status and media type with its first byte, so that a backup
// that fails before it sends anything is answered with a problem detail instead.
type startOnWrite struct {
	w           http.ResponseWriter
	contentType string
	started     bool
}

func (s *startOnWrite) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", s.contentType)
		s.w.Header().Set("Cache-Control", "no-store")
		s.w.WriteHeader(http.StatusOK)
	}
	return s.w.Write(p)
}

// postBackup streams a backup of the running service (see package backup): the projections'
// copy, the log's snapshot, the keys, and the manifest last, as multipart/mixed parts.
func (s *Server) postBackup(w http.ResponseWriter, r *http.Request) {
	if s.Backup == nil {
		s.problem(w, r, http.StatusServiceUnavailable, "this service takes no backups (no backup source configured)", "")
		return
	}
	if r.ContentLength > 0 {
		s.problem(w, r, http.StatusBadRequest, "POST /admin/backup takes no body", "")
		return
	}
	sw := &startOnWrite{w: w}
	mw := multipart.NewWriter(sw)
	sw.contentType = backup.ContentType + "; boundary=" + mw.Boundary()
	m, err := backup.Write(r.Context(), *s.Backup, mw)
	if err != nil {
		if !sw.started {
			s.Logger.Error("backup failed", "err", err)
			s.problem(w, r, http.StatusServiceUnavailable, err.Error(), "")
			return
		}
		// The answer is cut off: the client finds no manifest and keeps nothing.
		s.Logger.Error("backup failed while it was sent", "err", err)
		panic(http.ErrAbortHandler)
	}
	s.Logger.Info("backup sent", "last_seq", m.LastSeq, "messages", m.Messages)
}
