package projections

import (
	"bytes"
	"encoding/json"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// The buckets of the projects projection.
var (
	bucketProjects = []byte("projects")      // id → project JSON
	bucketAliases  = []byte("project_alias") // alias → id
)

// Projects is the projection of the project registry.
type Projects struct{}

// Name implements Projection.
func (Projects) Name() string { return "projects" }

// Init implements Projection.
func (p Projects) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()...) }

// Version implements Versioned.
func (Projects) Version() int { return 1 }

// Buckets implements Versioned.
func (Projects) Buckets() [][]byte {
	return [][]byte{bucketProjects, bucketAliases}
}

// Apply implements Projection.
func (Projects) Apply(tx *bolt.Tx, ev domain.Event) error {
	if ev.Kind() != domain.KindProject || ev.Data == nil {
		return nil
	}
	projects, aliases := tx.Bucket(bucketProjects), tx.Bucket(bucketAliases)
	if old := projects.Get([]byte(ev.AggregateID)); old != nil {
		var p domain.Project
		if err := json.Unmarshal(old, &p); err != nil {
			return err
		}
		for _, a := range p.Aliases {
			if err := aliases.Delete([]byte(a)); err != nil {
				return err
			}
		}
	}
	reg := domain.Registry{}
	domain.ApplyProject(reg, ev)
	p := reg[ev.AggregateID]
	for _, a := range p.Aliases {
		if err := aliases.Put([]byte(a), []byte(p.ID)); err != nil {
			return err
		}
	}
	return putJSON(projects, []byte(p.ID), p)
}

func createBuckets(tx *bolt.Tx, names ...[]byte) error {
	for _, b := range names {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

func putJSON(b kv, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// Registry returns every registered project.
func (db *DB) Registry() (domain.Registry, error) {
	reg := domain.Registry{}
	err := db.viewOf(domain.KindProject, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProjects)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var p domain.Project
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			reg[p.ID] = p
			return nil
		})
	})
	return reg, err
}

// ResolveProject returns the canonical id of a project name (an id or an alias); a name no
// project knows stands for itself.
func (db *DB) ResolveProject(name string) (string, error) {
	id := name
	err := db.viewOf(domain.KindProject, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketAliases); b != nil {
			if v := b.Get([]byte(name)); v != nil {
				id = string(v)
			}
		}
		return nil
	})
	return id, err
}

// GetProject returns the JSON of project id (an id or an alias), or nil.
func (db *DB) GetProject(name string) ([]byte, error) {
	id, err := db.ResolveProject(name)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketProjects); b != nil {
			out = bytes.Clone(b.Get([]byte(id)))
		}
		return nil
	})
	return out, err
}

// ListProjects returns every project, by id.
func (db *DB) ListProjects() ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProjects)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			out = append(out, bytes.Clone(v))
			return nil
		})
	})
	return out, err
}
