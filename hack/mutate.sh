#!/usr/bin/env bash
# Mutation testing of the pure modules with mutmut, against the unit tests only.
# Not part of CI: a full run takes about 35 minutes on one core.
#
#   hack/mutate.sh                           # policy/, node/planner, users, executor
#   hack/mutate.sh node/users.py policy/references.py
#   hack/mutate.sh --resume                  # same code, new tests: finish an interrupted
#                                            # run, then retry its survivors
#
# mutmut names mutants after the file path ("src." stripped), so our layout
# (operator/imageprune, no operator/__init__.py) would give keys that never match
# the imported module names. The run therefore happens in a staging directory
# laid out as src/imageprune; imageprune_cri is imported from cri/ unmutated.
# MUTATE_DIR (default /tmp/imageprune-mutate) holds it; MUTATE_JOBS sets workers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stage=${MUTATE_DIR:-/tmp/imageprune-mutate}
jobs=${MUTATE_JOBS:-1}
export PYTHONPATH=$root/cri:$root/hack
want=$(sed -n 's/^mutate = \["mutmut==\(.*\)"\]$/\1/p' "$root/pyproject.toml")
have=$(python3 -c 'import importlib.metadata as m; print(m.version("mutmut"))' 2>/dev/null || true)
if [[ "$have" != "$want" ]]; then
  echo "hack/mutate.sh needs mutmut $want (found: ${have:-none}): pip install -e '.[mutate]'" >&2
  exit 1
fi
# Example tests first (hack/mutmut_plugin.py), and not the test of the installed
# console script (it runs whatever checkout is installed, not the stage). Passed
# through the environment: a change to mutmut's own pytest arguments discards results.
export PYTEST_ADDOPTS="-p mutmut_plugin --deselect=tests/unit/test_cli.py::test_console_script_version"

copy_tests() {  # $1: destination root
  rm -rf "$1/tests"
  mkdir -p "$1/tests"
  cp -r "$root/tests/conftest.py" "$root/tests/testkit" "$root/tests/unit" "$1/tests/"
}

source_hash() { find "$root/operator/imageprune" -name '*.py' -print0 | sort -z | xargs -0 cat | sha256sum; }

if [[ "${1:-}" == "--resume" ]]; then
  cd "$stage"
  # New tests against the mutants of old code would "kill" them by failing anyway.
  if [[ "$(source_hash)" != "$(cat source.sha256)" ]]; then
    echo "operator/imageprune changed since the staged run: run hack/mutate.sh afresh" >&2
    exit 1
  fi
  # Only the tests changed: the mutated sources stay as generated.
  copy_tests . && copy_tests mutants
  rm -f mutants/mutmut-stats.json  # new tests must be mapped to the functions they reach
  mutmut run --max-children "$jobs" >>mutmut.log 2>&1  # the mutants not yet checked
  mapfile -t survivors < <(mutmut results | awk -F': ' '$2 == "survived" {print $1}' | tr -d ' ')
  if [[ ${#survivors[@]} -gt 0 ]]; then
    mutmut run --max-children "$jobs" "${survivors[@]}" >>mutmut.log 2>&1
  fi
  exec python3 "$root/hack/mutation_report.py"
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(policy/durations.py policy/quantities.py policy/references.py policy/selection.py
    node/planner.py node/users.py node/executor.py)
fi
only=$(printf '"src/imageprune/%s", ' "${targets[@]}")

rm -rf "$stage"
mkdir -p "$stage/src"
cp -r "$root/operator/imageprune" "$stage/src/"
copy_tests "$stage"
cp -r "$root/deploy" "$root/docs" "$root/charts" "$stage/"  # read by some unit tests
cp "$root/pyproject.toml" "$stage/"
source_hash >"$stage/source.sha256"
cat >>"$stage/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["src/imageprune"]
only_mutate = [${only%, }]
also_copy = ["deploy", "docs", "charts"]
pytest_add_cli_args_test_selection = ["tests/unit"]
# The first two run Python from the repository root, which the stage is not; the
# timing test cannot pass under mutmut's tracing.
pytest_add_cli_args = ["-q", "-p", "no:cacheprovider",
  "--ignore=tests/unit/test_layout.py", "--ignore=tests/unit/test_generated_code.py",
  "--deselect=tests/unit/test_planner.py::test_plans_ten_thousand_images_quickly"]
EOF

cd "$stage"
mutmut run --max-children "$jobs" >mutmut.log 2>&1 || { tail -n 40 mutmut.log; exit 1; }
exec python3 "$root/hack/mutation_report.py"
