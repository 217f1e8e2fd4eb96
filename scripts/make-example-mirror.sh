#!/usr/bin/env bash
# Regenerate the signed example mirror of examples/gpu-cluster/ (apt and dnf repos) with real tools.
#
#   scripts/make-example-mirror.sh            # rebuild mirror/ and keys/, then check with apt and dnf
#   scripts/make-example-mirror.sh --no-check # rebuild only
#
# What it does (everything under examples/gpu-cluster/mirror and keys/ is deleted first):
#   1. builds tiny .deb files with `dpkg-deb --build --root-owner-group` from
#      scripts/example-mirror/packages.deb822 (via build_debs.py);
#   2. writes Packages indexes with `apt-ftparchive generate` (debian/, a normal
#      dists/ tree with suites bookworm and bookworm-backports) and
#      `apt-ftparchive packages` (cuda/, a flat repository), plus Packages.gz
#      (gzip -n) and Packages.xz;
#   3. writes Release files with `apt-ftparchive release` (fixed Date and
#      Valid-Until so the result is reproducible);
#   3b. builds the Rocky-9-shaped rpm repos mirror/rocky9/{baseos,appstream,epel,
#      cuda,doca} with rpmbuild, createrepo_c and modifyrepo_c (build_rpms.py: a
#      subset of tests/rpmrepos.py's fixture packages, nvidia-driver modules.yaml);
#   4. generates a THROWAWAY ed25519 OpenPGP key in a temporary GNUPGHOME, signs
#      every Release into InRelease (clearsigned) and Release.gpg (detached,
#      armored) and every rpm repodata/repomd.xml into repomd.xml.asc (detached,
#      armored, what dnf's repo_gpgcheck reads), exports the public key as the
#      binary keyring examples/gpu-cluster/keys/example-archive.gpg, and verifies
#      everything with gpgv;
#   5. runs scripts/check-example-mirror.sh: real `apt-get update` and
#      `apt-get -s install` of every deb role on amd64 and arm64, and real
#      `dnf install` of every rpm role on x86_64 and aarch64 (when dnf is there).
#
# Everything except the key and the signatures (InRelease, Release.gpg,
# repomd.xml.asc, keys/example-archive.gpg) is byte-for-byte reproducible (the
# rpm repos for the same rpm/createrepo_c versions, recorded in
# mirror/rocky9/BUILD-INFO).  The private key is destroyed at the end: to change
# the mirror, edit packages.deb822 (deb) or build_rpms.py (rpm) and re-run.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
EXAMPLE="$ROOT/examples/gpu-cluster"
MIRROR="$EXAMPLE/mirror"
KEYS="$EXAMPLE/keys"
SPEC="$HERE/example-mirror/packages.deb822"

# The archive state this mirror pretends to be: Release Date is one day before
# the example's snapshot id (20261122T000000Z); Valid-Until is 7 days after Date.
export SOURCE_DATE_EPOCH=1795219200                     # 2026-11-21T00:00:00Z
RELEASE_DATE="Sat, 21 Nov 2026 00:00:00 UTC"
VALID_UNTIL="Sat, 28 Nov 2026 00:00:00 UTC"
ARCHES="amd64 arm64"
DEBIAN_SUITES="bookworm bookworm-backports"
COMPONENTS="main non-free"

RUN_CHECK=1
case "${1:-}" in
  --no-check) RUN_CHECK=0 ;;
  "") ;;
  *) echo "usage: $0 [--no-check]" >&2; exit 2 ;;
esac

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'make-example-mirror: %s\n' "$*" >&2; exit 1; }

# --- tools ------------------------------------------------------------------
if ! command -v apt-ftparchive >/dev/null; then
  log "installing apt-utils (apt-ftparchive)"
  apt-get install -y --no-install-recommends apt-utils >/dev/null || die "apt-ftparchive missing; install apt-utils"
