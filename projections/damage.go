package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is a projection file that cannot be used as it is: cut short, overwritten, or
// not a bbolt file at all. It is derived from the log, so it is set aside and built again.
var ErrDamaged = errors.New("the projection file is damaged")

// bbolt's meta page: a 16-byte page header, then magic, version, page size, flags (4 bytes
// each), the root bucket (16), the freelist page, the high-water page and the transaction id
// (8 each), and a 64-bit FNV-1a checksum of everything from the magic to it.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeaderSize  = 16
	metaChecksumOff = pageHeaderSize + 56
	metaSize        = metaChecksumOff + 8
)

// checkFile checks the file at path before bbolt maps it: a file that is not there or empty is
// fine (it is created); otherwise one of its two meta pages must be whole, the pages it names
// must be inside the file, and every page of the tree must be what bbolt expects (walkPages).
// Mapping a file shorter than its meta says ends the process with SIGBUS at the first read past
// the end, and bbolt asserts on a damaged page in a goroutine nobody can recover, so this
// comes first.
//
// With walk false the tree is not walked (the file is as a clean close left it: see
// closeStamp); the meta pages and the file's length are checked all the same.
func checkFile(path string, walk bool) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open projections %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open projections %s: %w", path, err)
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	var best *boltMeta
	m0, err0 := readMeta(f, 0)
	if err0 == nil {
		best = &m0
	}
	pageSize := int64(os.Getpagesize())
	if err0 == nil {
		pageSize = int64(m0.pageSize)
	}
	if m1, err1 := readMeta(f, pageSize); err1 == nil && (best == nil || m1.txid > best.txid) {
		best = &m1
	}
	if best == nil {
		return fmt.Errorf("%w: %s has no valid meta page (%v)", ErrDamaged, path, err0)
	}
	if need := int64(best.hwm) * int64(best.pageSize); need > size {
		return fmt.Errorf("%w: %s is %d bytes long, its meta page names %d pages of %d bytes (%d bytes): the file was cut short",
			ErrDamaged, path, size, best.hwm, best.pageSize, need)
	}
	if !walk {
		return nil
	}
	if err := walkPages(f, *best, best.root); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	return nil
}

type boltMeta struct {
	root     uint64
	pageSize uint32
	// freelist is the page of the stored free list, noFreelist when none is stored.
	freelist uint64
	hwm      uint64
	txid     uint64
}

// noFreelist is a meta page's freelist page when the commit did not store the free list.
const noFreelist = ^uint64(0)

func readMeta(f *os.File, off int64) (boltMeta, error) {
	buf := make([]byte, metaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			return boltMeta{}, errors.New("file shorter than its meta pages")
		}
		return boltMeta{}, err
	}
	m := buf[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("no bbolt magic number")
	}
	if le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt version %d", le.Uint32(m[4:]))
	}
	h := fnv.New64a()
	h.Write(buf[pageHeaderSize:metaChecksumOff])
	if h.Sum64() != le.Uint64(buf[metaChecksumOff:]) {
		return boltMeta{}, errors.New("meta page checksum mismatch")
	}
	ps := le.Uint32(m[8:])
	if ps < 512 || ps > 1<<20 || ps&(ps-1) != 0 {
		return boltMeta{}, fmt.Errorf("page size %d", ps)
	}
	return boltMeta{root: le.Uint64(m[16:]), pageSize: ps, freelist: le.Uint64(m[32:]), hwm: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, nil
}

// openBolt opens the file with bbolt after checkFile, turning a panic of bbolt's on a damaged
// file into ErrDamaged.
func openBolt(path string, opts *bolt.Options, walk bool) (b *bolt.DB, err error) {
	if err := checkFile(path, walk); err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			if b != nil {
				b.Close()
			}
			b, err = nil, fmt.Errorf("%w: %s: bbolt: %v", ErrDamaged, path, p)
		}
	}()
	b, err = bolt.Open(path, 0o600, opts)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// SetAside renames a damaged projection file (and its open marker) out of the way, so that
// the projections are built again from the log, and says so in the log.
func SetAside(path string, cause error, logger *slog.Logger) (string, error) {
	aside := fmt.Sprintf("%s.damaged-%d", path, time.Now().Unix())
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("set the damaged projections aside: %w", err)
	}
	os.Remove(path + ".open")
	os.Remove(stampPath(path))
	logger.Error("the projection file is damaged; set aside, building the projections again from the log",
		"path", path, "moved_to", aside, "err", cause)
	return aside, nil
}
