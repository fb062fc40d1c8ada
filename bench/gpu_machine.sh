#!/usr/bin/env bash
# The GPU check on a machine with a CUDA GPU, NumPy, CuPy, PyTorch and pytest but no network:
# installs the wheels carried in .whl/ (array-api-compat, array-api-strict, platformdirs,
# pooch, pyinstrument: what the project needs beyond that machine's packages) and the project,
# then runs bench/gpu_check.py, writing its report and bench/gpu.py's results to OUTPUT_DIR.
#
#   bash bench/gpu_machine.sh [OUTPUT_DIR [gpu_check.py options...]]
#
# Fill .whl/ beforehand on a machine with network (for the GPU machine's Python, here 3.12):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       array-api-compat array-api-strict platformdirs pooch pyinstrument
set -uo pipefail
out=${1:-bench/results}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/portamlp-site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/portamlp-site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 \
  || export PYTHONPATH=$PWD:$PYTHONPATH
# Open MPI's mpiexec refuses root unless told (the MPI tests run it there as root)
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia-smi.csv"
PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --output "$out/gpu_check" "${@:2}"
rc=$?
for f in gpu.json gpu-tf32.json gpu_check_junit.xml; do
  [ -f "bench/results/$f" ] && [ "$out" != bench/results ] && cp "bench/results/$f" "$out/"
done
exit $rc
