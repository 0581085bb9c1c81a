package projections

import (
	"encoding/binary"
	"fmt"
	"os"
)

// bbolt's page layout: a header (id, flags, count, overflow), then count elements of 16
// bytes: a branch element is (pos, ksize, child page), a leaf element (flags, pos, ksize,
// vsize); pos is from the element to its key, the value follows the key. A bucket's value is
// its root page and sequence, then, for an inline bucket (root 0), a leaf page of its own.
const (
	branchFlag     = 0x01
	leafFlag       = 0x02
	bucketLeafFlag = 0x01
	elementSize    = 16
	bucketHeader   = 16
)

// walkPages checks every page reachable from the root bucket the way bbolt reads it (its id,
// its kind, its elements inside it, its children inside the file) without bbolt, which panics
// in a goroutine of its own on such a page when it opens a file whose free list is not stored.
func walkPages(f *os.File, m boltMeta, root uint64) error {
	w := pageWalker{f: f, meta: m, seen: map[uint64]bool{}}
	return w.page(root, 0)
}

type pageWalker struct {
	f    *os.File
	meta boltMeta
	seen map[uint64]bool
}

func (w *pageWalker) page(id uint64, depth int) error {
	if depth > 64 {
		return fmt.Errorf("page %d: the tree is deeper than any bbolt tree", id)
	}
	if id < 2 || id >= w.meta.hwm {
		return fmt.Errorf("page %d is outside the file's %d pages", id, w.meta.hwm)
	}
	if w.seen[id] {
		return fmt.Errorf("page %d is reached twice", id)
	}
	w.seen[id] = true
	ps := int64(w.meta.pageSize)
	head := make([]byte, pageHeaderSize)
	if _, err := w.f.ReadAt(head, int64(id)*ps); err != nil {
		return fmt.Errorf("page %d: %w", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(head); got != id {
		return fmt.Errorf("page %d identifies itself as %d", id, got)
	}
	overflow := uint64(le.Uint32(head[12:]))
	if id+overflow >= w.meta.hwm {
		return fmt.Errorf("page %d runs %d pages past the file's end", id, overflow)
	}
	buf := make([]byte, (overflow+1)*uint64(ps))
	if _, err := w.f.ReadAt(buf, int64(id)*ps); err != nil {
		return fmt.Errorf("page %d: %w", id, err)
	}
	return w.elements(id, buf, depth)
}

// elements checks the elements of the page held in buf (a whole page, or an inline bucket's).
func (w *pageWalker) elements(id uint64, buf []byte, depth int) error {
	le := binary.LittleEndian
	flags, count := le.Uint16(buf[8:]), int(le.Uint16(buf[10:]))
	if flags != branchFlag && flags != leafFlag {
		return fmt.Errorf("page %d has kind %#x, neither branch nor leaf", id, flags)
	}
	if count == 0xFFFF {
		return nil // a count too large for the header: bbolt keeps it elsewhere
	}
	if pageHeaderSize+count*elementSize > len(buf) {
		return fmt.Errorf("page %d: %d elements do not fit in it", id, count)
	}
	for i := range count {
		at := pageHeaderSize + i*elementSize
		e := buf[at : at+elementSize]
		if flags == branchFlag {
			pos, ksize := int(le.Uint32(e[0:])), int(le.Uint32(e[4:]))
			if at+pos+ksize > len(buf) {
				return fmt.Errorf("page %d: element %d's key is outside the page", id, i)
			}
			if err := w.page(le.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		eflags, pos, ksize, vsize := le.Uint32(e[0:]), int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
		if at+pos+ksize+vsize > len(buf) || pos < 0 {
			return fmt.Errorf("page %d: element %d is outside the page", id, i)
		}
		if eflags&bucketLeafFlag == 0 {
			continue
		}
		v := buf[at+pos+ksize : at+pos+ksize+vsize]
		if len(v) < bucketHeader {
			return fmt.Errorf("page %d: element %d is a bucket too short for its header", id, i)
		}
		if root := le.Uint64(v); root != 0 {
			if err := w.page(root, depth+1); err != nil {
				return err
			}
		} else if inline := v[bucketHeader:]; len(inline) >= pageHeaderSize {
			if err := w.elements(id, inline, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
