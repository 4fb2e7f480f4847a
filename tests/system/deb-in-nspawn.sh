#!/usr/bin/env bash
# Installs the gatehouse .deb into a minimal Debian booted with systemd as PID 1
# (systemd-nspawn), and checks what an operator meets: the service runs as `gatehouse` with
# exactly its three capabilities, routes, reloads, refuses a broken reload while serving,
# logs to the journal, stops cleanly; man page and bash completion work; an upgrade keeps
# the operator's configuration; remove keeps a changed conffile; purge leaves nothing.
#
# Usage: deb-in-nspawn.sh PREVIOUS.deb CURRENT.deb
# Root only. The debootstrapped root is cached in $GATEHOUSE_ROOTFS_CACHE (default
# /var/cache/gatehouse-tests/bookworm) and copied per run; without it, it is made first.
set -euo pipefail

previous=$(realpath "$1")
current=$(realpath "$2")
cache=${GATEHOUSE_ROOTFS_CACHE:-/var/cache/gatehouse-tests/bookworm}
suite=bookworm
mirror=${GATEHOUSE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- the root file system --------------------------------------------------------------
if [ ! -x "$cache/usr/bin/systemctl" ] || [ ! -x "$cache/usr/sbin/keepalived" ] || [ ! -e "$cache/.complete" ]; then
  step "debootstrap $suite into $cache (cached for the next run)"
  rm -rf "$cache.tmp"
  mkdir -p "$(dirname "$cache")"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,iproute2,curl,ca-certificates,man-db,bash-completion,procps,keepalived \
    "$suite" "$cache.tmp" "$mirror" >/dev/null
  touch "$cache.tmp/.complete"
  rm -rf "$cache"
  mv "$cache.tmp" "$cache"
fi

work=$(mktemp -d /var/tmp/gatehouse-nspawn.XXXXXX)
root="$work/root"
machine="ghtest$$"
nspawn_pid=""
mounted_nspawn=""
cleanup() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  [ -n "$mounted_nspawn" ] && umount /run/systemd/nspawn 2>/dev/null || true
  [ -n "${GATEHOUSE_KEEP_NSPAWN:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

step "copy the root"
cp -a "$cache" "$root"
cp "$previous" "$root/root/previous.deb"
cp "$current" "$root/root/current.deb"
echo "$machine" > "$root/etc/hostname"

# nspawn needs /run/systemd/nspawn on a tmpfs when /run is not one (this CI machine).
if ! mountpoint -q /run/systemd/nspawn 2>/dev/null && [ "$(stat -f -c %T /run)" != tmpfs ]; then
  mkdir -p /run/systemd/nspawn
  mount -t tmpfs tmpfs /run/systemd/nspawn
  mounted_nspawn=1
fi

step "boot it (systemd as PID 1, private network)"
systemd-nspawn -D "$root" -b --register=no --keep-unit --private-network \
  --console=pipe -M "$machine" </dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1 is the child of nspawn that runs systemd (nspawn forks through an
# intermediate process first).
leader=""
for _ in $(seq 300); do
  for p in $(ps --ppid "$nspawn_pid" -o pid= 2>/dev/null); do
    if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ]; then leader=$p; fi
  done
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { cat "$work/console.log"; fail "the container did not start"; }
in_c() { nsenter -t "$leader" -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
state=""
for _ in $(seq 240); do
  state=$(in_c systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.5
done
case "$state" in running|degraded) ;; *) tail -n 40 "$work/console.log"; in_c systemctl --failed --no-pager || true; fail "the container's systemd is $state" ;; esac
echo "container systemd: $state"

main_pid() { in_c systemctl show -p MainPID --value gatehouse; }
wait_active() {
  for _ in $(seq 100); do
    [ "$(in_c systemctl is-active gatehouse || true)" = active ] && return 0
    sleep 0.2
  done
  in_c journalctl -u gatehouse --no-pager | tail -n 30
  fail "gatehouse is not active"
}
# GET $1 on the default Gateway until it answers with $2 in the body (or 10 s).
wait_body() {
  for _ in $(seq 50); do
    if in_c curl -s --max-time 2 "http://127.0.0.1:8080$1" 2>/dev/null | grep -q "$2"; then return 0; fi
    sleep 0.2
  done
  fail "GET $1 never answered with $2"
}

step "install the previous version with apt"
in_c env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/previous.deb >/dev/null
wait_active
echo "# the operator's note, kept across upgrades" >> "$root/etc/gatehouse/gatehouse.toml"
before_upgrade=$(main_pid)

step "upgrade to the current version"
in_c env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold /root/current.deb >/dev/null
wait_active
grep -q "the operator's note" "$root/etc/gatehouse/gatehouse.toml" || fail "the upgrade lost the operator's change"
[ "$(main_pid)" != "$before_upgrade" ] || fail "the upgrade did not restart gatehouse (the configuration checks)"
in_c dpkg-query -W -f='${Version}\n' gatehouse

step "systemd-analyze verify on the installed unit"
in_c systemd-analyze verify /usr/lib/systemd/system/gatehouse.service >"$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify"; }
if grep -Ei "unknown|invalid|failed|ignoring" "$work/verify.log"; then fail "systemd-analyze verify complains"; fi

step "runs as gatehouse with exactly CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW, CAP_KILL"
pid=$(main_pid)
uid=$(in_c cat "/proc/$pid/status" | awk '/^Uid:/ {print $2}')
[ "$uid" = "$(in_c id -u gatehouse)" ] && [ "$uid" != 0 ] || fail "runs as uid $uid"
caps=$(in_c cat "/proc/$pid/status" | awk '/^CapEff:/ {print $2}')
# bits 5 (KILL), 10 (NET_BIND_SERVICE), 12 (NET_ADMIN), 13 (NET_RAW)
[ "$caps" = 0000000000003420 ] || fail "effective capabilities $caps, want 0000000000003420"
[ -d "$root/etc/gatehouse/conf.d" ] || fail "no /etc/gatehouse/conf.d"

step "a route to an echo backend, applied by systemctl reload"
in_c systemd-run --unit=echo-backend /usr/bin/gatehouse echo --listen 127.0.0.1:9000 --name echo-one >/dev/null
cat > "$root/etc/gatehouse/conf.d/echo.toml" <<'TOML'
[[Service]]
name = "echo"
ports = [{ port = 80 }]
endpoints = ["127.0.0.1:9000"]

[[HTTPRoute]]
name = "echo"
parentRefs = [{ name = "default" }]
rules = [{ backendRefs = [{ name = "echo", port = 80 }] }]
TOML
in_c systemctl reload gatehouse
wait_body /hello echo-one
in_c gatehouse status | grep -q "echo" || fail "gatehouse status does not show the route"

step "a broken configuration fails systemctl reload; the old one keeps serving"
echo "[[HTTPRoute]]] broken" > "$root/etc/gatehouse/conf.d/broken.toml"
if in_c systemctl reload gatehouse 2>"$work/reload.err"; then
  fail "systemctl reload succeeded on a broken configuration"
fi
cat "$work/reload.err"
[ "$(in_c systemctl is-active gatehouse)" = active ] || fail "gatehouse stopped"
wait_body /still echo-one
step "an upgrade with a configuration that does not check does not restart"
serving=$(main_pid)
in_c env DEBIAN_FRONTEND=noninteractive dpkg -i /root/current.deb >"$work/reinstall.log" 2>&1 || { cat "$work/reinstall.log"; fail "reinstall"; }
grep -q "not restarted" "$work/reinstall.log" || { cat "$work/reinstall.log"; fail "postinst did not say why it did not restart"; }
[ "$(main_pid)" = "$serving" ] || fail "restarted onto a configuration that does not check"
wait_body /still echo-one
rm "$root/etc/gatehouse/conf.d/broken.toml"

step "the journal has the access log, one timestamp per line"
line=$(in_c journalctl -u gatehouse -o cat --no-pager | grep -m1 'path=/hello' || true)
[ -n "$line" ] || fail "no access log line in the journal"
echo "$line"
if echo "$line" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T'; then fail "the journal line carries its own timestamp"; fi

step "man page and bash completion"
in_c man -P cat gatehouse 2>/dev/null | grep -q "gatehouse-check" || fail "man gatehouse does not render"
in_c man -P cat gatehouse-run 2>/dev/null | grep -q -- "--config" || fail "man gatehouse-run does not render"
in_c bash -c 'source /usr/share/bash-completion/bash_completion; source /usr/share/bash-completion/completions/gatehouse; complete -p gatehouse' \
  | grep -q _gatehouse || fail "the bash completion does not load"

step "the configuration schema the shipped files name is installed and is gatehouse's own"
head -1 "$root/etc/gatehouse/gatehouse.toml" | grep -qx '#:schema file:///usr/share/gatehouse/gatehouse.schema.json' \
  || fail "gatehouse.toml does not name the schema"
in_c sh -c 'gatehouse schema | cmp - /usr/share/gatehouse/gatehouse.schema.json' || fail "the installed schema is not what gatehouse schema prints"

step "systemctl stop drains and exits 0"
in_c systemctl stop gatehouse
[ "$(in_c systemctl show -p Result --value gatehouse)" = success ] || fail "stop result: $(in_c systemctl show -p Result --value gatehouse)"
[ "$(in_c systemctl show -p ExecMainStatus --value gatehouse)" = 0 ] || fail "exit status $(in_c systemctl show -p ExecMainStatus --value gatehouse)"
in_c systemctl start gatehouse
wait_active

step "keepalived mode under systemd: gatehouse writes the include file, reloads keepalived, and fails over"
[ "$(in_c stat -c %G /etc/keepalived/conf.d)" = gatehouse ] || fail "/etc/keepalived/conf.d is not the gatehouse group's"
# A link of the container's own (private network): one box, no peer, so keepalived goes MASTER.
in_c ip link add ha0 type veth peer name ha1
in_c ip link set ha1 up
in_c ip link set ha0 up
in_c ip addr add 192.0.2.1/24 dev ha0
cp "$root/usr/share/doc/gatehouse/examples/keepalived.conf" "$root/etc/keepalived/keepalived.conf"
cp "$root/etc/gatehouse/gatehouse.toml" "$work/gatehouse.toml.before-ha"
cat >> "$root/etc/gatehouse/gatehouse.toml" <<'TOML'

[announce]
mode = "keepalived"

[ha]
interface = "ha0"

[[Gateway]]
name = "vip"
gatewayClassName = "gatehouse"
addresses = [{ value = "192.0.2.100" }]
listeners = [{ name = "http", protocol = "HTTP", port = 8090 }]
TOML
# gatehouse writes the include file first: keepalived (Type=notify) does not start
# without a VRRP instance to run.
in_c systemctl reload gatehouse
for _ in $(seq 50); do grep -q vrrp_instance "$root/etc/keepalived/conf.d/gatehouse.conf" 2>/dev/null && break; sleep 0.1; done
in_c systemctl start keepalived
wait_vip() { # $1: present|absent, $2: the address (192.0.2.100)
  vip=${2:-192.0.2.100}
  for _ in $(seq 100); do
    if in_c ip -o addr show dev ha0 | grep -q " $vip/32 "; then now=present; else now=absent; fi
    [ "$now" = "$1" ] && return 0
    sleep 0.1
  done
  in_c cat /etc/keepalived/conf.d/gatehouse.conf || true
  in_c journalctl -u keepalived -u gatehouse --no-pager | tail -n 40
  fail "$vip is not $1 on ha0"
}
wait_vip present
[ "$(in_c stat -c %U /etc/keepalived/conf.d/gatehouse.conf)" = gatehouse ] || fail "the include file is not gatehouse's"
# A second address: gatehouse rewrites the file and reloads the root keepalived (CAP_KILL).
sed -i 's/addresses = \[{ value = "192.0.2.100" }\]/addresses = [{ value = "192.0.2.100" }, { value = "192.0.2.101" }]/' "$root/etc/gatehouse/gatehouse.toml"
in_c systemctl reload gatehouse
wait_vip present 192.0.2.101
in_c journalctl -u gatehouse --no-pager | grep -q "keepalived reloaded" || fail "gatehouse did not reload keepalived (CAP_KILL)"
# The role is read from the interface once a second.
for _ in $(seq 30); do in_c gatehouse status | grep -q "192.0.2.100 (MASTER)" && break; sleep 0.1; done
in_c gatehouse status | grep -q "192.0.2.100 (MASTER)" || { in_c gatehouse status; fail "status does not show MASTER"; }
in_c curl -s --max-time 2 http://127.0.0.1:9542/metrics | grep -q 'gatehouse_vip_active{address="192.0.2.100"} 1' || fail "gatehouse_vip_active is not 1"
in_c curl -s -o /dev/null --max-time 2 -w '%{http_code}' http://192.0.2.100:8090/ | grep -q 404 || fail "the VIP is not served"
# Stopping gatehouse fails its readiness check: keepalived gives the address up.
in_c systemctl stop gatehouse
wait_vip absent
in_c journalctl -u keepalived --no-pager | grep -q "Entering FAULT STATE" || fail "keepalived did not enter FAULT"
in_c systemctl start gatehouse
wait_active
wait_vip present
# keepalived's notify (run as gatehouse) records FAULT when the link goes down: status says so.
in_c ip link set ha0 down
for _ in $(seq 50); do in_c gatehouse status | grep -q "192.0.2.100 (FAULT)" && break; sleep 0.1; done
in_c gatehouse status | grep -q "192.0.2.100 (FAULT)" || { in_c gatehouse status; ls -l "$root/var/lib/gatehouse/keepalived" || true; fail "status does not show FAULT"; }
in_c ip link set ha0 up
wait_vip present
# Back to mode self: the instances leave keepalived's file.
in_c systemctl stop keepalived
cp "$work/gatehouse.toml.before-ha" "$root/etc/gatehouse/gatehouse.toml"
in_c systemctl reload gatehouse
for _ in $(seq 50); do grep -q vrrp_instance "$root/etc/keepalived/conf.d/gatehouse.conf" || break; sleep 0.1; done
if grep -q vrrp_instance "$root/etc/keepalived/conf.d/gatehouse.conf"; then fail "mode self left the VRRP instances"; fi

step "apt remove: stopped, unit gone, changed conffile kept"
in_c systemctl stop echo-backend
in_c env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q gatehouse >/dev/null
if in_c pgrep -x gatehouse >/dev/null; then fail "a gatehouse process is left"; fi
[ ! -e "$root/usr/lib/systemd/system/gatehouse.service" ] || fail "the unit file is left"
grep -q "the operator's note" "$root/etc/gatehouse/gatehouse.toml" || fail "remove lost the changed conffile"

step "apt purge: no state, no conffile"
in_c env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q gatehouse >/dev/null
[ ! -e "$root/var/lib/gatehouse" ] || fail "/var/lib/gatehouse is left"
[ ! -e "$root/etc/gatehouse/gatehouse.toml" ] || fail "the conffile is left after purge"
[ ! -e "$root/etc/keepalived/conf.d/gatehouse.conf" ] || fail "the keepalived include file is left after purge"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/gatehouse.service" ] || fail "the enablement link is left"

step "poweroff"
in_c systemctl poweroff || true
for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
echo "PASS"
