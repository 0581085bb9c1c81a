package projections

import (
	"encoding/json"
	"os"
	"syscall"
	"time"
)

// A live projection file closed cleanly is stamped with what the file system says of it then
// (its size, inode and change times) in a file beside it, <file>-closed. An open that finds
// the file exactly as stamped knows nothing has written it since memledger closed it whole, and
// does not walk its pages (walkPages), which takes seconds on a file of gigabytes; any write,
// truncation or replacement changes its change time (ctime, which no program can set back),
// and the walk is made as before. So is it after a crash: the stamp is written only by a clean
// close, and the first commit after an open changes the change time.

// closedStampSuffix names the stamp beside the file.
const closedStampSuffix = "-closed"

// stampMargin is how long after the file's last change the stamp is written: a file system's
// clock for change times may be coarse (a scheduler tick), and a write after the stamp must
// land on a later change time than the one stamped.
const stampMargin = 25 * time.Millisecond

// fileStamp is what the stamp holds of the file.
type fileStamp struct {
	Size  int64  `json:"size"`
	Inode uint64 `json:"inode"`
	Dev   uint64 `json:"dev"`
	Ctime int64  `json:"ctime_ns"`
	Mtime int64  `json:"mtime_ns"`
}

func stampOf(path string) (fileStamp, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileStamp{}, false
	}
	return fileStamp{Size: st.Size, Inode: st.Ino, Dev: uint64(st.Dev),
		Ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec, Mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec}, true
}

// stampClosed writes the stamp of the closed file at path. A failure only costs the next
// open its walk.
func stampClosed(path string) {
	st, ok := stampOf(path)
	if !ok {
		return
	}
	if wait := time.Until(time.Unix(0, st.Ctime).Add(stampMargin)); wait > 0 {
		time.Sleep(wait)
	}
	data, _ := json.Marshal(st)
	os.WriteFile(path+closedStampSuffix, data, 0o600)
}

// closedUntouched says whether the file at path is exactly as its stamp says it was closed.
func closedUntouched(path string) bool {
	data, err := os.ReadFile(path + closedStampSuffix)
	if err != nil {
		return false
	}
	var stamped fileStamp
	if json.Unmarshal(data, &stamped) != nil {
		return false
	}
	st, ok := stampOf(path)
	return ok && st == stamped
}
