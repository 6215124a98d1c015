#!/usr/bin/env bash
# The system packages the course's tests and instructors need, beyond Python (Debian/Ubuntu).
#   bubblewrap   the sandbox of the grading kernel (python -m course_lib.grading autograde)
#   chromium     the headless browser of tests/test_browser.py (the widgets clicked in JupyterLab)
# Run as root, or with sudo available. Safe to run again: installs only what is missing.
set -euo pipefail
packages=(bubblewrap chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: all present (${packages[*]})"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install these with your system's package manager: ${missing[*]}" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq || true   # a stale index still installs from the local mirror
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "system packages: installed ${missing[*]}"
