package eventstoretest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

// ClusterName is the name of the clusters StartCluster starts.
const ClusterName = "memledger-test"

// discardLogger drops the cluster servers' log. Its Fatalf does not exit: a server that fails
// to start is caught by startClusterOnce.
type discardLogger struct{}

func (discardLogger) Noticef(string, ...any) {}
func (discardLogger) Warnf(string, ...any)   {}
func (discardLogger) Fatalf(string, ...any)  {}
func (discardLogger) Errorf(string, ...any)  {}
func (discardLogger) Debugf(string, ...any)  {}
func (discardLogger) Tracef(string, ...any)  {}

// Cluster is a JetStream cluster of in-process NATS servers on loopback, named n1, n2, ...
type Cluster struct {
	tb      testing.TB
	Servers []*server.Server
	opts    []*server.Options
}

// StartCluster starts a JetStream cluster of n servers on loopback, each with its store in a
// temporary directory, waits until it has a meta leader that knows every server, and shuts it
// down when the test ends (after the clients, whose cleanups are registered later and so run
// first).
//
// Every server is given the route URLs of all servers, itself included (a server ignores its
// own), as nats-server's createJetStreamClusterExplicit does: a clustered JetStream server
// needs configured routes at start ("JetStream cluster requires configured routes"), and the
// route count sets the meta group's expected size. The cluster ports are picked by listening
// on port 0 and are freed just before their server starts; should another process take one
// in that moment, the whole cluster is started again on fresh ports.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	var err error
	for range 3 {
		c := &Cluster{tb: tb}
		if err = c.startOnce(n); err == nil {
			tb.Cleanup(func() {
				for _, srv := range c.Servers {
					srv.Shutdown()
					srv.WaitForShutdown()
				}
			})
			c.WaitForMetaLeader()
			return c
		}
		tb.Logf("cluster start failed, retrying on fresh ports: %v", err)
	}
	require.NoError(tb, err, "start cluster")
	return nil
}

// startOnce starts the n servers, shutting down the ones it started if one fails.
func (c *Cluster) startOnce(n int) (err error) {
	listeners := make([]net.Listener, n)
	routes := make([]*url.URL, n)
	defer func() {
		for _, l := range listeners {
			if l != nil {
				l.Close()
			}
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		listeners[i] = l
		routes[i] = &url.URL{Scheme: "nats-route", Host: l.Addr().String()}
	}
	defer func() {
		if err != nil {
			for _, srv := range c.Servers {
				srv.Shutdown()
				srv.WaitForShutdown()
			}
			c.Servers, c.opts = nil, nil
		}
	}()
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		opts := &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   c.tb.TempDir(),
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: ClusterName,
				Host: "127.0.0.1",
				Port: listeners[i].Addr().(*net.TCPAddr).Port,
			},
			Routes: routes,
		}
		listeners[i].Close()
		listeners[i] = nil
		srv, err := c.start(opts)
		if err != nil {
			return fmt.Errorf("server %s (cluster port %s): %w", name, routes[i].Host, err)
		}
		// The client port it was given, so that a restart keeps the URLs the clients have.
		opts.Port = srv.Addr().(*net.TCPAddr).Port
		c.Servers = append(c.Servers, srv)
		c.opts = append(c.opts, opts)
	}
	return nil
}

func (c *Cluster) start(opts *server.Options) (*server.Server, error) {
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	srv.SetLoggerV2(discardLogger{}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("not ready for connections")
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("jetstream did not start")
	}
	return srv, nil
}

// WaitForMetaLeader waits until one running server is the JetStream meta leader, it counts
// every running server as a peer and every running server's meta state is current.
func (c *Cluster) WaitForMetaLeader() {
	c.tb.Helper()
	require.Eventually(c.tb, func() bool {
		var leader *server.Server
		running := 0
		for _, srv := range c.Servers {
			if srv.Running() {
				running++
				if srv.JetStreamIsLeader() {
					leader = srv
				}
			}
		}
		if leader == nil || len(leader.JetStreamClusterPeers()) < running {
			return false
		}
		for _, srv := range c.Servers {
			if srv.Running() && !srv.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "no JetStream meta leader with %d peers", len(c.Servers))
}

// URLs are the servers' client addresses joined by commas, a Store's URL for the cluster.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, srv := range c.Servers {
		urls[i] = srv.ClientURL()
	}
	return strings.Join(urls, ",")
}

// Server is the server named name (n1, n2, ...), or nil.
func (c *Cluster) Server(name string) *server.Server {
	for _, srv := range c.Servers {
		if srv.Name() == name {
			return srv
		}
	}
	return nil
}

// Kill shuts the server named name down, as a process that dies (its clients lose their
// connection; what it stored stays on its disk).
func (c *Cluster) Kill(name string) {
	c.tb.Helper()
	srv := c.Server(name)
	require.NotNil(c.tb, srv, "no server named %s", name)
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Restart starts the server named name again on its ports and its store directory, and waits
// until it is current in the cluster.
func (c *Cluster) Restart(name string) {
	c.tb.Helper()
	for i, srv := range c.Servers {
		if srv.Name() != name {
			continue
		}
		require.False(c.tb, srv.Running(), "server %s is running", name)
		opts := c.opts[i].Clone()
		var err error
		require.Eventually(c.tb, func() bool {
			var again *server.Server
			again, err = c.start(opts)
			if err != nil {
				return false
			}
			c.Servers[i] = again
			return true
		}, 30*time.Second, 200*time.Millisecond, "restart server %s: %v", name, err)
		c.WaitForMetaLeader()
		return
	}
	require.FailNow(c.tb, "no server named "+name)
}
