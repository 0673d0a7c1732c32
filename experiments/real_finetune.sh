#!/bin/bash
# Round-3 fine-tune of the shipped default detectors on synthetic + real scenes (docs/real-scenes.md,
# "How the round-3 fine-tunes were made"). Starts from the SHIPPED weights, trains on a synthetic-heavy mix
# (data/rs/mix: 1,200 synthetic images, plus the four real train splits: 874 images), lr 1e-4, and selects
# the epoch on validation only: the four real val splits and a synthetic val split (data/rs/mixval-third/val),
# the mean of the five mAP@0.5 (streamdet train's own selection). The events and intensity runs go side by
# side, one torch thread each, under nice. After every epoch a watcher keeps that epoch's weights
# (OUT_DIR/<modality>.eN.pt) and scores them on every val split separately (EVAL_DIR/<modality>-eN-val.json).
# Real TEST splits are read by nothing here.
#
# usage: experiments/real_finetune.sh [EPOCHS] [LR]      (run from the repository root)
# env:   CODE (import path of the streamdet to run, default: this checkout), OUT_DIR, LOG_DIR, EVAL_DIR;
#        REAL (real train roots), VAL (val splits), VAL_LIMIT, MODALITIES ("events intensity") for other mixes,
#        e.g. the openly licensed one of docs/real-scenes.md:
#        REAL=data/real/aerial-maritime VAL="data/real/aerial-maritime/val data/rs/mixval-third/val" \
#            OUT_DIR=runs/open EVAL_DIR=out/open/val experiments/real_finetune.sh 3 1e-4
set -euo pipefail
EPOCHS=${1:-3}
LR=${2:-1e-4}
CODE=${CODE:-$PWD}
OUT_DIR=${OUT_DIR:-runs/real}
LOG_DIR=${LOG_DIR:-runs/real/logs}
EVAL_DIR=${EVAL_DIR:-out/real/val}
mkdir -p "$OUT_DIR" "$LOG_DIR" "$EVAL_DIR"

REAL=${REAL:-data/real/ngsim-us101 data/real/inland-vessel data/real/coco128 data/real/robotx-buoys}
VAL=${VAL:-data/real/robotx-buoys/val data/real/inland-vessel/val data/real/coco128/val data/real/ngsim-us101/val data/rs/mixval-third/val}
VAL_LIMIT=${VAL_LIMIT:-68}   # every image of each val split but NGSIM's (its first 68 of 149) and all 68 of the synthetic one
MODALITIES=${MODALITIES:-events intensity}
PY="env PYTHONPATH=$CODE nice -n 5 $PWD/.venv/bin/python -P"
EVAL_ARGS=""
for split in $VAL; do EVAL_ARGS="$EVAL_ARGS --data $split"; done

train() {  # modality, seed, extra flags...
    local modality=$1 seed=$2
    shift 2
    $PY -m streamdet train --modality "$modality" --data data/rs/mix $REAL --val $VAL --val-limit $VAL_LIMIT \
        --init "$modality-default" --box-loss giou --epochs "$EPOCHS" --batch-size 8 --finest-stride 4 \
        --lr "$LR" --seed "$seed" --threads 1 --out "$OUT_DIR/$modality.pt" "$@" \
        > "$LOG_DIR/r3-train-$modality.log" 2>&1
}

snapshot() {  # modality, epoch: the weights of that epoch from the resumable state, then their val scores
    local modality=$1 epoch=$2
    $PY -c "
import sys, torch
from streamdet.model import save_checkpoint
state = torch.load(sys.argv[1], map_location='cpu', weights_only=True)
save_checkpoint(sys.argv[2], state['checkpoint'])
" "$OUT_DIR/$modality.pt.last.pt" "$OUT_DIR/$modality.e$epoch.pt"
    env PYTHONPATH="$CODE" nice -n 10 .venv/bin/python -P -m streamdet eval --model "$OUT_DIR/$modality.e$epoch.pt" \
        $EVAL_ARGS --limit $VAL_LIMIT --json "$EVAL_DIR/$modality-e$epoch-val.json" \
        > "$LOG_DIR/r3-val-$modality-e$epoch.log" 2>&1
}

watch_epochs() {  # modality, pid: snapshot each epoch as its log line appears (written after the state file)
    local modality=$1 pid=$2 seen=0 done_epochs alive
    while true; do
        alive=yes
        kill -0 "$pid" 2>/dev/null || alive=no
        done_epochs=$(tr '\r' '\n' < "$LOG_DIR/r3-train-$modality.log" | grep -ac '^epoch=' || true)
        while [ "$seen" -lt "$done_epochs" ]; do
            seen=$((seen + 1))
            snapshot "$modality" "$seen" || echo "snapshot of $modality epoch $seen failed" >&2
        done
        [ "$alive" = yes ] || break
        sleep 20
    done
}

PIDS=""
for modality in $MODALITIES; do
    if [ "$modality" = events ]; then
        train events 61 --window-us 100000 --quant-levels 4 \
            --aug-noise 0.3 --aug-noise-power 2 --aug-thinning 0.5 --aug-hot-pixels 0.002 &
    else
        train intensity 62 --quant-levels 8 --aug-spike-noise 0.2 &
    fi
    PIDS="$PIDS $!"
    watch_epochs "$modality" $! &
done
trap 'kill $PIDS 2>/dev/null' INT TERM
wait
echo "ROUND3 DONE"
