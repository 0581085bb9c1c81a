// Package projections builds the ledger's read views in bbolt from the log: a runner applies
// events in batches, each batch one transaction that writes the views and the checkpoints
// together, so a crash never applies an event twice nor skips one.
package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/memledger/memledger/domain"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var bucketCheckpoints = []byte("checkpoints")

// DB is a projection file.
type DB struct {
	Path string
	bolt *bolt.DB
	// marker, for a live file, is the file that says it is open.
	marker string
	// committing is the group of writers' own events the runner counts as applied before they
	// are committed (see Runner.applyOwn); nil when none is under way. Reads hurry it and wait
	// for it (see view).
	committing atomic.Pointer[commit]
	// tokens are the tokens read, decoded.
	tokens tokenCache
}

// commit is a group of writers' own events that the runner counts as applied while it gathers
// them and commits them in one transaction: done is closed once it has ended. It gathers for
// ownGather at most, less when a read or the runner rushes it.
type commit struct {
	done      chan struct{}
	hurry     chan struct{}
	hurryOnce sync.Once

	mu sync.Mutex
	// events are the group's events, consecutive in the log.
	events []domain.Event
	// kinds are the aggregate kinds of its events.
	kinds []string
	// sealed is set once the commit has begun: no event joins it after.
	sealed bool
}

func newCommit(ev domain.Event) *commit {
	return &commit{done: make(chan struct{}), hurry: make(chan struct{}), events: []domain.Event{ev}, kinds: []string{ev.Kind()}}
}

// add appends ev to the group's events; c.mu is held.
func (c *commit) add(ev domain.Event) {
	c.events = append(c.events, ev)
	if k := ev.Kind(); !slices.Contains(c.kinds, k) {
		c.kinds = append(c.kinds, k)
	}
}

// rush makes the commit begin now instead of at the end of its gathering.
func (c *commit) rush() { c.hurryOnce.Do(func() { close(c.hurry) }) }

// has reports whether an event of aggregate kind is in the group.
func (c *commit) has(kind string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.kinds, kind)
}

// wait rushes the commit and waits for its end.
func (c *commit) wait() {
	c.rush()
	<-c.done
}

// view runs fn in a read transaction that sees every event the runner counts as applied when
// view is called: it first rushes the commit under way and waits for it (see Runner.applyOwn).
// A write's answer is sent once its event counts as applied, so a read begun after that answer
// sees the write.
func (db *DB) view(fn func(tx *bolt.Tx) error) error {
	if c := db.committing.Load(); c != nil {
		c.wait()
	}
	return db.bolt.View(fn)
}

// viewOf is view for a read of the buckets only events of aggregate kind write: it waits only
// for a commit holding such an event. The reads every request makes (its token, a project's
// name) then do not wait for the commit of the writers before it.
func (db *DB) viewOf(kind string, fn func(tx *bolt.Tx) error) error {
	if c := db.committing.Load(); c != nil && c.has(kind) {
		c.wait()
	}
	return db.bolt.View(fn)
}

// OpenLive opens the projection file of a running service. Unless sync is set, its commits are
// not fsynced: the projections are derived from the log, which holds the durability guarantee,
// and an fsync per batch would halve the write rate. While the file is open a marker file
// stands beside it, holding the machine's boot id. A start that finds the marker knows the last
// run did not close the file. If the machine has not restarted since, only the process died:
// every commit it made is in the operating system's cache and the file is whole. If the machine
// restarted (a power loss, a kernel crash), commits that never reached the disk may have left
// the file damaged: it is set aside, and the projections are built again from the log.
//
// Every commit of a live file stores its free list (one page more per commit, the list being
// a page or two), so that a start after a crash reads it instead of having bbolt walk and
// check every page of the file to find the free ones: with it, only the damage check walks
// the pages (see checkFile).
func OpenLive(path string, sync bool, logger *slog.Logger) (*DB, error) {
	marker := path + ".open"
	boot := bootID()
	if prev, err := os.ReadFile(marker); err == nil {
		if sync || (boot != "" && strings.TrimSpace(string(prev)) == boot) {
			logger.Warn("the projections were not closed cleanly, but every commit reached the operating system; using them as they are", "path", path)
		} else if _, err := os.Stat(path); err == nil {
			aside := fmt.Sprintf("%s.unclean-%d", path, time.Now().Unix())
			logger.Warn("the machine restarted while the projections were open and not synced; setting them aside and rebuilding them from the log",
				"path", path, "moved_to", aside)
			if err := os.Rename(path, aside); err != nil {
				return nil, fmt.Errorf("set the projections aside: %w", err)
			}
		}
	}
	// A file a clean close left whole, untouched since, is not walked (see closeStamp).
	db, err := openMappedAhead(path, sync, !takeCloseStamp(path), logger)
	if errors.Is(err, ErrDamaged) {
		if _, err := SetAside(path, err, logger); err != nil {
			return nil, err
		}
		db, err = openMappedAhead(path, sync, true, logger)
	}
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(marker, []byte(boot+"\n"), 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("projections marker: %w", err)
	}
	db.marker = marker
	return db, nil
}

// bootID identifies the machine's current boot ("" where the system does not say).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Open opens (or creates) the projection file at path. With sync, each commit is fsynced;
// without, none is: for a rebuild into a fresh file, which is synced once at the end (the
// option means the same as OpenLive's). A damaged file (see checkFile; a panic of bbolt's) is
// ErrDamaged.
func Open(path string, sync bool) (*DB, error) { return open(path, sync, true, false, 0) }

