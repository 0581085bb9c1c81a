package app

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
)

// DefaultMemoryBase is what serve holds besides the decoded-memory cache, as a budget: the
// embedded server's message blocks and their buffers, the search index's segments in the
// making, the requests in flight, the runner's batches and the runtime itself (measured in
// the README's Memory section). The default soft memory limit is the cache's budget plus it.
const DefaultMemoryBase = 192 << 20

// minMemoryBase is the least --memory-limit leaves beside the cache: below it the collector
// would run all the time for what the service holds at rest.
const minMemoryBase = 64 << 20

// memoryLimit is the soft memory limit the configuration asks of the Go runtime, or -1.
func (c Config) memoryLimit() int64 {
	switch {
	case c.MemoryLimit < 0:
		return -1
	case c.MemoryLimit > 0:
		return c.MemoryLimit
	default:
		return c.CacheBytes + DefaultMemoryBase
	}
}

// applyMemoryLimit sets the Go runtime's soft memory limit for serve: the collector then runs
// as often as it must to keep the heap and the runtime's own memory under it, rather than
// letting the heap grow to twice what is live before each collection. It bounds memledger's
// own memory, not the page cache of the mapped projection file, which the kernel reclaims.
// GOMEMLIMIT, when set to a limit, is the runtime's already and wins (empty or "off" leave the
// flag to decide).
//
// What is live grows with the ledger (the embedded server indexes every memory's subject, some
// 250 bytes each): a limit below it would make the collector run without a pause and every
// request wait for it. The default limit (the flag at 0) is therefore a floor that follows the
// live heap: after each collection it is raised to 2.5 times what is live once twice that no
// longer fits (see heapFollower). A limit given by the flag is kept, and a warning says when
// what is live comes near it. stop ends the following.
func applyMemoryLimit(c Config, logger *slog.Logger) (stop func()) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" && v != "off" {
		logger.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v, "bytes", debug.SetMemoryLimit(-1))
		return func() {}
	}
	limit := c.memoryLimit()
	if limit < 0 {
		logger.Info("no memory limit (--memory-limit -1)")
		return func() {}
	}
	debug.SetMemoryLimit(limit)
	gc := "GOGC=" + os.Getenv("GOGC")
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(servingGCPercent)
		gc = strconv.Itoa(servingGCPercent)
	}
	logger.Info("memory limit", "bytes", limit, "cache_bytes", c.CacheBytes, "gc_percent", gc,
		"follows_live_heap", c.MemoryLimit == 0)
	f := &heapFollower{floor: limit, limit: limit, fixed: c.MemoryLimit != 0, logger: logger}
	if bound, of := memoryBound(cgroupMemoryMax(), machineMemoryAt("/proc/meminfo")); bound > 0 && !f.fixed {
		// Within the memory the process has: its control group's limit, which ends the
		// process when reached, or the machine's.
		f.ceiling, f.nearCeiling = bound/10*9, nearCeiling[of]
		logger.Info("memory limit follows the live heap up to nine tenths of "+of+" memory", "bound_bytes", bound, "bound", of, "ceiling_bytes", f.ceiling)
		if f.floor > f.ceiling {
			logger.Warn("memory: the default memory limit (--cache-bytes plus the base) is above nine tenths of "+of+" memory; the limit is lowered to that: lower --cache-bytes, or give the process more memory",
				"default_bytes", f.floor, "ceiling_bytes", f.ceiling)
			f.floor, f.limit = f.ceiling, f.ceiling
			debug.SetMemoryLimit(f.ceiling)
		}
	}
	f.arm()
	return f.stop
}

// The bounds of the memory a process has, as memoryBound names them, and the warning when what
// is live comes near the ceiling under one.
var nearCeiling = map[string]string{
	"the control group's": "memory: what is live comes near the control group's memory limit, which ends the process when reached; the memory limit stays under it and the collector runs more and more often",
	"the machine's":       "memory: what is live comes near the machine's memory; the memory limit stays under it and the collector runs more and more often",
}

// memoryBound is the lesser of a control group's limit and the machine's memory, those that
// are known (above 0), and which it is; 0 when neither is.
func memoryBound(cgroup, machine int64) (int64, string) {
	switch {
	case cgroup > 0 && (machine <= 0 || cgroup <= machine):
		return cgroup, "the control group's"
	case machine > 0:
		return machine, "the machine's"
	}
	return 0, ""
}

// machineMemoryAt is the machine's memory, MemTotal in the meminfo file (/proc/meminfo), in
// bytes; 0 when it cannot be read.
func machineMemoryAt(meminfo string) int64 {
	b, err := os.ReadFile(meminfo)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 && kb < 1<<52 {
				return kb << 10
			}
		}
	}
	return 0
}

