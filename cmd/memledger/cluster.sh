#!/bin/sh
# cluster.sh starts, on this machine, three NATS servers in a JetStream cluster and three
# memledger instances sharing one stream of three replicas on it (README: "Three instances on
# one machine"). Ctrl-C stops them all. Everything it builds and writes is under $CLUSTER_DIR
# (default ./data/cluster); nothing is written in the repository.
#
#   sh cmd/memledger/cluster.sh          # or: task cluster
#
# NATS clients on 127.0.0.1:4222-4224 (routes on 6222-6224, monitoring on 8222-8224),
# memledger on 127.0.0.1:8101-8103.
set -eu

dir=${CLUSTER_DIR:-./data/cluster}
mkdir -p "$dir/bin"
chmod 700 "$dir"
echo "building nats-server and memledger into $dir/bin"
go build -o "$dir/bin/nats-server" github.com/nats-io/nats-server/v2
go build -o "$dir/bin/memledger" ./cmd/memledger

pids=""
stop() {
	trap - INT TERM EXIT
	echo "stopping"
	# shellcheck disable=SC2086
	[ -n "$pids" ] && kill $pids 2>/dev/null
	wait
}
trap stop INT TERM EXIT

routes=nats-route://127.0.0.1:6222,nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6224
for i in 1 2 3; do
	mkdir -p "$dir/nats$i"
	"$dir/bin/nats-server" --name "n$i" --addr 127.0.0.1 --port "422$((i + 1))" \
		--http_port "822$((i + 1))" --jetstream --store_dir "$dir/nats$i" \
		--cluster_name memledger --cluster "nats://127.0.0.1:622$((i + 1))" --routes "$routes" \
		>"$dir/nats$i.log" 2>&1 &
	pids="$pids $!"
done
urls=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224

# waitfor waits until file has a line matching pattern, giving up (with what) after a minute.
waitfor() {
	n=0
	until grep -q "$2" "$1" 2>/dev/null; do
		n=$((n + 1))
		if [ $n -gt 600 ]; then
			echo "$3 did not start; see $1" >&2
			exit 1
		fi
		sleep 0.1
	done
}
# The cluster is up once each server is ready and JetStream has a metadata leader.
for i in 1 2 3; do
	waitfor "$dir/nats$i.log" "Server is ready" "nats-server n$i"
done
waitfor "$dir/nats1.log" "metadata leader" "the JetStream cluster"

# The subscriptions' secrets are sealed with one key that every instance must have.
key="$dir/subscription-secrets.key"

start() {
	i=$1
	mkdir -p "$dir/m$i"
	chmod 700 "$dir/m$i"
	"$dir/bin/memledger" serve --addr "127.0.0.1:810$i" --data "$dir/m$i" \
		--nats-url "$urls" --replicas 3 --subscription-key-file "$key" \
		>"$dir/m$i.log" 2>&1 &
	pids="$pids $!"
}

# The first instance creates the stream (it waits for the cluster to have a leader) and issues
# the first admin token; the tokens live in the log, so it is good on all three.
start 1
waitfor "$dir/m1.log" "memledger serving" "memledger 1"
start 2
start 3

echo
echo "memledger:   http://127.0.0.1:8101  http://127.0.0.1:8102  http://127.0.0.1:8103"
echo "NATS:        $urls"
if [ -s "$dir/m1/admin.token" ]; then
	echo "admin token: $(cat "$dir/m1/admin.token") (in $dir/m1/admin.token, good on every instance)"
fi
echo "logs:        $dir/*.log; Ctrl-C stops everything"
wait
