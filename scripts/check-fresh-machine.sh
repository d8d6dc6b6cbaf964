#!/usr/bin/env bash
# Proves scripts/debian-packages.txt on a truly empty Debian 12: `debootstrap --variant=minbase
# bookworm` into a temporary folder, install the list there with --no-install-recommends
# (what scripts/setup.sh does), then, inside the chroot as the unprivileged user `postgres`,
# `initdb`, start the server and `CREATE EXTENSION postgis`, and check every other program
# the list is for (ogrinfo, chromium, curl, python3 -m venv).
#
#   sudo scripts/check-fresh-machine.sh          # the list alone (a few minutes, ~400 MB download)
#   sudo scripts/check-fresh-machine.sh --full   # also clone this checkout into the chroot and run
#                                                # the README's demo there (./scripts/demo.sh --small --no-serve)
#   sudo scripts/check-fresh-machine.sh --full --tests   # ... and the README's test command (./scripts/test.sh)
#
# Needs root (debootstrap, chroot) and the Debian mirror; it installs the host tool
# `debootstrap` if missing (a tool of this check, not of MIS). Not part of CI: it downloads
# a few hundred MB. --keep leaves the chroot folder for inspection.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

full=0 keep=0 tests=0
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    --tests) full=1 tests=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--full] [--tests] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (debootstrap and chroot need it)" >&2; exit 1; }
command -v debootstrap >/dev/null || {
  echo "==> installing the host tool debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

mirror="${MIS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$(mktemp -d /var/tmp/mis-fresh-XXXXXX)"
chmod 755 "$root"  # mktemp makes it 0700: the unprivileged users inside could not reach /
mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -R "${mounts[i]}" 2>/dev/null || umount -Rl "${mounts[i]}" 2>/dev/null || true; done
  if ((keep)); then echo "chroot kept in $root"
  elif findmnt -R "$root" >/dev/null 2>&1; then echo "warning: $root still has mounts; not removed" >&2
  else rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT
bind() { mkdir -p "$root$2"; mount "${@:3}" --bind "$1" "$root$2"; mounts+=("$root$2"); }

mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/[[:space:]]//g' scripts/debian-packages.txt)
t0=$SECONDS
echo "==> debootstrap --variant=minbase bookworm $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
  tail -20 "$root.debootstrap.log" >&2; exit 1; }
rm -f "$root.debootstrap.log"
echo "    $(du -sh "$root" | cut -f1) in $((SECONDS - t0)) s"

mount -t proc proc "$root/proc"; mounts+=("$root/proc")
for fs in dev sys; do  # recursive (chromium needs /dev/shm, apt /dev/pts), and slave: unmounting never reaches the host
  mount --rbind "/$fs" "$root/$fs"; mount --make-rslave "$root/$fs"; mounts+=("$root/$fs")
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"  # no services start
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

t1=$SECONDS
echo "==> apt-get install --no-install-recommends ${packages[*]}"
in_root apt-get update -qq
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "    $(in_root dpkg-query -W -f='.\n' | wc -l) packages installed in $((SECONDS - t1)) s"

echo "==> initdb + CREATE EXTENSION postgis as the unprivileged user postgres"
bindir="$(ls -d "$root"/usr/lib/postgresql/*/bin | sort -V | tail -1)"; bindir="${bindir#"$root"}"
in_root su postgres -s /bin/bash -c "
  set -e
  $bindir/initdb -D /tmp/pgcheck -U postgres -A trust >/dev/null
  $bindir/pg_ctl -D /tmp/pgcheck -o \"-c listen_addresses='' -k /tmp\" -w -l /tmp/pgcheck.log start >/dev/null
  psql -h /tmp -U postgres -Atqc 'CREATE EXTENSION postgis' -c 'SELECT version()' -c 'SELECT postgis_full_version()'
  $bindir/pg_ctl -D /tmp/pgcheck -w stop >/dev/null"

echo "==> the other programs of the list"
in_root ogrinfo --version
in_root chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --user-data-dir=/tmp/chromium-check --dump-dom 'data:text/html,<p id=x>chromium renders</p>' 2>/dev/null | grep -o 'chromium renders'
in_root curl --version | head -1
in_root python3 -m venv /tmp/venv-check && in_root /tmp/venv-check/bin/python --version

if ((full)); then
  echo "==> fresh clone of $(git rev-parse --short HEAD) into the chroot, then ./scripts/demo.sh --small --no-serve"
  git clone -q "$repo" "$root/opt/mis"
  # The source vocabularies beside the checkout (../shared), which some tests rebuild from.
  [ -d "$repo/../shared" ] && bind "$(cd "$repo/../shared" && pwd)" /opt/shared -o ro
  # What this machine's site adds to a new Debian: the CPU wheel of torch kept on disk
  # (README: torch==2.13.0, CPU build) and the local CAs its network needs for PyPI over TLS.
  [ -d /opt/wheels ] && bind /opt/wheels /opt/wheels -o ro
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    in_root update-ca-certificates >/dev/null
  fi
  t2=$SECONDS
  in_root env PIP_FIND_LINKS=/opt/wheels bash -c 'cd /opt/mis && ./scripts/demo.sh --small --no-serve' 2>&1 | tail -25
  echo "    demo (set-up included) in $((SECONDS - t2)) s; second run:"
  t3=$SECONDS
  in_root env PIP_FIND_LINKS=/opt/wheels bash -c 'cd /opt/mis && ./scripts/demo.sh --small --no-serve' 2>&1 | tail -3
  echo "    second demo in $((SECONDS - t3)) s"
fi
if ((tests)); then
  echo "==> ./scripts/test.sh in the chroot (CI=true, no stdin)"
  t4=$SECONDS
  log="$root.tests.log"  # beside the chroot, so it outlives it
  status=0
  in_root env CI=true PIP_FIND_LINKS=/opt/wheels bash -c 'cd /opt/mis && ./scripts/test.sh -q -p no:cacheprovider' \
    </dev/null >"$log" 2>&1 || status=$?
  sed -n '/short test summary/,$p' "$log" | cut -c1-300 | tail -40
  echo "    test suite exit $status in $((SECONDS - t4)) s (full log: $log)"
  ((status == 0)) || exit "$status"
fi
echo "==> the list is complete on a fresh Debian 12 ($((SECONDS - t0)) s)"
