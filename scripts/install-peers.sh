#!/usr/bin/env bash
# Installs the proxies the benchmark harness (`cargo run --release -p handoff-bench`) runs
# our proxy against: Debian's nginx and HAProxy. The harness never installs anything; it
# skips a missing peer with one line. Their packaged services are stopped and disabled:
# the harness starts its own instances, with configs in temp dirs, on ephemeral ports.
set -euo pipefail

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)

if [ ${#missing[@]} -eq 0 ]; then
    echo "peers present: nginx, haproxy"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install ${missing[*]} (needs root and apt-get); the harness will skip them" >&2
    exit 1
fi
echo "installing ${missing[*]}"
apt-get update -qq
# policy-rc.d 101: the packages' post-install scripts must not start their services.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
if [ "$created_policy" -eq 1 ]; then
    rm -f "$policy"
fi
for service in nginx haproxy; do
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
done
echo "installed: $(nginx -v 2>&1 | head -1); $(haproxy -v 2>&1 | head -1)"