// open is Open, walking the file's pages (see checkFile) when walk is set, storing the free
// list with every commit when freelist is set (see OpenLive), and mapping mmap bytes of it at
// first when it is larger than the file (0: bbolt's own choice).
func open(path string, sync, walk, freelist bool, mmap int) (*DB, error) {
	opts := &bolt.Options{Timeout: 2 * time.Second, NoSync: !sync, NoFreelistSync: !freelist, InitialMmapSize: mmap}
	b, err := openBolt(path, opts, walk)
	if errors.Is(err, ErrDamaged) {
		return nil, err
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open projections %s: the file is locked by another process (is memledger serve running on this data directory?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open projections %s: %w", path, err)
	}
	if err := b.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketCheckpoints)
		return err
	}); err != nil {
		b.Close()
		return nil, fmt.Errorf("open projections %s: %w", path, err)
	}
	return &DB{Path: path, bolt: b}, nil
}

// openMappedAhead opens the live file at path mapped ahead (see liveMmapBytes), or mapped to its
// size where the process may not map that much (an address-space limit), with a warning.
func openMappedAhead(path string, sync, walk bool, logger *slog.Logger) (*DB, error) {
	db, err := open(path, sync, walk, true, liveMmapBytes(path))
	if errors.Is(err, syscall.ENOMEM) {
		logger.Warn("the projections cannot be mapped ahead of their size (a limit of the process's address space?); "+
			"mapped to their size, a long read such as a backup's copy holds back the commits whenever the file outgrows its mapping",
			"path", path, "mapped_ahead_bytes", liveMmapBytes(path), "err", err)
		return open(path, sync, walk, true, 0)
	}
	return db, err
}

// liveMmapBytes is how much of the live file at path is mapped from its open: twice its size,
// at least liveMmapMin. bbolt maps a growing file again, and a new mapping waits for every read
// transaction under way to end, a backup's copy of the whole file among them: until then every
// commit waits (and every read that begins after it), and the projections fall behind the log.
// Mapped ahead, the file grows that far without a new mapping; past it, bbolt maps it again
// 1 GiB further at a time, and a long read can hold back the commit that does. Mapping more than
// the file holds costs address space only.
func liveMmapBytes(path string) int {
	size := int64(0)
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	return int(max(2*size, liveMmapMin))
}

// liveMmapMin is the least a live file is mapped ahead (see liveMmapBytes).
const liveMmapMin = 1 << 30

// Bolt is the underlying bbolt database.
func (db *DB) Bolt() *bolt.DB { return db.bolt }

// Sync flushes the file to disk.
func (db *DB) Sync() error { return db.bolt.Sync() }

// Close closes the file, its free list stored (see storeFreelist). A live file is synced first,
// stamped (see closeStamp) and its marker removed.
func (db *DB) Close() error {
	freelist := db.storeFreelist()
	if db.marker == "" {
		return errors.Join(freelist, db.bolt.Close())
	}
	err := errors.Join(freelist, db.bolt.Sync(), db.bolt.Close())
	if err == nil {
		// Best effort: without its stamp, the next start walks the file.
		_ = writeCloseStamp(db.Path)
		err = os.Remove(db.marker)
	}
	return err
}

// storeFreelist writes the file's free list in one last commit when commits do not write it
// (NoFreelistSync, as a build's do: it would cost every batch). An open of a file without one
// has bbolt walk every page of it to find the free ones, checking every key's order on the
// way: 1.35 s of CPU on a file of 2.1 GB. With the list stored, the open reads it instead. A
// live file's commits store it each time (see OpenLive).
func (db *DB) storeFreelist() error {
	if db.bolt.IsReadOnly() || !db.bolt.NoFreelistSync {
		return nil
	}
	db.bolt.NoFreelistSync = false
	defer func() { db.bolt.NoFreelistSync = true }()
	if err := db.bolt.Update(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("store the free list: %w", err)
	}
	return nil
}

// View runs fn in a read transaction.
func (db *DB) View(fn func(tx *bolt.Tx) error) error { return db.view(fn) }

// Checkpoints returns each projection's checkpoint: the log position of the last event it applied.
func (db *DB) Checkpoints() (map[string]uint64, error) {
	cps := map[string]uint64{}
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCheckpoints).ForEach(func(k, v []byte) error {
			cps[string(k)] = decodeSeq(v)
			return nil
		})
	})
	return cps, err
}

func checkpoint(tx *bolt.Tx, name string) uint64 {
	return decodeSeq(tx.Bucket(bucketCheckpoints).Get([]byte(name)))
}

func setCheckpoint(tx *bolt.Tx, name string, seq uint64) error {
	return tx.Bucket(bucketCheckpoints).Put([]byte(name), encodeSeq(seq))
}

func encodeSeq(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

func decodeSeq(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// present is the value of a key that only says something exists. It is not empty: bbolt's Get
// returns nil for an empty value written earlier in the same transaction.
var present = []byte{1}

// appendFill is the fill percent of the buckets whose keys mostly grow at their end (ids and
// positions that rise with time): bbolt's default of one half leaves every page split by an
// append half empty, which doubles the pages and deepens the tree that each commit rewrites.
// Not all of a page is filled, so that a record that grows a little does not split it again.
const appendFill = 0.9

// appendBucket returns bucket name of tx set to fill its pages to appendFill.
func appendBucket(tx *bolt.Tx, name []byte) *bolt.Bucket {
	b := tx.Bucket(name)
	b.FillPercent = appendFill
	return b
}
