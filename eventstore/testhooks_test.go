package eventstore

import "github.com/nats-io/nats-server/v2/server"

// EmbeddedServer is the store's embedded server, for the tests that act on it directly.
func (s *Store) EmbeddedServer() *server.Server { return s.srv }
