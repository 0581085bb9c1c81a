package projections

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// A live file closed cleanly leaves a stamp beside it (path + ".closed"): what the file system
// said of the file right after the close (device, inode, size, modification and change times)
// and the transaction its meta page names. A start that finds the file exactly so knows that
// nothing wrote it since a close that left it whole, and opens it without walking every page
// of its tree (see checkFile), which takes seconds on a file of gigabytes. Any write to the
// file through the file system, a copy over it, a restore, a rename of another file into its
// place, changes the change time or the inode (neither can be set back from user space; see
// writeCloseStamp for a coarse clock), and the start walks it as before. The stamp is removed
// when the file is opened, so that it never speaks of a later state.
type closeStamp struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
	Txid    uint64 `json:"txid"`
}

func stampPath(path string) string { return path + ".closed" }

// stampOf is the stamp of the file at path as it is now.
func stampOf(path string) (closeStamp, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return closeStamp{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return closeStamp{}, err
	}
	defer f.Close()
	txid, err := metaTxid(f)
	if err != nil {
		return closeStamp{}, err
	}
	return closeStamp{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano(), CtimeNs: st.Ctim.Nano(),
		Txid: txid}, nil
}

// metaTxid is the transaction of the newer whole meta page of the file.
func metaTxid(f *os.File) (uint64, error) {
	m0, err0 := readMeta(f, 0)
	ps := int64(os.Getpagesize())
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 := readMeta(f, ps)
	switch {
	case err0 == nil && (err1 != nil || m0.txid >= m1.txid):
		return m0.txid, nil
	case err1 == nil:
		return m1.txid, nil
	}
	return 0, fmt.Errorf("no valid meta page (%v)", err0)
}

// writeCloseStamp records the stamp of the file at path, just closed whole. A file system's
// clock may be coarse (a tick of some milliseconds on Linux before 6.13, a second on some file
// systems): a write in the same tick as the close's last one would leave the change time as
// stamped. So the stamp is kept only once its own modification time is later than the
// file's change time, which any later write then passes (as git does with racily clean
// files); it is written again until then, for up to stampTickWait, and otherwise removed.
func writeCloseStamp(path string) error {
	deadline := time.Now().Add(stampTickWait)
	for {
		s, err := stampOf(path)
		if err != nil {
			return fmt.Errorf("stamp the closed projections: %w", err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if err := os.WriteFile(stampPath(path), b, 0o600); err != nil {
			return fmt.Errorf("stamp the closed projections: %w", err)
		}
		st, err := os.Stat(stampPath(path))
		if err != nil {
			return fmt.Errorf("stamp the closed projections: %w", err)
		}
		if st.ModTime().UnixNano() > s.CtimeNs {
			return nil
		}
		if time.Now().After(deadline) {
			os.Remove(stampPath(path))
			return errors.New("stamp the closed projections: the file system's clock did not move past the close")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stampTickWait bounds the wait for the file system's clock to move past a close.
const stampTickWait = 1500 * time.Millisecond

// takeCloseStamp removes the stamp beside path and reports whether the file is as it was when
// its stamp was written.
func takeCloseStamp(path string) bool {
	b, err := os.ReadFile(stampPath(path))
	if err != nil {
		return false
	}
	os.Remove(stampPath(path))
	var was closeStamp
	if err := json.Unmarshal(b, &was); err != nil {
		return false
	}
	now, err := stampOf(path)
	return err == nil && now == was
}
