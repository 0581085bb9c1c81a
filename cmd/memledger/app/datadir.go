package app

import (
	"fmt"
	"log/slog"
	"os"
)

// Modes of what memledger writes: the data directory holds every memory, the tokens' hashes
// and the admin token, so only the user memledger runs as may read it.
const (
	dataDirMode  os.FileMode = 0o700
	dataFileMode os.FileMode = 0o600
)

// prepareDataDir creates the data directory with mode 0700 when it does not exist, and warns
// when an existing one can be read by the group or by other users (it is left as it is: the
// operator may have reasons, such as a backup user's group).
func prepareDataDir(dir string, logger *slog.Logger) error {
	if err := os.MkdirAll(dir, dataDirMode); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		logger.Warn("the data directory can be read by other users of this machine; it holds every memory and the admin token: chmod 700 it",
			"dir", dir, "mode", fmt.Sprintf("%#o", mode))
	}
	return nil
}
