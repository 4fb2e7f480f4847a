#!/usr/bin/env bash
# Reload latency: the time from writing a changed file to a polling client seeing the new
# behaviour, for configurations of 10, 1,000 and 10,000 HTTPRoutes (each on a hostname of
# its own), with the release binary. Two changes are measured:
#   weight flip  conf.d/flip.toml renamed over with its two backends' weights swapped
#                (1:0 -> 0:1); observed when the backend that had weight 0 answers.
#   new route    a new conf.d/new-K.toml for a new hostname; observed when that host gets
#                200 instead of 404.
# The client polls every 2 ms over one keep-alive connection. Each cell is the median of
# RUNS runs (min and max beside it). The watcher's debounce (150 ms) is part of every figure.
#
# Needs: python3, curl. Usage: tests/bench/reload-latency.sh [RUNS=7]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-7}
for tool in python3 curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool"; exit 2; }
done
cargo build --release --quiet --bin gatehouse
bin=target/release/gatehouse
work=$(mktemp -d); pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

# Addresses of this script's own (127.77.0.0/24); nothing else uses them.
gw_ip=127.77.0.1; admin=127.77.0.4:9542; port=8080
echo_a=127.77.0.2:3000; echo_b=127.77.0.3:3000
"$bin" echo --listen "$echo_a" --name a >/dev/null 2>&1 & pids+=($!)
"$bin" echo --listen "$echo_b" --name b >/dev/null 2>&1 & pids+=($!)

cat > "$work/bench.py" <<'PY'
import http.client, json, os, statistics, sys, time

def write_atomic(path, text):
    d, name = os.path.split(path)
    tmp = os.path.join(d, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)

def route(name, host, backends):
    refs = ", ".join(f'{{ name = "{s}", port = 80, weight = {w} }}' for s, w in backends)
    return (f'[[HTTPRoute]]\nname = "{name}"\nparentRefs = [{{ name = "bench" }}]\n'
            f'hostnames = ["{host}"]\nrules = [{{ backendRefs = [{refs}] }}]\n')

def gen(conf, n, gw_ip, port, admin, echo_a, echo_b):
    os.makedirs(os.path.join(conf, "conf.d"), exist_ok=True)
    with open(os.path.join(conf, "gatehouse.toml"), "w") as f:
        f.write(f'[log]\naccessLog = false\nlevel = "warn"\n[admin]\nlisten = "{admin}"\n'
                f'[[Gateway]]\nname = "bench"\ngatewayClassName = "gatehouse"\n'
                f'addresses = [{{ value = "{gw_ip}" }}]\n'
                f'listeners = [{{ name = "http", protocol = "HTTP", port = {port} }}]\n'
                f'[[Service]]\nname = "a"\nports = [{{ port = 80 }}]\nendpoints = ["{echo_a}"]\n'
                f'[[Service]]\nname = "b"\nports = [{{ port = 80 }}]\nendpoints = ["{echo_b}"]\n')
    # n routes in all: flip.toml holds one, routes.toml the other n - 1.
    with open(os.path.join(conf, "conf.d", "routes.toml"), "w") as f:
        for i in range(n - 1):
            f.write(route(f"r{i}", f"r{i}.bench.test", [("a", 1)]))
    with open(os.path.join(conf, "conf.d", "flip.toml"), "w") as f:
        f.write(route("flip", "flip.bench.test", [("a", 1), ("b", 0)]))

class Poller:
    def __init__(self, ip, port):
        self.ip, self.port, self.conn = ip, port, None

    def get(self, host):
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.ip, self.port, timeout=10)
                self.conn.request("GET", "/", headers={"Host": host})
                r = self.conn.getresponse()
                body = r.read()
                try:
                    name = json.loads(body).get("name")
                except ValueError:
                    name = None
                return r.status, name
            except (OSError, http.client.HTTPException):
                self.conn = None
        raise RuntimeError(f"GET {host} failed twice")

    def until(self, host, ok, limit=120.0):
        start = time.monotonic()
        while True:
            status, name = self.get(host)
            if ok(status, name):
                return
            if time.monotonic() - start > limit:
                raise RuntimeError(f"{host}: not observed within {limit}s (last {status} {name})")
            time.sleep(0.002)

def measure(conf, ip, port, runs):
    p = Poller(ip, int(port))
    flips, news = [], []
    weights = {"a": 1, "b": 0}
    for r in range(int(runs)):
        # Weight flip: the backend with weight 0 gets all of it.
        old = "a" if weights["a"] else "b"
        new = "b" if old == "a" else "a"
        p.until("flip.bench.test", lambda s, n: s == 200 and n == old)
        weights = {old: 0, new: 1}
        text = route("flip", "flip.bench.test", [("a", weights["a"]), ("b", weights["b"])])
        t0 = time.monotonic()
        write_atomic(os.path.join(conf, "conf.d", "flip.toml"), text)
        p.until("flip.bench.test", lambda s, n: s == 200 and n == new)
        flips.append(time.monotonic() - t0)
        # New route on a new hostname.
        host = f"new-{r}.bench.test"
        p.until(host, lambda s, n: s == 404)
        t0 = time.monotonic()
        write_atomic(os.path.join(conf, "conf.d", f"new-{r}.toml"), route(f"new-{r}", host, [("b", 1)]))
        p.until(host, lambda s, n: s == 200 and n == "b")
        news.append(time.monotonic() - t0)
    fmt = lambda xs: f"{statistics.median(xs)*1000:7.0f} ms  ({min(xs)*1000:.0f}-{max(xs)*1000:.0f})"
    print(f"{fmt(flips)}  {fmt(news)}")

if __name__ == "__main__":
    {"gen": lambda a: gen(a[0], int(a[1]), *a[2:]), "measure": lambda a: measure(*a)}[sys.argv[1]](sys.argv[2:])
PY

wait_http() {  # host, seconds
  local deadline=$((SECONDS + $2))
  until curl -s -o /dev/null -H "Host: $1" "http://$gw_ip:$port/"; do
    (( SECONDS < deadline )) || { echo "gateway did not answer within $2 s"; cat "$work/gw.log"; exit 1; }
    sleep 0.05
  done
}
for addr in $echo_a $echo_b; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://$addr/" && break; sleep 0.05; done
done

printf '%-8s  %-28s  %-28s  %s\n' routes "weight flip: median (min-max)" "new route: median (min-max)" "start-up"
for n in 10 1000 10000; do
  conf="$work/conf-$n"
  python3 "$work/bench.py" gen "$conf" "$n" "$gw_ip" "$port" "$admin" "$echo_a" "$echo_b"
  t0=$(date +%s%N)
  "$bin" run --config "$conf" >"$work/gw.log" 2>&1 & gw=$!; pids+=("$gw")
  wait_http flip.bench.test 120
  startup=$(( ($(date +%s%N) - t0) / 1000000 ))
  result=$(python3 "$work/bench.py" measure "$conf" "$gw_ip" "$port" "$runs")
  read -r fm _ fr nm _ nr <<<"$result"
  printf '%-8s  %-28s  %-28s  %s ms\n' "$n" "$fm ms $fr" "$nm ms $nr" "$startup"
  kill "$gw"; wait "$gw" 2>/dev/null || true
  grep -E "ERROR|rejected" "$work/gw.log" && { echo "the gateway logged errors"; exit 1; }
done
echo "($runs runs each; the watcher debounces 150 ms before reading; release build, $(nproc) CPUs)"
