package tests

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/stretchr/testify/require"
)

// The limits and thresholds the README calls defaults are settings.
func TestConfiguredLimitsAndThresholds(t *testing.T) {
	l := startLedger(t, withConfig(func(c *app.Config) {
		c.MaxContent = 10
		c.AutoPromoteRefs = 1
		c.AutoPromoteConfidence = 0.5
	}))
	res := l.do("POST", "/memory", map[string]any{"memory_type": "knowledge", "content": strings.Repeat("x", 11)})
	require.Equal(t, 400, res.Status)
	require.Contains(t, res.JSON(t)["detail"], "the maximum is 10")

	m := l.create(map[string]any{"memory_type": "knowledge", "content": "short", "status": "candidate", "confidence": 0.5})
	require.Equal(t, 200, l.do("POST", "/memory/"+m["id"].(string)+"/reinforce", map[string]any{}).Status)
	promoted := l.do("POST", "/admin/memory/auto-promote", nil).JSON(t)["promoted"]
	require.Equal(t, []any{m["id"]}, promoted, "one reinforcement and 0.55 pass thresholds of 1 and 0.5")
}

func TestConfigOutOfRangeIsRefused(t *testing.T) {
	for _, set := range []func(*app.Config){
		func(c *app.Config) { c.MaxContent = 0 },
		func(c *app.Config) { c.AutoPromoteConfidence = 1.5 },
		func(c *app.Config) { c.CandidateMaxAgeDays = 0 },
		func(c *app.Config) { c.MinPassRate = -1 },
	} {
		cfg := app.DefaultConfig()
		cfg.Addr, cfg.Data, cfg.NightlyAt = "127.0.0.1:0", t.TempDir(), ""
		set(&cfg)
		m := app.NewMain(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := m.Open(ctx)
		cancel()
		require.Error(t, err)
		require.NoError(t, m.Close())
	}
}
