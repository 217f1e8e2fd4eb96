#!/bin/sh
# Install imagebuild into .venv/ of this checkout (Debian 12/13, as root), and with --test what its tests need.
# Idempotent: installs only what is missing. Never touches the system Python (PEP 668): the venv is created
# from whatever python3 is first on PATH, with Debian's python3-venv installed when that python lacks venv.
# Afterwards: .venv/bin/imagebuild, .venv/bin/python -m pytest (or `. .venv/bin/activate`).
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
    # rpm's own EVR comparison (rpm.labelCompare) for the system python: tests/test_version_oracle.py
    /usr/bin/python3 -c 'import rpm' >/dev/null 2>&1 || need_apt="$need_apt python3-rpm"
    want createrepo_c createrepo-c  # ... their repodata (also modifyrepo_c)
    want dnf dnf                    # the oracle for rpm resolution
    want mmdebstrap mmdebstrap      # real Debian images from a mirror (slow tests)
    want faketime faketime          # .ci/run: the suite again with the clock years ahead
    want packer packer              # bake: packer validate/fmt/build of the rendered templates
    want shellcheck shellcheck      # bake: the rendered provisioning scripts
    want podman podman              # bake: Packer's docker builder through a podman shim (no Docker engine)
    want buildah buildah
    want runc runc
    want locale-gen locales         # the CLI tests under Spanish and German locales
fi
# a venv needs ensurepip; Debian ships it separately (python3-venv, and python3.X-venv on Debian 12)
if [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need_apt="$need_apt python3-venv"
fi
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends "$@"
}
if [ -n "$need_apt" ]; then
    # shellcheck disable=SC2086
    apt_install $need_apt
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c '' 2>/dev/null; then
    rm -rf .venv
    if ! python3 -m venv .venv; then
        # Debian 12: python3-venv alone may not carry this python's ensurepip wheels
        rm -rf .venv
        apt_install "python3-venv" "python$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
        python3 -m venv .venv
    fi
fi
if [ "${1:-}" = "--test" ]; then
    # locales the CLI tests run under: output must not change with the user's language
    missing=""
    for l in es_ES de_DE; do
        locale -a 2>/dev/null | grep -qix "$l.utf-\?8" || missing="$missing $l"
    done
    if [ -n "$missing" ]; then
        for l in $missing; do
            grep -q "^$l.UTF-8 UTF-8" /etc/locale.gen 2>/dev/null || echo "$l.UTF-8 UTF-8" >>/etc/locale.gen
        done
        locale-gen >/dev/null
    fi
fi
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
# compat mode: a plain path entry in a .pth; the default editable finder costs ~25 ms of every start
.venv/bin/python -m pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e ".$extra"
# byte-compile as a regular install would (an editable one does not; with PYTHONDONTWRITEBYTECODE set,
# every start would compile the sources again: ~0.25 s of each run)
.venv/bin/python -m compileall -q imagebuild
