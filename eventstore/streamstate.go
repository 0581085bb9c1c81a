package eventstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/minio/highwayhash"
)

// The embedded server keeps each stream's state (its counts, every subject's first and last
// block, the blocks) in the stream's msgs/index.db, written every two minutes or so and at a
// clean stop, and ends it with the index of the stream's last block, that block's last
// checksum and a hash of the file. At its start it reads the whole file, a million subjects'
// worth on a million memories, and only then compares that checksum with the last block's: a
// file written before the last block took its last message is discarded, and the state is
// rebuilt from every block. After a crash that is always so (messages were appended since the
// file was written), and the read is wasted: about a second on a million memories.
// dropOutdatedStreamStates makes the same comparison from the ends of the two files, and
// removes a state file the server would discard when the last block holds every position the
// file names (it reads the file's last position and the block's records to tell): a file
// that remembers positions the blocks lost is left to the server, which keeps the stream's
// last position past them.
const (
	streamStateFile = "index.db"
	// What the end of a state file holds after its last block's index: the block's last
	// checksum (a record's, checksumSize) and the file's hash.
	streamStateHash = 8
	blockSuffix     = ".blk"
)

// dropOutdatedStreamStates removes the state file of every stream of the embedded server's store
// under storeDir (the server's StoreDir) that names a last block other than the stream's last
// block, or another last checksum than that block's, while that block holds the file's last
// position: the server would read it whole and then rebuild the state from the blocks alone.
// A state file it cannot judge is left to the server.
func dropOutdatedStreamStates(storeDir string, logger *slog.Logger) {
	for _, dir := range streamMsgDirs(storeDir) {
		outdated, err := streamStateOutdated(dir)
		if err != nil {
			logger.Debug("log: the stream's saved state was not judged; the server reads it", "dir", dir, "err", err)
			continue
		}
		if !outdated {
			continue
		}
		if err := os.Remove(filepath.Join(dir, streamStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			logger.Warn("log: could not remove the stream's outdated saved state; the server reads it before rebuilding the state", "dir", dir, "err", err)
			continue
		}
		logger.Info("log: the stream's saved state is older than its last block (the last stop was not clean): removed, the server rebuilds the state from the blocks", "dir", dir)
	}
}

// streamMsgDirs are the message directories of the streams of the embedded server's store
// under storeDir: jetstream/<account>/streams/<stream>/msgs.
func streamMsgDirs(storeDir string) []string {
	var out []string
	accounts, _ := os.ReadDir(filepath.Join(storeDir, "jetstream"))
	for _, a := range accounts {
		streams, _ := os.ReadDir(filepath.Join(storeDir, "jetstream", a.Name(), "streams"))
		for _, st := range streams {
			dir := filepath.Join(storeDir, "jetstream", a.Name(), "streams", st.Name(), "msgs")
			if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
				out = append(out, dir)
			}
		}
	}
	return out
}