// cgroupMemoryMax is the least memory limit of the process's control group and its ancestors
// (cgroup v2's memory.max, v1's memory.limit_in_bytes), 0 when none is set or none can be
// read.
func cgroupMemoryMax() int64 { return cgroupMemoryMaxAt("/proc/self/cgroup", "/sys/fs/cgroup") }

// cgroupMemoryMaxAt is cgroupMemoryMax with the process's cgroup file and the cgroup mount
// named.
func cgroupMemoryMaxAt(procCgroup, mount string) int64 {
	var least int64
	consider := func(file string) {
		b, err := os.ReadFile(file)
		if err != nil {
			return
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<62 { // "max", or v1's way of saying none
			return
		}
		if least == 0 || v < least {
			least = v
		}
	}
	// From the process's group up to the mount's root: a group's limit bounds its children. A
	// path that is not under the mount (another namespace) reaches the root all the same.
	walk := func(root, group, name string) {
		for p := filepath.Clean("/" + group); ; p = filepath.Dir(p) {
			consider(filepath.Join(root, p, name))
			if p == "/" {
				return
			}
		}
	}
	b, _ := os.ReadFile(procCgroup)
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			walk(mount, parts[2], "memory.max")
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				walk(filepath.Join(mount, "memory"), parts[2], "memory.limit_in_bytes")
			}
		}
	}
	consider(filepath.Join(mount, "memory.max"))
	consider(filepath.Join(mount, "memory", "memory.limit_in_bytes"))
	return least
}

// heapFollower looks at the live heap after each collection (a finalizer of an object made
// for it runs once the collector has found it unreachable, and makes the next). With a
// default limit it keeps the limit at least twice what is live: when twice the live heap
// exceeds the limit, the limit becomes 2.5 times it (never below the floor); when the live
// heap falls under a fifth of the limit, the limit comes down the same way; never above nine
// tenths of the control group's limit or of the machine's memory, the lesser (the ceiling).
// With a fixed limit it warns once what is live passes three quarters of it, and again after
// it fell under half.
type heapFollower struct {
	floor, limit int64
	// ceiling, when set, bounds the limit's raises (the control group's limit or the
	// machine's memory, less a tenth); the follower warns with nearCeiling once what is live
	// passes three quarters of it.
	ceiling     int64
	nearCeiling string
	fixed       bool
	warned      bool
	logger      *slog.Logger
	stopped     atomic.Bool
}

// gcSentinel is the object whose finalizer runs after a collection; it holds a pointer and is
// larger than the runtime's tiny allocations, whose finalizers may never run.
type gcSentinel struct {
	f   *heapFollower
	pad [24]byte
}

func (f *heapFollower) arm() {
	runtime.SetFinalizer(&gcSentinel{f: f}, func(s *gcSentinel) {
		if s.f.stopped.Load() {
			return
		}
		s.f.follow(liveHeap())
		s.f.arm()
	})
}

func (f *heapFollower) stop() { f.stopped.Store(true) }

// follow adjusts the limit (or warns) for a live heap of live bytes.
func (f *heapFollower) follow(live int64) {
	if live <= 0 {
		return
	}
	if f.fixed {
		f.warnNear(live, f.limit, "memory: what is live comes near --memory-limit; the collector runs more and more often and requests slow down: raise the limit, or leave it at 0 to follow the live heap")
		return
	}
	if f.ceiling > 0 {
		f.warnNear(live, f.ceiling, f.nearCeiling)
	}
	want := max(f.floor, live/2*5)
	if f.ceiling > 0 {
		want = min(want, f.ceiling)
	}
	if 2*live <= f.limit && (f.limit == f.floor || live >= f.limit/5) {
		return
	}
	if want == f.limit {
		return
	}
	f.logger.Info("memory limit follows the live heap", "live_bytes", live, "from_bytes", f.limit, "to_bytes", want)
	f.limit = want
	debug.SetMemoryLimit(want)
}

// warnNear logs msg once what is live passes three quarters of bound, and again after it fell
// under half of it.
func (f *heapFollower) warnNear(live, bound int64, msg string) {
	switch {
	case !f.warned && live > bound/4*3:
		f.warned = true
		f.logger.Warn(msg, "live_bytes", live, "bound_bytes", bound)
	case f.warned && live < bound/2:
		f.warned = false
	}
}

// liveHeap is the heap the last collection found live, in bytes (0 before the first).
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// servingGCPercent is the collector's target while serve runs under a memory limit (the
// runtime's default is 100), unless GOGC says otherwise: the heap may grow to five times what
// is live before a collection, within the limit, which makes the collector run as often as it
// must near it. A write allocates some tens of kilobytes that live for one request, and the
// collections they caused at 100 were about a tenth of a single write's CPU time.
const servingGCPercent = 400
