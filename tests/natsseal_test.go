package tests

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/memledger/memledger/cmd/memledger/app"
	"github.com/memledger/memledger/eventstore"
)

// violations collects the permission violations the server reports to a connection.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err.Error())
	v.mu.Unlock()
}

// has reports whether a violation naming subject was reported.
func (v *violations) has(subject string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.errs {
		if strings.Contains(e, "Permissions Violation") && strings.Contains(e, subject) {
			return true
		}
	}
	return false
}

// The subscribers' user of the NATS listener, connected over TCP, reads alerts and nothing
// else: not memledger's replies, not memledger's consumers, not the log's stream.
func TestNATSListenerIsSealed(t *testing.T) {
	const user, pass = "watcher", "s3cret-pass"
	l := startLedger(t, withConfig(func(c *app.Config) {
		c.NatsListen = "127.0.0.1:0"
		c.NatsUser, c.NatsPassword = user, pass
	}))
	ctx := t.Context()
	var denied violations
	nc, err := nats.Connect(l.Main.Store.ClientURL(), nats.UserInfo(user, pass), nats.ErrorHandler(denied.handler))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.True(t, strings.HasPrefix(nc.ConnectedUrl(), "nats://127.0.0.1:"), "a TCP connection: %s", nc.ConnectedUrl())

	// memledger's own consumers: the alert sinks' durables and the projections' ordered one.
	ledgerStream, err := l.Main.Store.JetStream().Stream(ctx, eventstore.DefaultStream)
	require.NoError(t, err)
	consumerNames := func() map[string]jetstream.ConsumerConfig {
		out := map[string]jetstream.ConsumerConfig{}
		lister := ledgerStream.ListConsumers(ctx)
		for info := range lister.Info() {
			out[info.Name] = info.Config
		}
		require.NoError(t, lister.Err())
		return out
	}
	own := consumerNames()
	require.Contains(t, own, "alert-sink-file")
	require.Contains(t, own, "alert-sink-log")
	require.Greater(t, len(own), 2, "the projections follow the log with a consumer of their own: %v", own)

	// Subscribing to memledger's reply prefix is refused; the default inbox prefix, which the
	// user may use for its own requests, receives nothing while memories are written.
	mine, err := nc.SubscribeSync(eventstore.InboxPrefix + ".>")
	require.NoError(t, err)
	inbox, err := nc.SubscribeSync("_INBOX.>")
	require.NoError(t, err)
	everything, err := nc.SubscribeSync(">")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	eventually(t, func() bool { return denied.has(eventstore.InboxPrefix + ".>") }, "subscribing to memledger's inbox prefix was not refused")
	eventually(t, func() bool { return denied.has(`Subscription to ">"`) }, "subscribing to everything was not refused")
	var memIDs []string
	for i := range 20 {
		m := l.mem(map[string]any{"memory_type": "knowledge", "content": "secret number " + string(rune('a'+i)), "status": "candidate"})
		l.act("POST", "/memory/"+m.ID+"/promote", nil)
		l.get(m.ID)
		memIDs = append(memIDs, m.ID)
	}
	l.recent(nil)
	for _, sub := range []*nats.Subscription{mine, inbox, everything} {
		msg, err := sub.NextMsg(500 * time.Millisecond)
		require.Error(t, err, "%s received %v", sub.Subject, msg)
	}

	// Every operation on each of memledger's consumers is refused, and leaves it as it was.
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	for name := range own {
		for _, op := range []struct{ what, subject, body string }{
			{"pull from", "$JS.API.CONSUMER.MSG.NEXT.LEDGER." + name, `{"batch":10,"expires":100000000}`},
			{"read", "$JS.API.CONSUMER.INFO.LEDGER." + name, ""},
			{"update", "$JS.API.CONSUMER.CREATE.LEDGER." + name + ".ledger.alert.>",
				`{"stream_name":"LEDGER","config":{"durable_name":"` + name + `","filter_subject":"ledger.alert.>","deliver_policy":"all","ack_policy":"none"}}`},
			{"update without a filter", "$JS.API.CONSUMER.CREATE.LEDGER." + name,
				`{"stream_name":"LEDGER","config":{"name":"` + name + `","ack_policy":"none"}}`},
			{"delete", "$JS.API.CONSUMER.DELETE.LEDGER." + name, ""},
			{"acknowledge for", "$JS.ACK.LEDGER." + name + ".1.1.1.1.0", ""},
		} {
			msg, err := nc.RequestWithContext(short(), op.subject, []byte(op.body))
			require.Error(t, err, "%s %s answered %v", op.what, name, msg)
			eventually(t, func() bool { return denied.has(op.subject) }, op.what+" "+name+" was not refused")
		}
	}
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateOrUpdateConsumer(short(), eventstore.DefaultStream, jetstream.ConsumerConfig{
		Durable: "watcher-snoop", FilterSubject: "ledger.alert.>"})
	require.Error(t, err, "a consumer on the log's stream is refused, even on its alerts")
	_, err = js.Stream(short(), eventstore.DefaultStream)
	require.Error(t, err, "the log's stream cannot be read")
	after := consumerNames()
	for name, cfg := range own {
		got, ok := after[name]
		require.True(t, ok, "memledger's consumer %s is still there", name)
		require.Equal(t, cfg, got, "memledger's consumer %s is unchanged", name)
	}

	// Its own durable consumer on the alerts stream works, and every alert still reaches the
	// alert log: nothing was taken from the sinks.
	cons, err := js.CreateOrUpdateConsumer(ctx, eventstore.AlertsStream(eventstore.DefaultStream), jetstream.ConsumerConfig{
		Durable: "watcher-alerts", FilterSubject: "ledger.alert.>", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	var raised []string
	for _, title := range []string{"first", "second", "third"} {
		raised = append(raised, alertRaise(t, l, map[string]any{"severity": "critical", "title": title}).ID)
	}
	var got []string
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(raised) && time.Now().Before(deadline) {
		batch, err := cons.Fetch(len(raised)-len(got), jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			var env struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			}
			require.NoError(t, json.Unmarshal(m.Data(), &env))
			require.Equal(t, "alert.raised", env.Type)
			got = append(got, env.ID)
			require.NoError(t, m.DoubleAck(ctx), "the server confirms the acknowledgement")
		}
	}
	require.Equal(t, raised, got, "the subscriber's consumer reads every alert, in order")
	lines := alertWaitLines(t, l.cfg.AlertLogPath(), 3)
	for i, title := range []string{"first", "second", "third"} {
		require.Contains(t, lines[i], title)
	}
	info, err := cons.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.NumAckPending, "its acknowledgements are accepted")

	// The memories are untouched and the log holds only what memledger wrote.
	for _, id := range memIDs {
		require.Equal(t, "active", string(l.get(id).Status))
	}
}

