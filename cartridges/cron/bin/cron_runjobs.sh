#!/bin/bash
# cron_runjobs.sh FREQUENCY: runs the application's jobs of one frequency, each with a time
# limit, only while the cartridge is started. Called by the node's scheduler.
set -uo pipefail
frequency="${1:-}"
case "$frequency" in
    minutely|hourly|daily|weekly|monthly) ;;
    *) echo "usage: cron_runjobs.sh minutely|hourly|daily|weekly|monthly" >&2; exit 2 ;;
esac
cart_dir="${OPENSHIFT_CRON_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
[ -f "$cart_dir/run/jobs.enabled" ] || exit 0
jobs_dir="${OPENSHIFT_REPO_DIR:-}/.openshift/cron/$frequency"
[ -d "$jobs_dir" ] || exit 0
limit="${CRON_JOB_TIMEOUT:-300}"
log_dir="${OPENSHIFT_LOG_DIR:-$cart_dir/logs}"
mkdir -p "$log_dir"
status=0
for job in "$jobs_dir"/*; do
    [ -f "$job" ] && [ -x "$job" ] || continue
    echo "$(date -u +%FT%TZ) $frequency: running $(basename "$job")" >> "$log_dir/cron.log"
    timeout "$limit" "$job" >> "$log_dir/cron.log" 2>&1 || status=$?
done
exit "$status"
