#!/usr/bin/env bash
# Installs the command-line tools some tests drive as real peers (today: curl, for the
# README walkthrough and the interim-response tests). Those tests skip with a visible line
# when a tool is missing; CI runs this first so that they run.
set -euo pipefail

missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)

if [ ${#missing[@]} -eq 0 ]; then
    echo "test tools present: curl"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install ${missing[*]} (needs root and apt-get); the tests that need them will skip" >&2
    exit 0
fi
echo "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
