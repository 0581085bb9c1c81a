package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// lockFile is the file in the data directory whose lock says a memledger process uses it.
const lockFile = "memledger.lock"

// dataLock is the lock on a data directory: its log (the embedded server's files) and its
// projections are used by one memledger process at a time.
type dataLock struct{ f *os.File }

// lockData takes the lock on dir for command, or says who holds it. It is taken before
// anything in dir is opened, renamed or started, and held until unlock.
func lockData(dir, command string) (*dataLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &dataInUseError{dir: dir, holder: strings.TrimSpace(string(holder))}
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "memledger %s, pid %d, since %s\n", command, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	}
	return &dataLock{f: f}, nil
}

// dataInUseError is the refusal of a data directory another memledger process holds.
type dataInUseError struct{ dir, holder string }

func (e *dataInUseError) Error() string {
	return fmt.Sprintf("data directory %s is in use by another memledger process (%s); stop it first, or give another --data", e.dir, e.holder)
}

// unlock releases the lock.
func (l *dataLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
