#!/usr/bin/env bash
# Distributed training on one or more nodes: tools/dist_train.sh CONFIG GPUS [train.py args]
# Env: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON (see _dist_python.sh).
# GPUS is the number of processes per node; on CPU-only hosts they run with the gloo backend.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
source "$(dirname "${BASH_SOURCE[0]}")/_dist_python.sh"

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$GPUS" \
    "$(dirname "${BASH_SOURCE[0]}")/train.py" "$CONFIG" --launcher pytorch "$@"
