package projections

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
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
// It reads the file through a read-only mapping of the pages the meta names (the caller has
// checked that the file holds them all), so that a walk costs about one page fault per page
// rather than two reads and two allocations.
func walkPages(f *os.File, m boltMeta, root uint64) error {
	size := int(m.hwm) * int(m.pageSize)
	if size == 0 {
		return fmt.Errorf("page %d is outside the file's %d pages", root, m.hwm)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("map the file: %w", err)
	}
	defer syscall.Munmap(data)
	_ = syscall.Madvise(data, syscall.MADV_SEQUENTIAL)
	w := pageWalker{data: data, meta: m, seen: make([]uint64, (m.hwm+63)/64)}
	return w.page(root, 0)
}

type pageWalker struct {
	data []byte
	meta boltMeta
	// seen has a bit for each page reached.
	seen []uint64
}

func (w *pageWalker) page(id uint64, depth int) error {
	if depth > 64 {
		return fmt.Errorf("page %d: the tree is deeper than any bbolt tree", id)
	}
	if id < 2 || id >= w.meta.hwm {
		return fmt.Errorf("page %d is outside the file's %d pages", id, w.meta.hwm)
	}
	if w.seen[id/64]&(1<<(id%64)) != 0 {
		return fmt.Errorf("page %d is reached twice", id)
	}
	w.seen[id/64] |= 1 << (id % 64)
	ps := uint64(w.meta.pageSize)
	head := w.data[id*ps : id*ps+pageHeaderSize]
	le := binary.LittleEndian
	if got := le.Uint64(head); got != id {
		return fmt.Errorf("page %d identifies itself as %d", id, got)
	}
	overflow := uint64(le.Uint32(head[12:]))
	if id+overflow >= w.meta.hwm {
		return fmt.Errorf("page %d runs %d pages past the file's end", id, overflow)
	}
	return w.elements(id, w.data[id*ps:(id+overflow+1)*ps], depth)
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
