#!/usr/bin/env bash
# Prove with the real apt and dnf that examples/gpu-cluster/mirror works and that
# every role of examples/gpu-cluster/imagebuild.toml resolves: deb roles on amd64
# and arm64, with and without Install-Recommends; rpm roles on x86_64 and aarch64.
#
#   scripts/check-example-mirror.sh              # check, and refresh apt-oracle/ and dnf-oracle/
#   scripts/check-example-mirror.sh --no-write   # check only
#
# For each architecture it builds a private apt root in a temp dir (sources.list
# with [signed-by=keys/example-archive.gpg], empty dpkg status file, no host
# configuration: APT_CONFIG points at a file that moves Dir to the temp dir, so
# /etc/apt/apt.conf.d is not read), runs `apt-get update` (the InRelease
# signatures are really verified by apt through gpgv) and then
# `apt-get -s install <role packages>`.
#
# The resulting package sets are written to examples/gpu-cluster/apt-oracle/
# as `name version arch` lines sorted by name then arch (the BOM format, which
# with base = "none" is exactly what `imagebuild lock` must produce):
#   <role>-<arch>.txt             recommends = false (the example's setting)
#   <role>-<arch>+recommends.txt  with APT::Install-Recommends=true
#
# Beyond the roles it also asserts a few edge cases of the mirror (see the
# "extra cases" section below).
#
# The rpm half (mirror/rocky9): every repodata/repomd.xml.asc verifies with gpgv;
# the repos are byte-identical to a fresh scripts/example-mirror/build_rpms.py
# build when rpmbuild/createrepo_c are installed (and of the versions in
# mirror/rocky9/BUILD-INFO); and scripts/example-mirror/dnf_check.py runs the
# real `dnf install` of every rpm role into an empty --installroot (needs dnf,
# rpm and root; skipped otherwise) and writes dnf-oracle/ the same way.
# Exit status 0 only if everything held.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
EXAMPLE="$ROOT/examples/gpu-cluster"
CONFIG="$EXAMPLE/imagebuild.toml"
ORACLE="$EXAMPLE/apt-oracle"
KEYRING="$EXAMPLE/keys/example-archive.gpg"
ARCHES="amd64 arm64"

WRITE=1
case "${1:-}" in
  --no-write) WRITE=0 ;;
  "") ;;
  *) echo "usage: $0 [--no-write]" >&2; exit 2 ;;
esac

