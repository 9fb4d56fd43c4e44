#!/usr/bin/env bash
# Start a real single-node SLURM cluster with accounting on this machine (Debian 12, SLURM 22.05,
# no systemd): munged, mariadbd, slurmdbd, slurmctld and slurmd, each writing a pid file that
# .ci/slurm/down.sh uses to stop it. Waits until `sinfo` shows the node idle.
# Needs root and the packages from .ci/install-system-packages.sh.
# Usage: bash .ci/slurm/up.sh        (stop with: bash .ci/slurm/down.sh)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER=kappaflow
PARTITION=debug
DB_PASS=kappaflow-ci
WAIT_S=${KAPPAFLOW_SLURM_WAIT_S:-60}
start=$SECONDS

die() {
    echo "slurm-up: $*" >&2
    for log in /var/log/slurm/*.log /var/log/mysql/error.log /var/log/munge/munged.log; do
        [[ -f $log ]] && { echo "--- tail $log" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}
wait_for() {  # wait_for DESCRIPTION COMMAND...: poll until COMMAND succeeds or WAIT_S passes
    local what=$1 t0=$SECONDS
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS - t0 < WAIT_S)) || die "timed out after ${WAIT_S}s waiting for $what"
        sleep 0.5
    done
}

[[ $(id -u) -eq 0 ]] || die "must run as root"
for cmd in munged mariadbd slurmdbd slurmctld slurmd sinfo sacct sacctmgr; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run .ci/install-system-packages.sh"
done

# A cluster left over from an earlier run would hold the ports and pid files.
bash "$here/down.sh" >/dev/null 2>&1 || true

node=$(hostname -s)
read -r cpus mem < <(slurmd -C | awk '/^NodeName/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print v["CPUs"], v["RealMemory"] }')
[[ -n $cpus && -n $mem ]] || die "could not read CPUs/RealMemory from slurmd -C"
real_mem=$((mem * 9 / 10))

install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
install -d -o slurm -g slurm -m 0755 /run/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
[[ -s /etc/munge/munge.key ]] || {
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
}
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

cat >/etc/slurm/slurm.conf <<CONF
# Written by .ci/slurm/up.sh: single-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
DefMemPerCPU=1024
MinJobAge=300
InactiveLimit=0
KillWait=10
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
chmod 0644 /etc/slurm/slurm.conf

cat >/etc/slurm/slurmdbd.conf <<CONF
# Written by .ci/slurm/up.sh.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
chown slurm:slurm /etc/slurm/slurmdbd.conf
chmod 0600 /etc/slurm/slurmdbd.conf

# munge: as user munge; forks and writes /run/munge/munged.pid.
runuser -u munge -- munged --pid-file=/run/munge/munged.pid
wait_for munge munge -n

# MariaDB: does not fork, so detach it with its streams on a log file.
[[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
setsid mariadbd --user=mysql --datadir=/var/lib/mysql --skip-networking \
    --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
    --log-error=/var/log/mysql/error.log </dev/null >>/var/log/mysql/error.log 2>&1 &
wait_for mariadb mariadb -u root -e "SELECT 1"
mariadb -u root <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

slurmdbd
wait_for slurmdbd sacctmgr -n list cluster
sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null

slurmctld
slurmd
wait_for "node $node idle" bash -c "sinfo -h -n '$node' -o '%t' | grep -qx idle"
echo "slurm-up: node $node idle ($cpus CPUs, ${real_mem} MB) in $((SECONDS - start)) s"
