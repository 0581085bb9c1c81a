package app

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
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
func applyMemoryLimit(c Config, logger *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" && v != "off" {
		logger.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", v, "bytes", debug.SetMemoryLimit(-1))
		return
	}
	limit := c.memoryLimit()
	if limit < 0 {
		logger.Info("no memory limit (--memory-limit -1)")
		return
	}
	debug.SetMemoryLimit(limit)
	gc := "GOGC=" + os.Getenv("GOGC")
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(servingGCPercent)
		gc = strconv.Itoa(servingGCPercent)
	}
	logger.Info("memory limit", "bytes", limit, "cache_bytes", c.CacheBytes, "gc_percent", gc)
}

// servingGCPercent is the collector's target while serve runs under a memory limit (the
// runtime's default is 100), unless GOGC says otherwise: the heap may grow to five times what
// is live before a collection, within the limit, which makes the collector run as often as it
// must near it. A write allocates some tens of kilobytes that live for one request, and the
// collections they caused at 100 were about a tenth of a single write's CPU time.
const servingGCPercent = 400