[ -f "$KEYRING" ] || { echo "check-example-mirror: $KEYRING missing; run scripts/make-example-mirror.sh" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-example-mirror.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Roles from the example config: one line per role, "role pkg pkg ...".
python3 - "$CONFIG" >"$WORK/roles" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    cfg = tomllib.load(f)
for name in sorted(cfg["roles"]):
    role = cfg["roles"][name]
    if cfg["distros"][role["distro"]]["family"] != "deb":
        continue  # the rpm roles are checked with dnf below
    assert role["distro"] == "bookworm", name
    print(name, *role["packages"])
EOF

FAILED=0
fail() { printf 'FAIL: %s\n' "$*" >&2; FAILED=1; }

setup_root() {   # ARCH -> prints the apt root dir; runs apt-get update there
  local arch="$1" d="$WORK/root-$1"
  mkdir -p "$d/etc/apt/sources.list.d" "$d/etc/apt/preferences.d" "$d/etc/apt/trusted.gpg.d" \
           "$d/etc/apt/apt.conf.d" "$d/var/lib/apt/lists/partial" "$d/var/cache/apt/archives/partial" \
           "$d/var/log/apt"
  : >"$d/status"
  cat >"$d/etc/apt/sources.list" <<EOF
deb [signed-by=$KEYRING] file:$EXAMPLE/mirror/debian bookworm main non-free
deb [signed-by=$KEYRING] file:$EXAMPLE/mirror/debian bookworm-backports main non-free
deb [signed-by=$KEYRING] file:$EXAMPLE/mirror/cuda ./
EOF
  # Read by apt before anything else; moving Dir hides the host's apt.conf.d.
  cat >"$d/apt.conf" <<EOF
Dir "$d/";
Dir::State::status "$d/status";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Dir::Etc::Trusted "$d/etc/apt/trusted.gpg";
Dir::Etc::TrustedParts "$d/etc/apt/trusted.gpg.d/";
APT::Sandbox::User "root";
EOF
  echo "$d"
}

apt_in() {   # ROOT apt-get-args...
  local d="$1"; shift
  APT_CONFIG="$d/apt.conf" apt-get -q \
    -o Dir="$d/" -o Dir::State::status="$d/status" \
    -o Acquire::Languages=none \
    -o Acquire::Check-Valid-Until=false \
    "$@"
}

# Inst lines of `apt-get -s` -> "name version arch", sorted by name then arch.
# e.g. "Inst libc6 (2.36-9+deb12u9 Debian:12.8/oldstable [amd64]) []" -> "libc6 2.36-9+deb12u9 amd64"
# (apt appends " []" to a package whose dependencies are still pending at that point).
inst_lines() {
  sed -nE 's/^Inst ([^ ]+) (\[[^]]*\] )?\(([^ ]+) .*\[([^]]+)\]\).*$/\1 \3 \4/p' | sort -k1,1 -k3,3
}

simulate() {   # ROOT RECOMMENDS(true|false) OUT pkgs... ; returns apt's exit status
  local d="$1" rec="$2" out="$3"; shift 3
  if apt_in "$d" -o APT::Install-Recommends="$rec" -o APT::Install-Suggests=false \
       -s install "$@" >"$out.log" 2>&1; then
    inst_lines <"$out.log" >"$out"
    return 0
  fi
  return 1
}

if [ "$WRITE" = 1 ]; then rm -rf "$ORACLE"; mkdir -p "$ORACLE"; fi
printf '%-26s %-6s %-7s %s\n' role arch recs packages
for arch in $ARCHES; do
  d="$(setup_root "$arch")"
  if ! apt_in "$d" update >"$WORK/update-$arch.log" 2>&1; then
    cat "$WORK/update-$arch.log" >&2; fail "apt-get update ($arch)"; continue
  fi
  if grep -E '^(W|E):' "$WORK/update-$arch.log" >&2; then fail "apt-get update ($arch) printed warnings/errors"; fi

  while read -r role pkgs; do
    for rec in false true; do
      suffix=""; [ "$rec" = true ] && suffix="+recommends"
      out="$WORK/$role-$arch$suffix.txt"
      # shellcheck disable=SC2086
      if simulate "$d" "$rec" "$out" $pkgs; then
        printf '%-26s %-6s %-7s %s\n' "$role" "$arch" "$rec" "$(wc -l <"$out")"
        if [ "$WRITE" = 1 ]; then
          { echo "# apt-get -s install $pkgs  (APT::Architecture=$arch, Install-Recommends=$rec, empty status)"
            echo "# generated by scripts/check-example-mirror.sh; name version arch"
            cat "$out"; } >"$ORACLE/$role-$arch$suffix.txt"
        elif [ -f "$ORACLE/$role-$arch$suffix.txt" ] && ! diff -u <(grep -v '^#' "$ORACLE/$role-$arch$suffix.txt") "$out" >&2; then
          fail "$role $arch recommends=$rec differs from apt-oracle/"
        fi
      else
        cat "$out.log" >&2; fail "apt-get -s install $pkgs ($arch, recommends=$rec)"
      fi
    done
  done <"$WORK/roles"

  # --- extra cases: properties of the mirror that imagebuild's tests rely on ---
  # Recommends really differ for compute.
  cmp -s "$WORK/compute-$arch.txt" "$WORK/compute-$arch+recommends.txt" \
    && fail "compute/$arch: recommends on and off give the same set"
  # arm64 has no linux-headers-amd64, nsight-systems, xserver-xorg-video-nvidia-*.
  if [ "$arch" = arm64 ] && grep -Eq '^(nsight-systems|xserver-xorg-video-nvidia-550|linux-headers-amd64) ' "$WORK/compute-arm64+recommends.txt"; then
    fail "arm64 compute contains an amd64-only package"
  fi
  # Essential packages: apt-get install does not add them on its own; python3 pulls dpkg.
  grep -q '^base-files ' "$WORK/compute-$arch.txt" && fail "compute/$arch: base-files added without a dependency on it"
  grep -q '^dpkg ' "$WORK/compute-$arch.txt" || fail "compute/$arch: dpkg (via python3-minimal) missing"

  while IFS='|' read -r name expect rec must pkgs; do
    [ -n "$name" ] || continue
    out="$WORK/extra-$name-$arch.txt"
    # shellcheck disable=SC2086
    if simulate "$d" "$rec" "$out" $pkgs; then got=ok; else got=fail; fi
    if [ "$got" != "$expect" ]; then
      cat "$out.log" >&2; fail "extra case $name ($arch): apt-get -s install $pkgs: expected $expect, got $got"
      continue
    fi
    if [ "$got" = ok ]; then
      grep -qF -- "$must" "$out" || { cat "$out" >&2; fail "extra case $name ($arch): no '$must' in the result"; }
      summary="$(wc -l <"$out")"
    else
      grep -qF -- "$must" "$out.log" || { cat "$out.log" >&2; fail "extra case $name ($arch): apt failed without '$must'"; }
      summary="apt gives up"
    fi
    printf '%-26s %-6s %-7s %-14s %s\n' "x:$name" "$arch" "$rec" "$summary" "$pkgs"
    if [ "$WRITE" = 1 ]; then
      if [ "$got" = ok ]; then
        { echo "# apt-get -s install $pkgs  (APT::Architecture=$arch, Install-Recommends=$rec, empty status)"
          echo "# generated by scripts/check-example-mirror.sh; name version arch"
          cat "$out"; } >"$ORACLE/extra-$name-$arch.txt"
      else
        { echo "# apt-get -s install $pkgs  (APT::Architecture=$arch, Install-Recommends=$rec, empty status)"
          echo "# apt gives up (exit 100); its explanation:"
          grep -E '^ [^ ].* : |^ +(Depends|Conflicts|Breaks|PreDepends|Pre-Depends): |^E: ' "$out.log"; } >"$ORACLE/extra-$name-$arch.fail"
      fi
    fi
  done <<'EXTRAS'
bpo-rdma-core|ok|false|rdma-core 50.0-2~bpo12+1 |rdma-core/bookworm-backports
bpo-libibverbs1|ok|true|libibverbs1 50.0-2~bpo12+1 |libibverbs1/bookworm-backports
bpo-providers|fail|false|ibverbs-providers : Depends: libibverbs1 (>= 50.0) but 44.0-2 is to be installed|ibverbs-providers/bookworm-backports
bpo-providers-both|ok|false|ibverbs-providers 50.0-2~bpo12+1 |ibverbs-providers/bookworm-backports libibverbs1/bookworm-backports
bpo-breaks|fail|false|libibverbs1 : Breaks: ibverbs-providers (< 50.0) but 44.0-2 is to be installed|libibverbs1/bookworm-backports ibverbs-providers
slurmctld-mta|ok|false|postfix 3.7.11-0+deb12u1 |slurmctld
cuda-drivers|fail|false|nvidia-dkms-560 : Depends: dkms (>= 3.1.8)|cuda-drivers
cuda-drivers-dkms-bpo|ok|false|nvidia-driver-560 560.35.03-0ubuntu1 |cuda-drivers dkms/bookworm-backports
two-drivers|fail|false|Conflicts: nvidia-driver-binary|nvidia-driver-550 nvidia-driver-560 dkms/bookworm-backports
nccl-old|ok|false|libnccl2 2.20.5-1+cuda12.4 |libnccl2=2.20.5-1+cuda12.4
EXTRAS
  # libibverbs1 from backports recommends ibverbs-providers (>= 50.0), but the candidate
  # is 44.0-2 (which it Breaks): apt silently drops the recommendation.
  grep -q '^ibverbs-providers ' "$WORK/extra-bpo-libibverbs1-$arch.txt" 2>/dev/null \
    && fail "bpo-libibverbs1 ($arch): ibverbs-providers was installed"
done

# --- the rpm repos (mirror/rocky9) -----------------------------------------------
for md in "$EXAMPLE"/mirror/rocky9/*/repodata/repomd.xml; do
  gpgv --quiet --keyring "$KEYRING" "$md.asc" "$md" 2>/dev/null || fail "gpgv: ${md#"$EXAMPLE"/}.asc does not verify"
done
if command -v rpmbuild >/dev/null && command -v createrepo_c >/dev/null && command -v modifyrepo_c >/dev/null; then
  rc=0; python3 "$HERE/example-mirror/build_rpms.py" --compare "$EXAMPLE/mirror/rocky9" || rc=$?
  case "$rc" in
    0) ;;
    3) echo "check-example-mirror: rpm repos not compared (other rpm/createrepo_c versions than BUILD-INFO)" >&2 ;;
    *) fail "mirror/rocky9 differs from what scripts/example-mirror/build_rpms.py builds" ;;
  esac
else
  echo "check-example-mirror: rpmbuild/createrepo_c missing: rpm repos not rebuilt for comparison" >&2
fi
if [ "$WRITE" = 1 ]; then
  python3 "$HERE/example-mirror/dnf_check.py" || fail "dnf check"
else
  python3 "$HERE/example-mirror/dnf_check.py" --no-write || fail "dnf check"
fi

if [ "$FAILED" = 0 ]; then
  echo "check-example-mirror: OK (apt $(apt-get --version | head -1 | cut -d' ' -f2)$(command -v dnf >/dev/null && printf ', dnf %s' "$(dnf --version 2>/dev/null | head -1)"))"
else
  echo "check-example-mirror: FAILED" >&2
  exit 1
fi
