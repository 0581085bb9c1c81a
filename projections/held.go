package projections

import (
	"bytes"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// kv is what a projection's apply does with a bucket: get, put and delete, no cursors. Both a
// bbolt bucket and a rebuild's held bucket are one.
type kv interface {
	Get(k []byte) []byte
	Put(k, v []byte) error
	Delete(k []byte) error
}

// heldBuckets hold a rebuild's writes to some buckets in memory across batches, and write them
// sorted when flushed. A log where the events of one memory lie far apart makes every batch of a
// rebuild rewrite pages all over the trees those writes land in, again and again; held and
// written once, in key order, the same data costs a fraction of the pages. Only a rebuild holds
// writes: the file is not used until the build ends with a flush.
type heldBuckets struct {
	writes map[string]map[string]heldValue
	// bytes is about how much memory the held writes take.
	bytes int
}

// heldBytesMax is the budget of the builds that are given none (HeldBudget): tests make it
// small.
var heldBytesMax int64 = DefaultHeldBytes

// heldEntryBytes is about what a held entry costs beyond its key and value (map slot, headers).
const heldEntryBytes = 64

// heldValue is a held write: a value, or a delete.
type heldValue struct {
	v       []byte
	deleted bool
}

func newHeldBuckets() *heldBuckets {
	return &heldBuckets{writes: map[string]map[string]heldValue{}}
}

// bucket returns bucket name of tx with its writes held; reads see the held writes first.
func (h *heldBuckets) bucket(tx *bolt.Tx, name []byte) kv {
	w, ok := h.writes[string(name)]
	if !ok {
		w = map[string]heldValue{}
		h.writes[string(name)] = w
	}
	return heldBucket{h: h, b: tx.Bucket(name), w: w}
}

// flush writes every held write to tx, each bucket in key order, and forgets them.
func (h *heldBuckets) flush(tx *bolt.Tx) error {
	for name, w := range h.writes {
		b := appendBucket(tx, []byte(name))
		for _, k := range slices.Sorted(maps.Keys(w)) {
			var err error
			if hv := w[k]; hv.deleted {
				err = b.Delete([]byte(k))
			} else {
				err = b.Put([]byte(k), hv.v)
			}
			if err != nil {
				return err
			}
		}
	}
	h.writes, h.bytes = map[string]map[string]heldValue{}, 0
	return nil
}

type heldBucket struct {
	h *heldBuckets
	b *bolt.Bucket
	w map[string]heldValue
}

func (b heldBucket) Get(k []byte) []byte {
	if hv, ok := b.w[string(k)]; ok {
		if hv.deleted {
			return nil
		}
		if hv.v == nil {
			return []byte{} // bbolt's Get gives a non-nil empty slice for an empty value
		}
		return hv.v
	}
	return b.b.Get(k)
}

func (b heldBucket) Put(k, v []byte) error {
	b.set(k, heldValue{v: bytes.Clone(v)})
	return nil
}

func (b heldBucket) Delete(k []byte) error {
	b.set(k, heldValue{deleted: true})
	return nil
}

func (b heldBucket) set(k []byte, hv heldValue) {
	if old, ok := b.w[string(k)]; ok {
		b.h.bytes -= len(old.v)
	} else {
		b.h.bytes += len(k) + heldEntryBytes
	}
	b.h.bytes += len(hv.v)
	b.w[string(k)] = hv
}
