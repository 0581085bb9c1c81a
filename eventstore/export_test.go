package eventstore

// RegisteredTypes returns every event type the codec knows and its current schema version,
// for the golden-fixture tests.
func RegisteredTypes() map[string]int {
	types := make(map[string]int, len(events.types))
	for name, t := range events.types {
		types[name] = t.version
	}
	return types
}

// LoadBatch is the unexported batch size the tests check against.
const LoadBatch = loadBatch
