#!/usr/bin/env bash
# `make run`: the whole partner flow on the samples, against a fresh embedded SQLite database:
# org state → (templates → customers) → dry run of the users file → apply → what changed,
# then a dry run of every other sample, so a newcomer sees each kind of report.
set -uo pipefail
CSV=${1:-csvimport}
cd "$(dirname "$0")/.."
export CSVIMPORT_DB="sqlite:///csvimport.db"
rm -f csvimport.db csvimport.db-wal csvimport.db-shm
rm -rf out && mkdir -p out
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { echo "\$ csvimport $*"; "$CSV" "$@"; echo "(exit $?)"; }

step "Load the organisations (SPEC 9)"
run org load samples/consumer.yaml
run org load samples/org.yaml
if [ -f samples/templates.yaml ] && "$CSV" templates --help >/dev/null 2>&1; then
  step "Provision customers from onboarding templates (SPEC 11)"
  run templates load samples/templates.yaml
  run customers validate samples/customers.csv --report-dir out/customers-validate
  run customers apply samples/customers.csv --report-dir out/customers-apply
  run customers list
  if [ -f samples/globex_users.csv ]; then
    step "Import users into the org the customers file just created"
    run apply samples/globex_users.csv --org globex --report-dir out/globex-users
  fi
fi
step "Dry run of samples/users.csv against acme: nothing is written"
run validate samples/users.csv --org acme --report-dir out/validate
step "Apply samples/users.csv to acme"
run apply samples/users.csv --org acme --report-dir out/apply
run org show acme
run jobs list
step "Validate every other sample (reports in out/<name>/)"
for f in samples/german_excel.csv samples/utf16.txt samples/users.xlsx samples/errors/*.csv; do
  case "$f" in *.expected.csv) continue ;; esac
  name=$(basename "$f"); name=${name%.*}
  run validate "$f" --report-dir "out/$name"
done
echo
echo "Reports are in out/: summary.json, issues.csv, errors.csv, rejected.csv|xlsx, plan.jsonl."
