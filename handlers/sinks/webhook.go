package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/memledger/memledger/domain"
)

// WebhookSink posts alerts to a URL: a Discord webhook gets an embed, any other URL the
// alert as JSON.
type WebhookSink struct {
	URL    string
	Client *http.Client
}

// Name implements Sink.
func (WebhookSink) Name() string { return "webhook" }

// Deliver implements Sink.
func (s WebhookSink) Deliver(ctx context.Context, a domain.Alert) error {
	var body any = a
	if IsDiscordWebhook(s.URL) {
		body = DiscordPayload(a)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return PermanentError{Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(data))
	if err != nil {
		return PermanentError{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "memledger/"+"alerts")
	res, err := s.Client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("webhook answered %s", res.Status)
	if res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusRequestTimeout {
		return PermanentError{Err: err}
	}
	if after, _ := strconv.Atoi(res.Header.Get("Retry-After")); after > 0 && after <= 60 {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(after) * time.Second):
		}
	}
	return err
}
