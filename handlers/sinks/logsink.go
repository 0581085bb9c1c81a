package sinks

import (
	"context"
	"log/slog"

	"github.com/memledger/memledger/domain"
)

// LogSink writes alerts to the structured log, at a level by severity.
type LogSink struct{ Logger *slog.Logger }

// Name implements Sink.
func (LogSink) Name() string { return "log" }

// Deliver implements Sink.
func (s LogSink) Deliver(ctx context.Context, a domain.Alert) error {
	level := slog.LevelInfo
	switch a.Severity {
	case domain.SeverityWarning:
		level = slog.LevelWarn
	case domain.SeverityCritical:
		level = slog.LevelError
	}
	s.Logger.Log(ctx, level, "alert: "+a.Title, "alert_id", a.ID, "severity", a.Severity,
		"message", a.Message, "context", a.Context, "seq", a.Seq)
	return nil
}
