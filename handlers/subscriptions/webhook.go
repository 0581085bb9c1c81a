package subscriptions

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Webhook posts events to a URL, signed with a secret. The body is
//
//	{"subscription":"<id>","seq":42,"subject":"ledger.memory.<id>","event":{...as stored...}}
//
// with the headers EventIDHeader, EventTypeHeader, SeqHeader, SubscriptionHeader,
// AttemptHeader and SignatureHeader. Any 2xx answer is a delivery; anything else (network
// errors included) is retried by the feed.
type Webhook struct {
	// Subscription is the subscription's id, sent with every delivery.
	Subscription string
	URL          string
	Secret       []byte
	Client       *http.Client
	// Now is the clock signatures are stamped with (time.Now).
	Now func() time.Time
}

// Body is the body a delivery of m sends.
func (w *Webhook) Body(m Message) []byte {
	var b bytes.Buffer
	b.Grow(len(m.Data) + 128)
	b.WriteString(`{"subscription":`)
	b.WriteString(strconv.Quote(w.Subscription))
	b.WriteString(`,"seq":`)
	b.WriteString(strconv.FormatUint(m.Seq, 10))
	b.WriteString(`,"subject":`)
	b.WriteString(strconv.Quote(m.Subject))
	b.WriteString(`,"event":`)
	b.Write(m.Data)
	b.WriteString("}")
	return b.Bytes()
}

// Deliver implements Deliverer.
func (w *Webhook) Deliver(ctx context.Context, m Message) error {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	body := w.Body(m)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return PermanentError{Err: fmt.Errorf("webhook request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "memledger-subscriptions")
	req.Header.Set(EventIDHeader, m.ID)
	req.Header.Set(EventTypeHeader, m.Type)
	req.Header.Set(SeqHeader, strconv.FormatUint(m.Seq, 10))
	req.Header.Set(SubscriptionHeader, w.Subscription)
	req.Header.Set(AttemptHeader, strconv.Itoa(m.Attempt))
	req.Header.Set(SignatureHeader, Sign(w.Secret, body, now()))
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return nil
	}
	return fmt.Errorf("receiver answered %s", res.Status)
}