fi
if ! command -v rpmbuild >/dev/null || ! command -v createrepo_c >/dev/null || ! command -v modifyrepo_c >/dev/null; then
  log "installing rpm and createrepo-c (rpmbuild, createrepo_c, modifyrepo_c)"
  apt-get install -y --no-install-recommends rpm createrepo-c >/dev/null \
    || die "rpmbuild/createrepo_c missing; install rpm and createrepo-c"
fi
for tool in dpkg-deb gpg gpgv gzip xz python3 apt-get rpmbuild createrepo_c modifyrepo_c; do
  command -v "$tool" >/dev/null || die "required tool '$tool' not found"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/example-mirror.XXXXXX")"
export GNUPGHOME="$WORK/gnupg"
cleanup() {
  if [ -d "$GNUPGHOME" ]; then gpgconf --kill all >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. packages ------------------------------------------------------------
log "removing old $MIRROR and $KEYS"
rm -rf "$MIRROR" "$KEYS"
mkdir -p "$MIRROR/debian" "$MIRROR/cuda" "$KEYS"

log "building .deb files"
python3 "$HERE/example-mirror/build_debs.py" "$SPEC" "$MIRROR" "$WORK"

compress_index() {   # FILE -> FILE.gz FILE.xz (reproducible: no name/time in gzip header)
  gzip -9 -n -c "$1" >"$1.gz"
  xz -6 -T1 -c "$1" >"$1.xz"
}

# --- 2. debian/ indexes ------------------------------------------------------
log "indexing debian/ with apt-ftparchive generate"
{
  # A fresh CacheDir: apt-ftparchive's default cache DB (packages-<arch>.db) keys on
  # file name, size and mtime, which our reproducible .debs share across edits.
  echo "Dir { ArchiveDir \"$MIRROR/debian\"; CacheDir \"$WORK/cache\"; };"
  echo 'Default { Packages::Compress "."; Packages::Extensions ".deb"; FileMode 0644; };'
  for suite in $DEBIAN_SUITES; do
    echo "Tree \"dists/$suite\" { Sections \"$COMPONENTS\"; Architectures \"$ARCHES\";"
    echo "  FileList \"$WORK/lists/${suite}_\$(SECTION)_\$(ARCH)\"; Contents \" \"; };"
  done
} >"$WORK/ftparchive.conf"
mkdir -p "$WORK/cache"
for suite in $DEBIAN_SUITES; do
  for comp in $COMPONENTS; do
    for arch in $ARCHES; do
      mkdir -p "$MIRROR/debian/dists/$suite/$comp/binary-$arch"
    done
  done
done
# apt-ftparchive generate exits 0 even when it fails to write an index: check.
apt-ftparchive -q --no-contents generate "$WORK/ftparchive.conf" >"$WORK/generate.log" 2>&1 \
  || { cat "$WORK/generate.log" >&2; die "apt-ftparchive generate failed"; }
if grep -q '^E:' "$WORK/generate.log"; then cat "$WORK/generate.log" >&2; die "apt-ftparchive generate reported errors"; fi
for suite in $DEBIAN_SUITES; do
  for comp in $COMPONENTS; do
    for arch in $ARCHES; do
      idx="$MIRROR/debian/dists/$suite/$comp/binary-$arch/Packages"
      [ -f "$idx" ] || die "missing $idx"
      want=$(wc -l <"$WORK/lists/${suite}_${comp}_${arch}")
      got=$(grep -c '^Package:' "$idx" || true)
      [ "$want" = "$got" ] || die "$idx has $got packages, expected $want"
      compress_index "$idx"
    done
  done
done

# --- 2b. cuda/ indexes (flat: "deb URL ./") -----------------------------------
log "indexing cuda/ with apt-ftparchive packages"
( cd "$MIRROR/cuda" && apt-ftparchive -q packages . >"$WORK/cuda-Packages" )
mv "$WORK/cuda-Packages" "$MIRROR/cuda/Packages"
compress_index "$MIRROR/cuda/Packages"

# --- 3. Release files --------------------------------------------------------
# apt-ftparchive stamps Date (and Valid-Until = now + ValidTime) from the clock, not
# from SOURCE_DATE_EPOCH; both fields can be overridden by APT::FTPArchive::Release::<Field>,
# but Valid-Until is only emitted at all when ValidTime is non-zero.
release() {   # DIR OUT [apt-ftparchive -o options...]
  local dir="$1" out="$2"; shift 2
  apt-ftparchive -q \
    -o APT::FTPArchive::Release::Date="$RELEASE_DATE" \
    -o APT::FTPArchive::Release::Acquire-By-Hash=no \
    "$@" release "$dir" >"$out"
}
log "writing Release files"
release "$MIRROR/debian/dists/bookworm" "$WORK/Release" \
  -o APT::FTPArchive::Release::Origin="Debian" \
  -o APT::FTPArchive::Release::Label="Debian" \
  -o APT::FTPArchive::Release::Suite="oldstable" \
  -o APT::FTPArchive::Release::Version="12.8" \
  -o APT::FTPArchive::Release::Codename="bookworm" \
  -o APT::FTPArchive::Release::ValidTime=604800 \
  -o APT::FTPArchive::Release::Valid-Until="$VALID_UNTIL" \
  -o APT::FTPArchive::Release::Architectures="$ARCHES" \
  -o APT::FTPArchive::Release::Components="$COMPONENTS" \
  -o APT::FTPArchive::Release::Description="Debian 12.8 Released 09 November 2024 (imagebuild example mirror)"
mv "$WORK/Release" "$MIRROR/debian/dists/bookworm/Release"
release "$MIRROR/debian/dists/bookworm-backports" "$WORK/Release" \
  -o APT::FTPArchive::Release::Origin="Debian Backports" \
  -o APT::FTPArchive::Release::Label="Debian Backports" \
  -o APT::FTPArchive::Release::Suite="oldstable-backports" \
  -o APT::FTPArchive::Release::Codename="bookworm-backports" \
  -o APT::FTPArchive::Release::ValidTime=604800 \
  -o APT::FTPArchive::Release::Valid-Until="$VALID_UNTIL" \
  -o APT::FTPArchive::Release::NotAutomatic="yes" \
  -o APT::FTPArchive::Release::ButAutomaticUpgrades="yes" \
  -o APT::FTPArchive::Release::Architectures="$ARCHES" \
  -o APT::FTPArchive::Release::Components="$COMPONENTS" \
  -o APT::FTPArchive::Release::Description="Debian bookworm - Backports (imagebuild example mirror)"
mv "$WORK/Release" "$MIRROR/debian/dists/bookworm-backports/Release"
# Like NVIDIA's flat repos: no Suite/Codename, no Valid-Until.
release "$MIRROR/cuda" "$WORK/Release" \
  -o APT::FTPArchive::Release::Origin="NVIDIA" \
  -o APT::FTPArchive::Release::Label="NVIDIA CUDA" \
  -o APT::FTPArchive::Release::Architectures="$ARCHES" \
  -o APT::FTPArchive::Release::Description="CUDA flat repository (imagebuild example mirror)"
mv "$WORK/Release" "$MIRROR/cuda/Release"
for suite in $DEBIAN_SUITES; do
  rel="$MIRROR/debian/dists/$suite/Release"
  for field in Origin Label Suite Codename Date Valid-Until Architectures Components SHA256; do
    grep -q "^$field:" "$rel" || die "$rel lacks $field"
  done
  grep -qx "Valid-Until: $VALID_UNTIL" "$rel" || die "$rel has the wrong Valid-Until"
done
grep -q '^NotAutomatic: yes' "$MIRROR/debian/dists/bookworm-backports/Release" || die "backports must be NotAutomatic"

# --- 3b. rpm repos (Rocky 9 BaseOS/AppStream, EPEL, CUDA with modules, DOCA) ---
log "building the rpm repos under mirror/rocky9 (rpmbuild + createrepo_c)"
python3 "$HERE/example-mirror/build_rpms.py" "$MIRROR/rocky9"
RPM_REPOS="baseos appstream epel cuda doca"
for repo in $RPM_REPOS; do
  [ -f "$MIRROR/rocky9/$repo/repodata/repomd.xml" ] || die "missing $MIRROR/rocky9/$repo/repodata/repomd.xml"
done

# --- 4. throwaway key and signatures ------------------------------------------
log "generating a throwaway signing key"
mkdir -m 700 "$GNUPGHOME"
UID_STR="imagebuild example archive (THROWAWAY test key, do not trust) <example-archive@example.invalid>"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-gen-key "$UID_STR" ed25519 sign never 2>"$WORK/gpg.log" \
  || { cat "$WORK/gpg.log" >&2; die "gpg key generation failed"; }
FPR="$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')"
[ -n "$FPR" ] || die "could not read the new key's fingerprint"
gpg --batch --export "$FPR" >"$KEYS/example-archive.gpg"

log "signing Release files with $FPR"
for rel in "$MIRROR/debian/dists/bookworm/Release" \
           "$MIRROR/debian/dists/bookworm-backports/Release" \
           "$MIRROR/cuda/Release"; do
  dir="$(dirname "$rel")"
  gpg --batch --quiet --yes --pinentry-mode loopback --passphrase '' --local-user "$FPR" \
    --digest-algo SHA512 --clearsign -o "$dir/InRelease" "$rel"
  gpg --batch --quiet --yes --pinentry-mode loopback --passphrase '' --local-user "$FPR" \
    --digest-algo SHA512 --armor --detach-sign -o "$dir/Release.gpg" "$rel"
  gpgv --quiet --keyring "$KEYS/example-archive.gpg" "$dir/InRelease" 2>/dev/null \
    || die "gpgv could not verify $dir/InRelease"
  gpgv --quiet --keyring "$KEYS/example-archive.gpg" "$dir/Release.gpg" "$rel" 2>/dev/null \
    || die "gpgv could not verify $dir/Release.gpg"
done
for repo in $RPM_REPOS; do
  md="$MIRROR/rocky9/$repo/repodata/repomd.xml"
  gpg --batch --quiet --yes --pinentry-mode loopback --passphrase '' --local-user "$FPR" \
    --digest-algo SHA512 --armor --detach-sign -o "$md.asc" "$md"
  gpgv --quiet --keyring "$KEYS/example-archive.gpg" "$md.asc" "$md" 2>/dev/null \
    || die "gpgv could not verify $md.asc"
done

# Tidy metadata: fixed mtimes for every generated file (git ignores them, rsync/http don't).
find "$MIRROR" "$KEYS" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

ndeb=$(find "$MIRROR/debian/pool" -name '*.deb' | wc -l)
ncuda=$(find "$MIRROR/cuda" -maxdepth 1 -name '*.deb' | wc -l)
nrpm=$(find "$MIRROR/rocky9" -name '*.rpm' | wc -l)
log "mirror ready: debian $ndeb .deb, cuda $ncuda .deb, rocky9 $nrpm .rpm, $(du -sb "$MIRROR" | cut -f1) bytes; key $FPR"
for f in "$MIRROR"/debian/dists/*/InRelease "$MIRROR"/cuda/InRelease; do
  gpgv --keyring "$KEYS/example-archive.gpg" "$f" 2>&1 | sed -n 's/^gpgv: Good signature/  ok: Good signature/p' | sed "s|\$| (${f#"$EXAMPLE"/})|"
done

# --- 5. prove it with real apt --------------------------------------------------
if [ "$RUN_CHECK" = 1 ]; then
  "$HERE/check-example-mirror.sh"
fi
