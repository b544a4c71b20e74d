#!/usr/bin/env bash
# Several suite evaluations side by side on one machine (a GPU machine's cores, each case its own process),
# stopped at a deadline, their records packed into one archive:
#   scripts/evaluate_suites.sh OUT_DIR PLAN_FILE
# PLAN_FILE: one evaluation per line, `name | evaluate.py arguments | ddip overrides` (blank lines and # comments
# skipped), e.g.
#   seg_tune_nohints | --cases suites/seg --split tune --jobs 2 | task.hints=none
# Every evaluation's overrides start with `threads=1 logger=none trainer=$TRAINER`, and the
# suites (seg, haze, noise, separation) are made first under ./suites. OUT_DIR receives evaluations.tgz (every evaluation's
# evaluate.md and evaluate.json, rewritten after each case, so a stopped one keeps the cases it finished) and
# log.txt. Environment: TRAINER (gpu), DEADLINE (seconds, 500), EXTRA (evaluate.py arguments for all, e.g.
# "--steps 4" for a dry run).
set -u
out=${1:?usage: scripts/evaluate_suites.sh OUT_DIR PLAN_FILE}
plan=${2:?usage: scripts/evaluate_suites.sh OUT_DIR PLAN_FILE}
TRAINER=${TRAINER:-gpu}
DEADLINE=${DEADLINE:-500}
EXTRA=${EXTRA:-}
work=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
log="$out/log.txt"
started=$(date +%s)
for kind in seg haze noise separation; do
  [ -f "suites/$kind/cases.json" ] || python3 scripts/make_suite.py "$kind" --out "suites/$kind" >> "$log" 2>&1
done
pids=()
while IFS='|' read -r name arguments overrides; do
  name=${name// /}
  case "$name" in ''|'#'*) continue ;; esac
  mkdir -p "$work/$name"
  # shellcheck disable=SC2086
  timeout "$DEADLINE" python3 scripts/evaluate.py $arguments $EXTRA --out "$work/$name" \
    --override threads=1 logger=none "trainer=$TRAINER" $overrides > "$work/$name/stdout.txt" 2>&1 &
  pids+=($!)
  echo "$(date +%T) started $name: $arguments | $overrides" >> "$log"
done < "$plan"
pack() { (cd "$work" && tar czf "$out/evaluations.tgz" --exclude=runs ./*/evaluate.* ./*/stdout.txt 2>/dev/null); }
alive() { for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
while alive; do
  sleep 15
  pack
  [ $(( $(date +%s) - started )) -gt $(( DEADLINE + 30 )) ] && break
done
wait
pack
echo "$(date +%T) done after $(( $(date +%s) - started )) s" >> "$log"