// streamStateOutdated reports whether the state file in a stream's message directory dir was
// written before the stream's last block took its last message (see dropOutdatedStreamStates).
// It is false when there is no state file, and an error when the files cannot be read or the
// state file is too short to hold what it ends with.
func streamStateOutdated(dir string) (bool, error) {
	state, err := os.Open(filepath.Join(dir, streamStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer state.Close()
	last, ok, err := lastBlock(dir)
	if err != nil || !ok {
		return false, err
	}
	tail, err := readTail(state, binary.MaxVarintLen32+checksumSize+streamStateHash)
	if err != nil {
		return false, err
	}
	named := tail[:len(tail)-checksumSize-streamStateHash]
	checksum := tail[len(named) : len(named)+checksumSize]
	blk, err := os.Open(filepath.Join(dir, strconv.FormatUint(uint64(last), 10)+blockSuffix))
	if err != nil {
		return false, err
	}
	defer blk.Close()
	index := binary.AppendUvarint(nil, uint64(last))
	if bytes.HasSuffix(named, index) {
		if rest := named[:len(named)-len(index)]; len(rest) > 0 && rest[len(rest)-1]&0x80 != 0 {
			// The byte before does not end a varint: the index may be a longer one ending alike.
			return false, fmt.Errorf("%s: its last block's index cannot be told from its end", state.Name())
		}
		fi, err := blk.Stat()
		if err != nil {
			return false, err
		}
		var lastChecksum [checksumSize]byte
		if fi.Size() >= checksumSize {
			if _, err := blk.ReadAt(lastChecksum[:], fi.Size()-checksumSize); err != nil {
				return false, err
			}
		}
		if bytes.Equal(checksum, lastChecksum[:]) {
			return false, nil
		}
	}
	// It names another block, or another last checksum: the stream grew since it was written,
	// or its blocks lost messages (a last block cut short or gone). Only in the first case is
	// it removed: when the blocks lost messages it remembers, the server keeps the stream's
	// last position past them (a tombstone at it), so that none is used again.
	stateLast, err := streamStateLastSeq(state)
	if err != nil {
		return false, err
	}
	blockLast, err := lastValidSeq(blk, filepath.Base(filepath.Dir(dir)), last)
	if err != nil {
		return false, err
	}
	return blockLast >= stateLast, nil
}

// The start of a state file: a magic byte and a version, then the stream's message and byte
// counts, its first position and time, and its last position, as varints.
const (
	streamStateMagic      = 11
	streamStateMaxVersion = 4
)

// streamStateLastSeq is the stream's last position as the state file f says it.
func streamStateLastSeq(f *os.File) (uint64, error) {
	head := make([]byte, 2+5*binary.MaxVarintLen64)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	head = head[:n]
	if len(head) < 2 || head[0] != streamStateMagic || head[1] < 1 || head[1] > streamStateMaxVersion {
		return 0, fmt.Errorf("%s: not a stream state file of a version this program reads", f.Name())
	}
	i := 2
	var last uint64
	for field := range 5 {
		var v uint64
		var k int
		if field == 3 { // the first time, signed
			var sv int64
			sv, k = binary.Varint(head[i:])
			v = uint64(sv)
		} else {
			v, k = binary.Uvarint(head[i:])
		}
		if k <= 0 {
			return 0, fmt.Errorf("%s: its counts cannot be read", f.Name())
		}
		i += k
		last = v
	}
	return last, nil
}

// The records of a message block: a header of the record's length (its top bit set when the
// message has headers), position and time (8 bytes each) and the subject's length (2), then
// the subject, the headers' length and headers, the message, and a checksum of 8 bytes.
const (
	recordHeader      = 22
	checksumSize      = 8
	recordHasHeaders  = 1 << 31
	recordTombstone   = 1 << 62
	recordErased      = 1 << 63
	recordMaxLength   = 32 << 20
	blockHashKeyShape = "%s-%d"
)

// lastValidSeq is the highest position among the records of the block file f (block index of
// stream) that read whole and match their checksum, as the server checks them, up to the first
// that does not.
func lastValidSeq(f *os.File, stream string, index uint32) (uint64, error) {
	buf, err := io.ReadAll(f) // read with ReadAt until now: at its start
	if err != nil {
		return 0, err
	}
	key := sha256.Sum256(fmt.Appendf(nil, blockHashKeyShape, stream, index))
	hh, err := highwayhash.NewDigest64(key[:])
	if err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	var last uint64
	var sum [checksumSize]byte
	for i := 0; i+recordHeader <= len(buf); {
		hdr := buf[i : i+recordHeader]
		rl, slen := le.Uint32(hdr[0:]), int(le.Uint16(hdr[20:]))
		headers := rl&recordHasHeaders != 0
		rl &^= recordHasHeaders
		shlen := slen
		if headers {
			shlen += 4
		}
		dlen := int(rl) - recordHeader
		if dlen < 0 || shlen > dlen-checksumSize || rl > recordMaxLength || i+int(rl) > len(buf) {
			break
		}
		data := buf[i+recordHeader : i+int(rl)]
		hh.Reset()
		hh.Write(hdr[4:20])
		hh.Write(data[:slen])
		if headers {
			hh.Write(data[slen+4 : dlen-checksumSize])
		} else {
			hh.Write(data[slen : dlen-checksumSize])
		}
		if !bytes.Equal(hh.Sum(sum[:0]), data[dlen-checksumSize:]) {
			break
		}
		last = max(last, le.Uint64(hdr[4:])&^(recordTombstone|recordErased))
		i += int(rl)
	}
	return last, nil
}

// lastBlock is the highest index of the block files in dir; false when there is none.
func lastBlock(dir string) (uint32, bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, false, err
	}
	var last uint32
	found := false
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), blockSuffix)
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue
		}
		if !found || uint32(n) > last {
			last, found = uint32(n), true
		}
	}
	return last, found, nil
}

// readTail reads the last n bytes of f; an error when it holds fewer.
func readTail(f *os.File, n int) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < int64(n) {
		return nil, fmt.Errorf("%s holds %d bytes, fewer than the %d it ends with", f.Name(), fi.Size(), n)
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, fi.Size()-int64(n)); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf, nil
}
