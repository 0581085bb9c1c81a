package atocore

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/memledger/memledger/domain"
)

// maxEventContent bounds the chunk content one document event carries, far below the log's
// message limit (1 MB) even when every character is escaped.
const maxEventContent = 256 << 10

// readDocuments maps documents to a document.recorded event with their chunks (and, for a
// long document, document.chunks_added events after it), at the time they were ingested. A
// chunk whose document is gone becomes a document.chunks_added of that missing document:
// memledger's integrity check reports it as an orphaned chunk, as AtoCore's did.
func (b *builder) readDocuments(docs, chunks []row) {
	byDoc := map[string][]domain.Chunk{}
	chunkTime := map[string]time.Time{}
	for _, r := range chunks {
		id := r.str("id")
		c := domain.Chunk{ID: id, DocumentID: r.str("document_id"), Content: r.str("content"), HeadingPath: r.str("heading_path")}
		if v, ok := r.get("chunk_index"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				b.report.skip("source_chunks", id, "chunk_index %q is not a number", v)
				continue
			}
			c.ChunkIndex = n
		} else {
			c.ChunkIndex = -1 // numbered below, in row order
		}
		if v, ok := r.get("char_count"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n != utf8.RuneCountInString(c.Content) {
				b.report.adjust("source_chunks", id, "char_count", v, strconv.Itoa(utf8.RuneCountInString(c.Content)))
			}
		}
		byDoc[c.DocumentID] = append(byDoc[c.DocumentID], c)
		if t := b.rowTime("source_chunks", id, "created_at", r, time.Time{}); !t.IsZero() {
			if old, ok := chunkTime[c.DocumentID]; !ok || t.Before(old) {
				chunkTime[c.DocumentID] = t
			}
		}
	}
	for doc, cs := range byDoc {
		next := 0
		for _, c := range cs {
			next = max(next, c.ChunkIndex+1)
		}
		for i := range cs {
			if cs[i].ChunkIndex < 0 {
				cs[i].ChunkIndex = next
				next++
			}
		}
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].ChunkIndex < cs[j].ChunkIndex })
		byDoc[doc] = cs
	}
	owner := func(id string) (string, bool) { d, ok := b.chunkIDs[id]; return d, ok }
	seen := map[string]bool{}
	for _, r := range docs {
		id := r.str("id")
		seen[id] = true
		var tags []string
		if v := r.str("tags"); v != "" {
			if err := json.Unmarshal([]byte(v), &tags); err != nil {
				b.report.skip("source_documents", id, "tags %q are not a JSON list of strings", v)
				continue
			}
		}
		docType := "markdown"
		if v, ok := r.get("doc_type"); ok {
			docType = v
		}
		at := b.rowTime("source_documents", id, "ingested_at", r, time.Time{})
		if at.IsZero() {
			at = b.rowTime("source_documents", id, "updated_at", r, chunkTime[id])
		}
		if at.IsZero() {
			b.report.skip("source_documents", id, "has no ingested_at, updated_at, nor chunks with a time")
			continue
		}
		cmd := domain.RecordDocument{ID: id, FilePath: r.str("file_path"), FileHash: r.str("file_hash"),
			Title: r.str("title"), DocType: docType, Tags: tags, Chunks: byDoc[id]}
		meta := domain.Meta{EventID: eventID("source_documents", id), Actor: Actor, Note: "imported from AtoCore",
			CorrelationID: "atocore/source_documents/" + id, Time: at}
		ev, err := domain.DecideRecordDocument(domain.DocumentState{ChunkOwner: owner}, cmd, meta)
		if err != nil {
			b.report.skip("source_documents", id, "%v (its %d chunks are not imported either)", err, len(byDoc[id]))
			continue
		}
		rec := ev.Data.(domain.DocumentRecorded)
		batches := chunkBatches(rec.Chunks)
		rec.Chunks = batches[0]
		ev.Data = rec
		b.emit(ev)
		for i, batch := range batches[1:] {
			meta.EventID = eventID("source_documents", id, "chunks", strconv.Itoa(i+1))
			b.emit(domain.NewEvent(id, meta, domain.ChunksAdded{Chunks: batch}))
		}
		for _, c := range rec.Chunks {
			b.chunkIDs[c.ID] = id
		}
		for _, batch := range batches[1:] {
			for _, c := range batch {
				b.chunkIDs[c.ID] = id
			}
		}
	}
	var orphanDocs []string
	for doc := range byDoc {
		if !seen[doc] {
			orphanDocs = append(orphanDocs, doc)
		}
	}
	sort.Strings(orphanDocs)
	for _, doc := range orphanDocs {
		cs := byDoc[doc]
		at, ok := chunkTime[doc]
		if !ok {
			at = b.now
		}
		// Checked as a document's chunks would be.
		_, err := domain.DecideRecordDocument(domain.DocumentState{ChunkOwner: owner},
			domain.RecordDocument{ID: doc, FilePath: "(missing)", Chunks: cs}, domain.Meta{Actor: Actor})
		if err != nil {
			for _, c := range cs {
				b.report.skip("source_chunks", c.ID, "of missing document %s: %v", doc, err)
			}
			continue
		}
		for _, c := range cs {
			b.report.OrphanedChunks = append(b.report.OrphanedChunks, c.ID)
			b.chunkIDs[c.ID] = doc
		}
		for i := range cs {
			cs[i].DocumentID, cs[i].CharCount = doc, utf8.RuneCountInString(cs[i].Content)
		}
		for i, batch := range chunkBatches(cs) {
			b.emit(domain.NewEvent(doc, domain.Meta{EventID: eventID("source_chunks", doc, "orphans", strconv.Itoa(i)),
				Actor: Actor, Note: fmt.Sprintf("imported from AtoCore: chunks of document %s, which the database no longer has", doc),
				CorrelationID: "atocore/source_chunks", Time: at}, domain.ChunksAdded{Chunks: batch}))
		}
	}
}

// chunkBatches splits chunks so that no event carries more than maxEventContent of content;
// the first batch may be empty (a document without chunks).
func chunkBatches(cs []domain.Chunk) [][]domain.Chunk {
	batches := [][]domain.Chunk{{}}
	size := 0
	for _, c := range cs {
		last := len(batches) - 1
		if size+len(c.Content) > maxEventContent && len(batches[last]) > 0 {
			batches = append(batches, []domain.Chunk{})
			last, size = last+1, 0
		}
		batches[last] = append(batches[last], c)
		size += len(c.Content)
	}
	return batches
}
