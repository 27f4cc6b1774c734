#!/usr/bin/env bash
# Dense captioning of untrimmed videos, the whole route: synthetic untrimmed corpus -> frames ->
# features -> visual words -> a BART pretrain -> a dense model (time tokens + captions, Vid2Seq's
# recipe) and a segment captioner from the same pretrain -> events of a test video (ActivityNet
# JSON), its key moments and story -> the dense scores beside the captioner's rows.
#
#   examples/dense.sh runs/dense        # the sizes below: see docs/dense.md for time and scores
#
# Every size can be set from the environment (tests/test_example_dense.py runs it tiny):
# VIDEOS, MIN_S/MAX_S (video length), SIZE (frame side), K/DEPTH (visual words), PRESET,
# PRETRAIN_STEPS, DENSE_STEPS, CAPTION_STEPS. See docs/dense.md.
set -euo pipefail

run=${1:-runs/dense}
videos=${VIDEOS:-40}
preset=${PRESET:-base}

vidcap synth "$run/synth" --videos "$videos" --untrimmed \
    --untrimmed-duration "${MIN_S:-30}" "${MAX_S:-60}" --force
vidcap extract "$run/synth/corpus.jsonl" --out "$run/frames" --size "${SIZE:-64}" --workers 2
vidcap encode "$run/frames" --out "$run/features"
vidcap quantize "$run/features" --out "$run/words" --k "${K:-8}" --depth "${DEPTH:-2}"
vidcap pretrain "$run/words" --out "$run/pretrain" --arch bart --preset "$preset" \
    --max-steps "${PRETRAIN_STEPS:-200}"
# The dense model reads the whole video (its clips' words and features, at most 100 clips) and
# writes "<t_start> <t_end> caption ..." for each event.
vidcap finetune "$run/pretrain" --out "$run/dense" --task dense --with-features \
    --max-steps "${DENSE_STEPS:-500}"
# A segment captioner from the same pretrain: the comparison rows (fixed windows, change-point
# cuts, and the oracle: the true events captioned by it).
vidcap finetune "$run/pretrain" --out "$run/captions" --with-features \
    --max-steps "${CAPTION_STEPS:-300}"

video=$(python -c "
import json
for line in open('$run/synth/corpus.jsonl'):
    r = json.loads(line)
    if r['split'] == 'test':
        print('$run/synth/' + r['video']); break
")
vidcap caption "$video" --model "$run/dense" --format anet -o "$run/events.json"
vidcap summarize "$video" --model "$run/dense"
# Scores (ActivityNet protocol over tIoU 0.3-0.9, SODA_c, story) of the dense model, beside the
# captioner's rows, the whole-video floor and the reference ceiling; also written to its model card.
vidcap evaluate "$run/dense" --task dense --captioner "$run/captions"
