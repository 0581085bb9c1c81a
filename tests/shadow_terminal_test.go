//go:build linux

package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/stretchr/testify/require"
)

// openPTY opens a pseudo-terminal: its controlling side, which reads what is written to the
// terminal, and the terminal itself.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	var unlock int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock)))
	require.Zero(t, errno, "unlock the pseudo-terminal")
	var n uint32
	_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n)))
	require.Zero(t, errno, "the pseudo-terminal's number")
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	return master, tty
}

// TestShadowProgressBarOnATerminal: memledger shadow draws a progress bar, fed by the
// service's streamed progress, when its output is a terminal, and prints the report after it.
func TestShadowProgressBarOnATerminal(t *testing.T) {
	l := startLedger(t)
	for i := range 5 {
		l.mem(map[string]any{"memory_type": "knowledge", "content": fmt.Sprintf("fact %d", i), "status": "candidate"})
	}
	master, tty := openPTY(t)
	defer master.Close()
	read := make(chan []byte, 1)
	go func() {
		var out bytes.Buffer
		io.Copy(&out, master) // ends with an error once the terminal is closed
		read <- out.Bytes()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errOut bytes.Buffer
	code := app.Run(ctx, []string{"shadow", "--addr", l.Main.Addr(), "--auto-promote-refs", "2"}, tty, &errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut.String())
	require.NoError(t, tty.Close())
	var out []byte
	select {
	case out = <-read:
	case <-time.After(time.Minute):
		t.Fatal("the terminal's output was not read to its end")
	}
	require.Contains(t, string(out), "shadow replay", "the bar's label")
	require.Contains(t, string(out), "100%", "the bar, completed")
	require.Contains(t, string(out), fmt.Sprintf("%d/%d", l.lastSeq(), l.lastSeq()), "the bar counts the log's positions")
	require.Contains(t, string(out), "events replayed to log position", "the report follows the bar")
}
