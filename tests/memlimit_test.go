package tests

import (
	"bytes"
	"context"
	"math"
	"os"
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
