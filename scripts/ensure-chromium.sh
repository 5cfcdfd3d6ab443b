#!/usr/bin/env bash
# Headless Chromium and ChromeDriver for the console's browser tests (Debian's
# packages chromium and chromium-driver), installed when missing.
#   ./scripts/ensure-chromium.sh     # prints the chromedriver path
set -euo pipefail
say() { echo "ensure-chromium: $*" >&2; }
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  say "installing chromium and chromium-driver (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  [[ "$(id -u)" == "0" ]] || SUDO="sudo"
  $SUDO apt-get update -qq >&2 || say "apt-get update failed; trying the install anyway"
  $SUDO apt-get install -y -qq chromium chromium-driver >&2
fi
command -v chromium >/dev/null || { say "chromium did not install"; exit 1; }
command -v chromedriver
