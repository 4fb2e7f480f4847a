#!/usr/bin/env bash
# Requests per second of one keep-alive HTTP/1.1 route: gatehouse and nginx proxying
# to the same backend (an nginx answering "ok"), side by side on this machine, in
# alternating rounds. Prints each round, the medians, and gatehouse/nginx.
#
# Needs: wrk, nginx (Debian: apt-get install wrk nginx). Usage:
#   tests/bench/http-keepalive.sh [ROUNDS=3] [SECONDS=10] [CONNECTIONS=64]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; secs=${2:-10}; conns=${3:-64}
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk nginx)"; exit 2; }
done
cargo build --release --quiet --bin gatehouse
work=$(mktemp -d); pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

backend=127.0.0.71:8001; nginx_proxy=127.0.0.72:8002; gh_proxy=127.0.0.73:8003
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server $backend; keepalive 128; }
  server { listen $backend; location / { return 200 "ok\n"; } }
  server {
    listen $nginx_proxy;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)

mkdir -p "$work/gh"
cat > "$work/gh/gatehouse.toml" <<CONF
[log]
accessLog = false
level = "warn"
[runtime]
threads = 2
[[Gateway]]
name = "bench"
gatewayClassName = "gatehouse"
addresses = [{ value = "${gh_proxy%:*}" }]
listeners = [{ name = "http", protocol = "HTTP", port = ${gh_proxy#*:} }]
[[HTTPRoute]]
name = "bench"
parentRefs = [{ name = "bench" }]
rules = [{ backendRefs = [{ name = "backend", port = 80 }] }]
[[Service]]
name = "backend"
ports = [{ port = 80 }]
endpoints = ["$backend"]
CONF
target/release/gatehouse run --config "$work/gh" & pids+=($!)
for addr in $backend $nginx_proxy $gh_proxy; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://$addr/" && break; sleep 0.1; done
done

run() { wrk -t2 -c"$conns" -d"${secs}s" "http://$1/" | awk '/Requests\/sec/ {print $2}'; }
declare -a g n
for r in $(seq "$rounds"); do
  g+=("$(run $gh_proxy)"); n+=("$(run $nginx_proxy)")
  echo "round $r: gatehouse ${g[-1]} req/s, nginx ${n[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mg=$(median "${g[@]}"); mn=$(median "${n[@]}")
echo "median: gatehouse $mg req/s, nginx $mn req/s, gatehouse/nginx $(awk -v a="$mg" -v b="$mn" 'BEGIN {printf "%.2f", a/b}')"
echo "direct backend (no proxy), for scale: $(run $backend) req/s"
