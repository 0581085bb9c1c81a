package app

import (
	"context"
	"net/http"

	"github.com/memledger/memledger/handlers/subscriptions"
)

// startSubscriptions starts the manager that delivers the subscriptions, with the key loaded
// at the start.
func (m *Main) startSubscriptions(ctx context.Context) error {
	keys := m.keys
	stream, err := m.Store.JetStream().Stream(ctx, m.Store.Stream)
	if err != nil {
		return err
	}
	mgr := &subscriptions.Manager{Stream: stream, List: m.DB, Keyring: keys,
		Client:  &http.Client{Timeout: m.Config.SubscriptionTimeout, Transport: m.WebhookTransport},
		Backoff: m.Config.SubscriptionBackoff, MaxBackoff: m.Config.SubscriptionMaxBackoff, Logger: m.Logger}
	m.API.Subscriptions, m.API.Keyring = mgr, keys
	m.sinksDone.Add(1)
	go func() {
		defer m.sinksDone.Done()
		// The manager acts on the subscriptions as the projections hold them: before they have
		// caught up with the log, one removed or reset meanwhile (by another instance, or
		// before this start) would be made again and delivered from its start once more.
		if err := m.Runner.WaitFor(ctx, m.Runner.CatchUpTo); err != nil {
			return
		}
		mgr.Run(ctx)
	}()
	return nil
}
