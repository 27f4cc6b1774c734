#!/usr/bin/env bash
# Dense captioning of untrimmed videos, the whole route: synthetic untrimmed corpus -> features
# (0.5 s clips, straight from the videos) -> visual words -> a BART pretrain -> a dense model (an
# event localiser, and a seq2seq trained on Vid2Seq's time-token sequences and on every event's
# own clips) and a segment captioner from the same pretrain -> events of a test video
# (ActivityNet JSON), its key moments and story -> the dense scores beside the captioner's rows.
#
#   examples/dense.sh runs/dense        # the sizes below: see docs/dense.md for time and scores
#
# Every size can be set from the environment (tests/test_example_dense.py runs it tiny):
# VIDEOS, MIN_S/MAX_S (video length), SIZE (frame side), K/DEPTH (visual words), PRESET,
# CLIP_FRAMES (frames per clip at 20 fps: 10 = 0.5 s, which places events to half a second),
# PRETRAIN_STEPS, DENSE_STEPS, CAPTION_STEPS. See docs/dense.md.
set -euo pipefail

run=${1:-runs/dense}
videos=${VIDEOS:-40}
preset=${PRESET:-base}

vidcap synth "$run/synth" --videos "$videos" --untrimmed \
    --untrimmed-duration "${MIN_S:-30}" "${MAX_S:-60}" --force
vidcap encode "$run/synth/corpus.jsonl" --out "$run/features" --size "${SIZE:-64}" \
    --clip-frames "${CLIP_FRAMES:-10}" --workers 2
vidcap quantize "$run/features" --out "$run/words" --k "${K:-8}" --depth "${DEPTH:-2}"
vidcap pretrain "$run/words" --out "$run/pretrain" --arch bart --preset "$preset" \
    --max-steps "${PRETRAIN_STEPS:-200}"
# The dense model: a localiser over the clip features places the events; the seq2seq captions
# each from its clips (it also learns "<t_start> <t_end> caption ..." for the whole video).
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
