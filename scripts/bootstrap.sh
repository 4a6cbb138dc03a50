#!/usr/bin/env bash
# Set up a fresh clone: Debian packages the lab uses (when root), then a virtual environment
# at .venv with codeclab and its test tools. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, by the command that shows each one is present.
#   bwrap: bubblewrap, the sandbox's namespaces (without it the lab runs with weak isolation)
#   pg_ctlcluster: PostgreSQL, for the store tests (they start their own server with initdb
#     and pg_ctl from /usr/lib/postgresql/*/bin; under CI they fail without it)
#   chromium: the headless browser the dashboard's end-to-end tests drive through Playwright
#     (Playwright never downloads a browser here: it is pointed at /usr/bin/chromium)
declare -A APT_PACKAGES=([bwrap]=bubblewrap [pg_ctlcluster]=postgresql [chromium]=chromium)

missing=()
for command in "${!APT_PACKAGES[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${APT_PACKAGES[$command]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "note: not root (or no apt-get); skipping Debian packages: ${missing[*]}" >&2
  fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "codeclab needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# reinstall whenever the dependencies or this script change
stamp=.venv/.installed-$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # vmaf: an ffmpeg with libvmaf (imageio-ffmpeg), so VMAF is measured and tested too;
  # ray: the distributed executor (codeclab run --executor ray)
  .venv/bin/python -m pip install --quiet -e '.[dev,vmaf,ray]'
  touch "$stamp"
fi
