package app

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// The default limit follows the live heap: raised to 2.5 times it once twice it no longer
// fits, down again (never below the floor) once it falls under a fifth; within a control
// group never above the ceiling, with a warning once what is live nears it.
func TestHeapFollowerFollowsTheLiveHeap(t *testing.T) {
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
	var logged bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logged, nil))
	const mib = 1 << 20
	f := &heapFollower{floor: 256 * mib, limit: 256 * mib, logger: logger}
	f.follow(100 * mib)
	require.Equal(t, int64(256*mib), f.limit, "twice the live heap fits")
	f.follow(200 * mib)
	require.Equal(t, int64(500*mib), f.limit)
	require.Equal(t, int64(500*mib), debug.SetMemoryLimit(-1))
	f.follow(240 * mib)
	require.Equal(t, int64(500*mib), f.limit, "twice 240 MiB still fits under 500")
	f.follow(110 * mib)
	require.Equal(t, int64(500*mib), f.limit, "not yet under a fifth")
	f.follow(90 * mib)
	require.Equal(t, int64(256*mib), f.limit, "back to the floor")
	require.NotContains(t, logged.String(), "WARN")

	f = &heapFollower{floor: 256 * mib, limit: 256 * mib, ceiling: 900 * mib, nearCeiling: nearCeiling["the control group's"], logger: logger}
	f.follow(500 * mib)
	require.Equal(t, int64(900*mib), f.limit, "never above the ceiling")
	require.NotContains(t, logged.String(), "control group")
	f.follow(700 * mib)
	require.Equal(t, int64(900*mib), f.limit)
	require.Contains(t, logged.String(), "comes near the control group's memory limit")

	logged.Reset()
	f = &heapFollower{floor: 300 * mib, limit: 300 * mib, fixed: true, logger: logger}
	f.follow(200 * mib)
	require.Equal(t, int64(300*mib), f.limit, "a limit given by the flag stays")
	require.Empty(t, logged.String())
	f.follow(250 * mib)
	require.Contains(t, logged.String(), "comes near --memory-limit")
}

// The control group's limit is the least of the process's group's and its ancestors', with
// cgroup v2 or v1; "max" and v1's huge value are none.
func TestCgroupMemoryMax(t *testing.T) {
	write := func(path, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
	v2 := t.TempDir()
	write(filepath.Join(v2, "proc"), "0::/system.slice/memledger.service\n")
	write(filepath.Join(v2, "fs", "system.slice", "memledger.service", "memory.max"), "max\n")
	write(filepath.Join(v2, "fs", "system.slice", "memory.max"), "1073741824\n")
	write(filepath.Join(v2, "fs", "memory.max"), "max\n")
	require.Equal(t, int64(1<<30), cgroupMemoryMaxAt(filepath.Join(v2, "proc"), filepath.Join(v2, "fs")), "an ancestor's limit")

	v1 := t.TempDir()
	write(filepath.Join(v1, "proc"), "5:cpu,cpuacct:/x\n4:memory:/process_api/abc\n")
	write(filepath.Join(v1, "fs", "memory", "process_api", "abc", "memory.limit_in_bytes"), "536870912\n")
	write(filepath.Join(v1, "fs", "memory", "memory.limit_in_bytes"), "9223372036854771712\n")
	require.Equal(t, int64(512<<20), cgroupMemoryMaxAt(filepath.Join(v1, "proc"), filepath.Join(v1, "fs")))

	none := t.TempDir()
	write(filepath.Join(none, "proc"), "0::/\n")
	write(filepath.Join(none, "fs", "memory.max"), "max\n")
	require.Zero(t, cgroupMemoryMaxAt(filepath.Join(none, "proc"), filepath.Join(none, "fs")))
	require.Zero(t, cgroupMemoryMaxAt(filepath.Join(none, "missing"), filepath.Join(none, "missing")))
}

// Outside a control group, or in one whose limit is above the machine's memory, the ceiling is
// under the machine's memory.
func TestMemoryBoundIsTheLesserOfTheGroupsAndTheMachines(t *testing.T) {
	meminfo := filepath.Join(t.TempDir(), "meminfo")
	require.NoError(t, os.WriteFile(meminfo, []byte("MemTotal:       24576000 kB\nMemFree:        20000000 kB\n"), 0o644))
	machine := machineMemoryAt(meminfo)
	require.Equal(t, int64(24576000)<<10, machine)
	require.Zero(t, machineMemoryAt(filepath.Join(t.TempDir(), "missing")))
	require.NoError(t, os.WriteFile(meminfo, []byte("MemTotal: lots\n"), 0o644))
	require.Zero(t, machineMemoryAt(meminfo), "what cannot be read is no bound")

	bound, of := memoryBound(0, machine)
	require.Equal(t, machine, bound)
	require.Equal(t, "the machine's", of)
	bound, of = memoryBound(1<<30, machine)
	require.Equal(t, int64(1<<30), bound)
	require.Equal(t, "the control group's", of)
	bound, of = memoryBound(machine*2, machine)
	require.Equal(t, machine, bound, "a group's limit above the machine's memory bounds nothing")
	require.Equal(t, "the machine's", of)
	bound, _ = memoryBound(0, 0)
	require.Zero(t, bound)

	var logged bytes.Buffer
	const mib = 1 << 20
	f := &heapFollower{floor: 256 * mib, limit: 256 * mib, ceiling: 900 * mib, nearCeiling: nearCeiling["the machine's"],
		logger: slog.New(slog.NewTextHandler(&logged, nil))}
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
	f.follow(700 * mib)
	require.Equal(t, int64(900*mib), f.limit)
	require.Contains(t, logged.String(), "comes near the machine's memory")
}