// The subscribers' password may come from a file, so that it need not be on a command line.
func TestNATSPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "nats-password")
	require.NoError(t, os.WriteFile(pwFile, []byte("from-a-file\n"), 0o600))
	l := startLedger(t, withConfig(func(c *app.Config) {
		c.NatsListen = "127.0.0.1:0"
		c.NatsUser, c.NatsPasswordFile = "watcher", pwFile
	}))
	nc, err := nats.Connect(l.Main.Store.ClientURL(), nats.UserInfo("watcher", "from-a-file"))
	require.NoError(t, err, "the password is the file's content without its line break")
	nc.Close()
	_, err = nats.Connect(l.Main.Store.ClientURL(), nats.UserInfo("watcher", "from-a-file\n"), nats.NoReconnect())
	require.Error(t, err)

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	for name, tt := range map[string]struct {
		set     func(*app.Config)
		message string
	}{
		"both":    {func(c *app.Config) { c.NatsPassword, c.NatsPasswordFile = "p", pwFile }, "not both"},
		"missing": {func(c *app.Config) { c.NatsPasswordFile = filepath.Join(dir, "nope") }, "nats password file"},
		"empty":   {func(c *app.Config) { c.NatsPasswordFile = empty }, "is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := app.DefaultConfig()
			cfg.Addr, cfg.Data, cfg.NightlyAt = "127.0.0.1:0", t.TempDir(), ""
			cfg.NatsListen, cfg.NatsUser = "127.0.0.1:0", "watcher"
			tt.set(&cfg)
			m := app.NewMain(cfg, slog.New(slog.DiscardHandler))
			err := m.Open(t.Context())
			require.ErrorContains(t, err, tt.message)
			require.NoError(t, m.Close())
		})
	}
}
