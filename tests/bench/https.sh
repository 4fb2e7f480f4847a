#!/usr/bin/env bash
# HTTPS next to nginx on this machine, in alternating rounds: keep-alive HTTPS
# requests per second (wrk) and new TLS handshakes per second (openssl s_time
# -new), both terminating TLS 1.3 with one P-256 certificate and proxying to the
# same backend (an nginx answering "ok"). Prints each round, the medians, and
# gatehouse/nginx.
#
# Needs: wrk, nginx, openssl. Usage: tests/bench/https.sh [ROUNDS=3] [SECONDS=10] [CONNECTIONS=64]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; secs=${2:-10}; conns=${3:-64}
for tool in wrk nginx openssl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk nginx openssl)"; exit 2; }
done
cargo build --release --quiet --bin gatehouse
work=$(mktemp -d); pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

backend=127.0.0.81:8001; nginx_tls=127.0.0.82:8443; gh_tls=127.0.0.83:8443
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
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
    listen $nginx_tls ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
    }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)

mkdir -p "$work/gh"
cat > "$work/gh/gatehouse.toml" <<CONF
[admin]
listen = "127.0.0.83:19542"
[log]
accessLog = false
level = "warn"
[runtime]
threads = 2
[[Secret]]
name = "bench"
certFile = "$work/cert.pem"
keyFile = "$work/key.pem"
[[Gateway]]
name = "bench"
gatewayClassName = "gatehouse"
addresses = [{ value = "${gh_tls%:*}" }]
listeners = [{ name = "https", protocol = "HTTPS", port = ${gh_tls#*:}, tls = { certificateRefs = [{ name = "bench" }] } }]
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
for addr in $nginx_tls $gh_tls; do
  for _ in $(seq 100); do curl -skf -o /dev/null --resolve "bench.test:${addr#*:}:${addr%:*}" "https://bench.test:${addr#*:}/" && break; sleep 0.1; done
done

rps() { wrk -t2 -c"$conns" -d"${secs}s" -H "Host: bench.test" "https://$1/" | awk '/Requests\/sec/ {print $2}'; }
hps() { openssl s_time -connect "$1" -new -time "$secs" 2>/dev/null | awk '/connections in .* real seconds/ {print $1/$4; exit}'; }
declare -a gr nr gh nh
for r in $(seq "$rounds"); do
  gr+=("$(rps $gh_tls)"); nr+=("$(rps $nginx_tls)")
  gh+=("$(hps $gh_tls)"); nh+=("$(hps $nginx_tls)")
  echo "round $r: keep-alive HTTPS gatehouse ${gr[-1]} req/s, nginx ${nr[-1]} req/s; handshakes gatehouse ${gh[-1]}/s, nginx ${nh[-1]}/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
m1=$(median "${gr[@]}"); m2=$(median "${nr[@]}"); m3=$(median "${gh[@]}"); m4=$(median "${nh[@]}")
echo "median keep-alive HTTPS: gatehouse $m1 req/s, nginx $m2 req/s, gatehouse/nginx $(ratio "$m1" "$m2")"
echo "median new TLS 1.3 handshakes (one client, openssl s_time -new): gatehouse $m3/s, nginx $m4/s, gatehouse/nginx $(ratio "$m3" "$m4")"
