package eventstore

import "github.com/nats-io/nats-server/v2/server"

// EmbeddedServer is the store's embedded server, for the tests that act on it directly.
func (s *Store) EmbeddedServer() *server.Server { return s.srv }

// EnableJetStreamAgain switches the embedded server's JetStream back on as the store's
// revival does, for the tests that keep it off longer than the revival would.
func (s *Store) EnableJetStreamAgain() error {
	cfg := s.revive.cfg
	return s.srv.EnableJetStream(&cfg)
}

// StreamStateOutdated is streamStateOutdated, for the tests of the start's check of it.
var StreamStateOutdated = streamStateOutdated
