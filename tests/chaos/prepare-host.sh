#!/usr/bin/env bash
# What the chaos bed needs from the host: iproute2 (namespaces, veth, tc), iptables (faults and
# the packet delayer's queue) and libfaketime (clock skew). Installs what is missing with apt when run as root; says what is missing else.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
compgen -G "/usr/lib/*/faketime/libfaketimeMT.so.1" >/dev/null || need+=(faketime)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "chaos: missing ${need[*]}: install them (Debian: apt-get install ${need[*]}) as root" >&2
  exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
