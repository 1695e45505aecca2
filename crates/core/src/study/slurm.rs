//! `kdstore study STUDY --slurm`: the study as a Slurm job array, one array task per run of the
//! plan (`--index $SLURM_ARRAY_TASK_ID`), so the cluster's scheduler places the runs and no
//! scheduler of ours is needed. Preemption and time limits requeue a task instead of failing it:
//! Slurm sends the batch script SIGUSR1 some minutes before it stops the task (`--signal`), the
//! script passes it to `kdstore study`, whose training stops at its next step (every finished epoch
//! is checkpointed), and the script requeues the task, which resumes the training with `--resume`.
//! A task whose run is already done exits at once; the last step rebuilds the report.

use std::path::Path;

use super::plan::Study;

/// The folder of the tasks' logs, in the study's output folder.
pub const LOGS: &str = "slurm";

/// Seconds before the end of a task's time that Slurm warns it.
pub const WARNING_SECONDS: u32 = 120;

/// The batch script, for `sbatch`. Paths are absolute, so it can be submitted from anywhere.
pub fn job_array(study: &Study, kdstore: &Path, study_file: &Path, workdir: &Path, threads: usize) -> String {
    let runs = study.runs.len();
    let name: String = study
        .title()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    let quote = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', r"'\''"));
    let logs = workdir.join(study.out()).join(LOGS);
    format!(
        r#"#!/bin/bash
# {title}: {runs} runs of `kdstore study` as a Slurm job array, one task per run.
#   sbatch THIS_FILE                       # the array (tasks of finished runs exit at once)
#   sbatch --dependency=afterany:JOBID --wrap "{kdstore} study {study_file} --report"
# Add your site's options (--partition, --time, --mem, --gres=gpu:1 with --device cuda) below.
# SIGUSR1 {WARNING_SECONDS} s before a task's end (preemption or its time limit): the training
# stops at its next step, the task requeues itself and resumes from its last epoch's checkpoint.
#SBATCH --job-name={name}
#SBATCH --array=0-{last}
#SBATCH --cpus-per-task={threads}
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@{WARNING_SECONDS}
#SBATCH --output={logs}/%A_%a.log
set -u
cd {workdir_quoted}
requeue() {{
    scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
    exit 0
}}
{kdstore} study {study_file} --index "$SLURM_ARRAY_TASK_ID" --threads "${{SLURM_CPUS_PER_TASK:-{threads}}}" &
study=$!
trap 'kill -USR1 "$study"; wait "$study"; requeue' USR1
wait "$study"
status=$?
# 75: stopped by a signal Slurm sent the whole task (SIGTERM on preemption); resume it.
[ "$status" -eq 75 ] && requeue
exit "$status"
"#,
        title = study.title(),
        kdstore = quote(kdstore),
        study_file = quote(study_file),
        last = runs.saturating_sub(1),
        logs = logs.display(),
        workdir_quoted = quote(workdir),
    )
}
