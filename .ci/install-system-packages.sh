#!/usr/bin/env bash
# Install the Debian packages the test suite needs: a single-node SLURM with accounting
# (munge, slurmctld, slurmd, slurm-client, slurmdbd, mariadb-server) and headless Chromium
# with its driver (report test). Package scripts must not start services (there is no
# systemd; .ci/slurm/up.sh starts the daemons), so a temporary /usr/sbin/policy-rc.d that
# exits 101 is put in place for the install; an existing file is kept and restored.
# Usage: bash .ci/install-system-packages.sh   (as root; idempotent)
set -euo pipefail

PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server chromium chromium-driver)

if [[ $(id -u) -ne 0 ]]; then
    echo "install-system-packages: must run as root" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-system-packages: all present"
    exit 0
fi

policy=/usr/sbin/policy-rc.d
backup=""
if [[ -e $policy ]]; then
    backup=$(mktemp)
    cp -p "$policy" "$backup"
fi
restore_policy() {
    if [[ -n $backup ]]; then
        cp -p "$backup" "$policy" && rm -f "$backup"
    else
        rm -f "$policy"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod 755 "$policy"

start=$SECONDS
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"
echo "install-system-packages: installed ${missing[*]} in $((SECONDS - start)) s"
