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
//
// The keys of a scattered bucket (see scatter) land all over its tree whatever the order of the
// log, and a flush rewrites about every leaf they land on, so the more often such a bucket is
// flushed, the more of its tree a build writes again: it grows with the square of the log.
// When the budget is full, its writes are kept until they hold half of it, or the build ends.
type heldBuckets struct {
	writes map[string]*heldMap
	// bytes is about how much memory the held writes take.
	bytes int
	// scattered names the scattered buckets.
	scattered map[string]bool
}

// heldMap is one bucket's held writes.
type heldMap struct {
	w map[string]heldValue
	// bytes is about how much memory they take.
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
	return &heldBuckets{writes: map[string]*heldMap{}, scattered: map[string]bool{}}
}

// scatter marks bucket name as scattered.
func (h *heldBuckets) scatter(name []byte) { h.scattered[string(name)] = true }

// bucket returns bucket name of tx with its writes held; reads see the held writes first.
func (h *heldBuckets) bucket(tx *bolt.Tx, name []byte) kv {
	m, ok := h.writes[string(name)]
	if !ok {
		m = &heldMap{w: map[string]heldValue{}}
		h.writes[string(name)] = m
	}
	return heldBucket{h: h, b: tx.Bucket(name), m: m}
}

// flush writes the held writes to tx, each bucket in key order, and forgets them; a scattered
// bucket's writes are kept while they hold fewer than keep bytes (0 writes them all).
func (h *heldBuckets) flush(tx *bolt.Tx, keep int) error {
	return h.startFlush(keep).write(tx)
}

// heldFlush is a flush whose keys are being sorted in a goroutine of its own (startFlush).
type heldFlush struct {
	h      *heldBuckets
	done   chan struct{}
	sorted map[string][]string
}

// startFlush begins a flush (see flush): the keys of the buckets it writes are sorted in a
// goroutine of its own, so that the caller can write other buckets meanwhile. Until write or
// wait returns, the caller must not touch the held buckets.
func (h *heldBuckets) startFlush(keep int) *heldFlush {
	f := &heldFlush{h: h, done: make(chan struct{}), sorted: map[string][]string{}}
	var names []string
	for name, m := range h.writes {
		if len(m.w) > 0 && !(h.scattered[name] && m.bytes < keep) {
			names = append(names, name)
		}
	}
	go func() {
		defer close(f.done)
		for _, name := range names {
			f.sorted[name] = slices.Sorted(maps.Keys(h.writes[name].w))
		}
	}()
	return f
}

// wait returns once the keys are sorted.
func (f *heldFlush) wait() { <-f.done }

// write writes the flush's buckets to tx, in key order, and forgets their writes (their maps
// are kept, emptied, so that they do not grow again from nothing).
func (f *heldFlush) write(tx *bolt.Tx) error {
	f.wait()
	for name, keys := range f.sorted {
		m := f.h.writes[name]
		b := appendBucket(tx, []byte(name))
		for _, k := range keys {
			var err error
			if hv := m.w[k]; hv.deleted {
				err = b.Delete([]byte(k))
			} else {
				err = b.Put([]byte(k), hv.v)
			}
			if err != nil {
				return err
			}
		}
		clear(m.w)
		f.h.bytes -= m.bytes
		m.bytes = 0
	}
	return nil
}

type heldBucket struct {
	h *heldBuckets
	b *bolt.Bucket
	m *heldMap
}

func (b heldBucket) Get(k []byte) []byte {
	if hv, ok := b.m.w[string(k)]; ok {
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
	n := len(hv.v)
	if old, ok := b.m.w[string(k)]; ok {
		n -= len(old.v)
	} else {
		n += len(k) + heldEntryBytes
	}
	b.h.bytes += n
	b.m.bytes += n
	b.m.w[string(k)] = hv
}
