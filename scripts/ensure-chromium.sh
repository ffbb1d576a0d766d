#!/usr/bin/env bash
# Make sure Debian's headless Chromium is at /usr/bin/chromium for the dashboard's browser tests
# (tests/browser/): install it with apt where we may (root, or sudo without a password); else
# stop with a message that says how to fix it. Playwright drives this browser; it never
# downloads one of its own (no `playwright install`).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo present) at $CHROMIUM"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: $CHROMIUM is missing and apt-get is not available: install Debian's or Ubuntu's chromium package so that $CHROMIUM exists." >&2
  exit 1
fi

if [ "$(id -u)" = "0" ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  cat >&2 <<MSG
chromium: $CHROMIUM is missing, and installing it needs root.
Fix it with:
  sudo apt-get install chromium
then run make test again.
MSG
  exit 1
fi

echo "chromium: not installed; installing chromium with apt"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
if [ ! -x "$CHROMIUM" ]; then
  echo "chromium: apt-get installed chromium, but $CHROMIUM is still missing" >&2
  exit 1
fi
echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo installed) at $CHROMIUM"
