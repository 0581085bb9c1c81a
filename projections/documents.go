package projections

import (
	"bytes"
	"encoding/json"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
)

// The buckets of the documents projection.
var (
	bucketDocuments = []byte("documents")  // id → document JSON
	bucketChunks    = []byte("chunks")     // chunk id → chunk JSON
	bucketDocChunks = []byte("doc_chunks") // pair(document id, chunk index) → chunk id
)

// Documents is the projection of documents and their chunks.
type Documents struct{}

// Name implements Projection.
func (Documents) Name() string { return "documents" }

// Init implements Projection.
func (p Documents) Init(tx *bolt.Tx) error { return createBuckets(tx, p.Buckets()...) }

// Version implements Versioned. (2: document-chunk keys are length-prefixed.)
func (Documents) Version() int { return 2 }

// Buckets implements Versioned.
func (Documents) Buckets() [][]byte {
	return [][]byte{bucketDocuments, bucketChunks, bucketDocChunks}
}

func docChunkKey(doc string, index int) []byte {
	return append(pairPrefix(doc), encodeSeq(uint64(index))...)
}

// Apply implements Projection.
func (Documents) Apply(tx *bolt.Tx, ev domain.Event) error {
	docs, chunks, idx := tx.Bucket(bucketDocuments), tx.Bucket(bucketChunks), tx.Bucket(bucketDocChunks)
	id := ev.AggregateID
	var added []domain.Chunk
	switch p := ev.Data.(type) {
	case domain.DocumentRecorded:
		tags := p.Tags
		if tags == nil {
			tags = []string{}
		}
		if err := putJSON(docs, []byte(id), domain.Document{ID: id, FilePath: p.FilePath, FileHash: p.FileHash,
			Title: p.Title, DocType: p.DocType, Tags: tags}); err != nil {
			return err
		}
		added = p.Chunks
	case domain.ChunksAdded:
		added = p.Chunks
	case domain.DocumentDeleted:
		if err := docs.Delete([]byte(id)); err != nil {
			return err
		}
		prefix := pairPrefix(id)
		var keys [][]byte
		c := idx.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := chunks.Delete(v); err != nil {
				return err
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
	}
	for _, ch := range added {
		if err := putJSON(chunks, []byte(ch.ID), ch); err != nil {
			return err
		}
		if err := idx.Put(docChunkKey(id, ch.ChunkIndex), []byte(ch.ID)); err != nil {
			return err
		}
	}
	return nil
}

// GetDocument returns a document with its chunks in index order, or nil.
func (db *DB) GetDocument(id string) (*domain.Document, []domain.Chunk, error) {
	var doc *domain.Document
	chunks := []domain.Chunk{}
	err := db.view(func(tx *bolt.Tx) error {
		docs := tx.Bucket(bucketDocuments)
		if docs == nil {
			return nil
		}
		data := docs.Get([]byte(id))
		if data == nil {
			return nil
		}
		doc = &domain.Document{}
		if err := json.Unmarshal(data, doc); err != nil {
			return err
		}
		all := tx.Bucket(bucketChunks)
		prefix := pairPrefix(id)
		c := tx.Bucket(bucketDocChunks).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var ch domain.Chunk
			if err := json.Unmarshal(all.Get(v), &ch); err != nil {
				return err
			}
			chunks = append(chunks, ch)
		}
		return nil
	})
	return doc, chunks, err
}

// DocumentState returns what document commands on id are decided on.
func (db *DB) DocumentState(id string) (domain.DocumentState, error) {
	st := domain.DocumentState{Indexes: map[int]bool{}}
	err := db.view(func(tx *bolt.Tx) error {
		docs := tx.Bucket(bucketDocuments)
		if docs == nil {
			return nil
		}
		st.Exists = docs.Get([]byte(id)) != nil
		// Chunks can be held under a document id without a record (an import wrote them
		// first): their indexes are taken all the same.
		prefix := pairPrefix(id)
		c := tx.Bucket(bucketDocChunks).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			st.Indexes[int(decodeSeq(k[len(prefix):]))] = true
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	st.ChunkOwner = func(chunkID string) (string, bool) {
		var owner string
		db.view(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bucketChunks); b != nil {
				if data := b.Get([]byte(chunkID)); data != nil {
					var ch domain.Chunk
					if json.Unmarshal(data, &ch) == nil {
						owner = ch.DocumentID
					}
				}
			}
			return nil
		})
		return owner, owner != ""
	}
	return st, nil
}
