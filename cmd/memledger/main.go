// Command memledger is an event-sourced memory ledger for LLM assistants: every memory
// mutation is an event on a NATS JetStream stream, every view a bbolt projection of it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/memledger/memledger/cmd/memledger/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := app.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
