#!/bin/sh
# Install what imagebuild needs on Debian 12 (run as root), and with --test what its tests need.
# Idempotent: installs only what is missing.
set -eu
cd "$(dirname "$0")/.."

need_apt=""
want() { command -v "$1" >/dev/null 2>&1 || need_apt="$need_apt $2"; }
want gpgv gpgv
want xz xz-utils
if [ "${1:-}" = "--test" ]; then
    want apt-get apt
    want gpg gpg
    want dpkg-deb dpkg
    want apt-ftparchive apt-utils   # only to regenerate the example mirror
    want rpmbuild rpm               # fixture RPM repos (tests/rpmrepos.py)
    want createrepo_c createrepo-c  # ... their repodata (also modifyrepo_c)
    want dnf dnf                    # the oracle for rpm resolution
    want mmdebstrap mmdebstrap      # real Debian images from a mirror (slow tests)
fi
if [ -n "$need_apt" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need_apt
fi

python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[test]"
# byte-compile as a regular install would (an editable one does not; with PYTHONDONTWRITEBYTECODE set,
# every start would compile the sources again: ~0.25 s of each run)
python3 -m compileall -q imagebuild
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
