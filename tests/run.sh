#!/usr/bin/env bash
# The README's two commands:
#   bash tests/run.sh demo   renders the bundled sample job; the MP4's path is the last line
#   bash tests/run.sh test   runs the whole test suite
# Both install what a fresh machine lacks (ffmpeg, espeak-ng, fonts with Noto, redis;
# for the tests also chromium and chromium-driver) with apt-get when running as root, and start Redis when none answers. The
# test command also builds Garage, the S3-compatible server the storage tests
# use, once (about 12 minutes on 2 cores; cached in ~/.cache/clipforge).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# Captions in every script: libass falls back through fontconfig to these for
# the glyphs DejaVu lacks (Devanagari, Thai and the other Noto families; CJK; emoji).
[ -f /usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf ] || need+=(fonts-noto-core)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need+=(fonts-noto-cjk)
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
# libass draws outline glyphs only and never picks the colour (bitmap) emoji font;
# Symbola's outline emoji are what captions show.
[ -f /usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf ] || need+=(fonts-symbola)
if [ "${1:-}" = test ]; then
  command -v redis-server >/dev/null || need+=(redis-server)
  # The studio's browser tests: Debian's Chromium and its WebDriver (no browser download).
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]}; install them (e.g. sudo apt-get install ${need[*]}) and run again" >&2
    exit 2
  fi
fi

case "${1:-}" in
  demo)
    cargo build --quiet --bin clipforge
    exec ./target/debug/clipforge demo
    ;;
  test)
    garage="${CLIPFORGE_GARAGE:-$HOME/.cache/clipforge/garage/bin/garage}"
    if [ ! -x "$garage" ]; then
      echo "building Garage 2.5.0 for the S3 tests (once, about 12 minutes)" >&2
      cargo install garage@2.5.0 --locked --no-default-features --features bundled-libs,sqlite \
        --root "$HOME/.cache/clipforge/garage" >&2
    fi
    export CLIPFORGE_GARAGE="$garage"
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
      echo "no Redis on 127.0.0.1:6379; starting one (no persistence)" >&2
      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
      for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    cargo fmt --check
    cargo test --all-targets
    # The integration suite again with every record in PostgreSQL.
    CLIPFORGE_TEST_RECORDS=postgres cargo test --test api
    # Each test used a Redis namespace and a database of its own; drop them.
    redis-cli -h 127.0.0.1 --scan --pattern 'test-*' | xargs -r -n 500 redis-cli -h 127.0.0.1 del >/dev/null
    if command -v psql >/dev/null; then
      for db in $(psql -h 127.0.0.1 -U postgres -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'clipforge_test_%'"); do
        psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null
      done
    fi
    ;;
  *)
    echo "usage: bash tests/run.sh demo|test" >&2
    exit 2
    ;;
esac
