package tests

import (
	"bytes"
	"context"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/projections"
	"github.com/stretchr/testify/require"
)

// serve sets the Go runtime's soft memory limit: the cache's budget plus the documented base by
// default, the flag's bytes when given, none with -1; a limit that leaves less than the base's
// minimum beside the cache is refused, naming the flag.
func TestServeSetsTheMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // restored when the test ends; unset meanwhile, so that the flag decides
	require.NoError(t, os.Unsetenv("GOMEMLIMIT"))
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
	code, _, errOut := runApp(t, "serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--memory-limit", "1000")
	require.NotEqual(t, 0, code, errOut)
	require.NotContains(t, errOut, `"msg":"memory limit"`, "refused before it is set")
	require.Contains(t, errOut, "memory-limit 1000 is less than --cache-bytes")

	for _, c := range []struct {
		args []string
		want int64
	}{
		{nil, projections.DefaultStateCacheBytes + app.DefaultMemoryBase},
		{[]string{"--cache-bytes", "1048576"}, 1<<20 + app.DefaultMemoryBase},
		{[]string{"--memory-limit", "536870912"}, 512 << 20},
		{[]string{"--memory-limit", "-1"}, math.MaxInt64},
	} {
		debug.SetMemoryLimit(math.MaxInt64 - 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		errOut := &syncBuffer{}
		go func() {
			done <- app.Run(ctx, append([]string{"serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--nightly-at", ""}, c.args...), &bytes.Buffer{}, errOut)
		}()
		if c.want == math.MaxInt64 {
			require.Eventually(t, func() bool { return strings.Contains(errOut.String(), "no memory limit") }, time.Minute, 10*time.Millisecond)
			require.Equal(t, int64(math.MaxInt64-1), debug.SetMemoryLimit(-1), "left as it was")
		} else {
			require.Eventually(t, func() bool { return debug.SetMemoryLimit(-1) == c.want }, time.Minute, 10*time.Millisecond, "%v", c.args)
		}
		require.Eventually(t, func() bool { return strings.Contains(errOut.String(), "memledger serving") }, time.Minute, 10*time.Millisecond)
		cancel()
		require.Equal(t, 0, <-done, errOut.String())
	}
}

// The default limit follows what is live: once twice the live heap no longer fits under it,
// serve raises it to 2.5 times the live heap (here a buffer this test holds in the same
// process), and brings it back to its floor once the heap is small again. A limit given by
// the flag stays, and the log says when what is live comes near it.
func TestServeFollowsTheLiveHeapWithTheDefaultLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	require.NoError(t, os.Unsetenv("GOMEMLIMIT"))
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
	start := func(args ...string) (*syncBuffer, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		errOut := &syncBuffer{}
		go func() {
			done <- app.Run(ctx, append([]string{"serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--nightly-at", ""}, args...), &bytes.Buffer{}, errOut)
		}()
		require.Eventually(t, func() bool { return strings.Contains(errOut.String(), "memledger serving") }, time.Minute, 10*time.Millisecond)
		return errOut, func() {
			cancel()
			require.Equal(t, 0, <-done, errOut.String())
		}
	}
	const floor = 1<<20 + app.DefaultMemoryBase
	errOut, stop := start("--cache-bytes", "1048576")
	require.Equal(t, int64(floor), debug.SetMemoryLimit(-1))
	held := make([]byte, 160<<20)
	for i := range held {
		held[i] = byte(i) // touched, so that it is live memory, not only reserved
	}
	require.Eventually(t, func() bool {
		runtime.GC()
		return debug.SetMemoryLimit(-1) >= int64(2*len(held))
	}, time.Minute, 50*time.Millisecond, "the limit rises above twice the live heap: %s", errOut)
	require.Contains(t, errOut.String(), "memory limit follows the live heap")
	runtime.KeepAlive(held)
	held = nil
	require.Eventually(t, func() bool {
		runtime.GC()
		return debug.SetMemoryLimit(-1) == floor
	}, time.Minute, 50*time.Millisecond, "back to the floor once the heap is small: %s", errOut)
	stop()

	errOut, stop = start("--cache-bytes", "1048576", "--memory-limit", "201326592")
	defer stop()
	held = make([]byte, 160<<20)
	for i := range held {
		held[i] = byte(i)
	}
	require.Eventually(t, func() bool {
		runtime.GC()
		return strings.Contains(errOut.String(), "what is live comes near --memory-limit")
	}, time.Minute, 50*time.Millisecond, "%s", errOut)
	require.Equal(t, int64(192<<20), debug.SetMemoryLimit(-1), "a limit given by the flag stays")
	runtime.KeepAlive(held)
}
