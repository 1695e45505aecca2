#!/usr/bin/env bash
# Runs a small study through a real Slurm: starts a one-node cluster on this machine from Debian's
# packages (munge, slurmctld and slurmd, installed when missing; run as root), submits the job array
# that `kdstore study --slurm` prints, sends one running task Slurm's time-limit warning (SIGUSR1)
# so that it stops and requeues itself, waits for the array, rebuilds the report in a dependent job
# and checks that every run is done. Everything of the cluster lives under $SLURM_TEST_DIR
# (default /tmp/kdstore-slurm) and is stopped at the end.
#   make build && scripts/slurm-study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
kdstore=$root/target/release/kdstore
state=${SLURM_TEST_DIR:-/tmp/kdstore-slurm}
command -v slurmctld > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge > /dev/null
[ -d runs/basicmotions ] || "$kdstore" build pipelines/basicmotions.toml

rm -rf "$state" && mkdir -p "$state"/{ctld,spool,log} "$state/munge"/{etc,run,lib,log}
host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
# munge, on its own key and socket.
dd if=/dev/urandom of="$state/munge/etc/munge.key" bs=1024 count=1 status=none
chmod 700 "$state/munge"/* && chmod 400 "$state/munge/etc/munge.key"
socket=$state/munge/run/munge.socket
munged --force --key-file="$state/munge/etc/munge.key" --socket="$socket" \
    --pid-file="$state/munge/run/munged.pid" --seed-file="$state/munge/lib/munge.seed" --log-file="$state/munge/log/munged.log"
export SLURM_CONF=$state/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=kdstore-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
echo "CgroupPlugin=autodetect" > "$state/cgroup.conf"
stop() {
    scancel --user=root 2> /dev/null || true
    for pid in "$state/slurmd.pid" "$state/slurmctld.pid" "$state/munge/run/munged.pid"; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2> /dev/null || true
    done
}
trap stop EXIT
slurmctld -i
slurmd
for _ in $(seq 60); do sinfo -h -o %T 2> /dev/null | grep -q idle && break; sleep 1; done
sinfo

# The study: BasicMotions, CE and KD, two seeds, long enough epochs to be stopped in the middle.
work=$state/work
mkdir -p "$work"
cat > "$work/study.toml" <<TOML
[study]
title = "slurm-basicmotions"
store = "$root/runs/basicmotions"
out = "$work/out"
seeds = [1, 2]
baseline = { loss = "ce" }
[base]
student = "cnn1d"
width = 8
epochs = 60
batch-size = 8
[grid]
loss = ["ce", "kd"]
TOML
"$kdstore" study "$work/study.toml" --slurm --threads 1 > "$work/study.sbatch"
job=$(sbatch --parsable "$work/study.sbatch")
echo "submitted job array $job"
# The time-limit warning to task 0 once its training has finished some epochs.
for _ in $(seq 300); do
    ls "$work"/out/runs/*/seed-1/checkpoints > /dev/null 2>&1 && break
    sleep 0.5
done
for _ in $(seq 20); do
    scancel --signal=USR1 --batch "${job}_0" 2> /dev/null && break
    sleep 0.5
done
echo "sent SIGUSR1 to task ${job}_0"
for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$job")" ] && break
    sleep 1
done
squeue -h -j "$job" | grep -q . && { echo "error: the array did not finish in 10 minutes" >&2; exit 1; }
report=$(sbatch --parsable --wait --dependency=afterany:"$job" --output="$work/report.log" \
    --wrap "'$kdstore' study '$work/study.toml' --report")
cat "$work/report.log"
grep -q "4 of 4 runs done" "$work/report.log" || { echo "error: not every run is done" >&2; exit 1; }
grep -h "stopped by SIGUSR1" "$work"/out/runs/*/seed-*/train.log || { echo "error: no training was stopped by the warning" >&2; exit 1; }
grep -l "resuming" "$work"/out/slurm/*.log > /dev/null || { echo "error: no task resumed a training" >&2; exit 1; }
echo "slurm study: job $job and report job $report; every run done, the warned task requeued and resumed"
