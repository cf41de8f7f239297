#!/usr/bin/env bash
# Install what pybuild and its tests need on a Debian 12 machine, then the
# package itself into .venv. Safe to run again: it skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(python3 python3-venv python3-pip busybox-static buildah skopeo umoci
          docker-registry runc uidmap apache2-utils openssl zstd xz-utils bzip2 ca-certificates
          podman cpp git gnupg slirp4netns passt mmdebstrap openssh-client openssh-server)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  # The tests start docker-registry and sshd themselves, on 127.0.0.1 only: keep the
  # packages from starting their services (on every address) while they install.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
    trap 'rm -f "$guard"' EXIT
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  if [ -n "$guard" ]; then rm -f "$guard"; trap - EXIT; fi
fi

# RUN's default network: slirp4netns (or pasta) opens /dev/net/tun as the building user.
# Debian's udev makes it 0666; machines without udev leave the kernel's 0600 (root only).
if [ "$(id -u)" -eq 0 ] && [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  chmod 0666 /dev/net/tun
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
