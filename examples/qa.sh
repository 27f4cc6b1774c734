#!/usr/bin/env bash
# Video question answering on the synthetic corpus, the route that measured best (docs/results.md):
# a corpus large enough, clips described with both objects, a captioner first, then QA from it.
#
#   examples/qa.sh runs/qa [VIDEOS]     # about 25 minutes on 2 CPU cores with 1200 videos
#
# See docs/tasks.md.
set -euo pipefail

run=${1:-runs/qa}
videos=${2:-1200}

vidcap synth "$run/synth" --videos "$videos"
vidcap extract "$run/synth/corpus.jsonl" --out "$run/frames" --size 96 --workers 2
# Questions name either object ("what colour is the hexagon?" when only the other one moves):
# the descriptor's objects=2 block adds the hue and shape of the object that is not acting.
vidcap encode "$run/frames" --out "$run/features" --encoder descriptor:objects=2
vidcap quantize "$run/features" --out "$run/words" --k 8 --depth 2
vidcap pretrain "$run/words" --out "$run/pretrain" --arch bart --max-steps 300
# Captions name each segment's action five times over: a captioner learns what actions look
# like from them, and QA training goes on from it.
vidcap finetune "$run/pretrain" --out "$run/captions" --with-features --max-steps 2000
vidcap finetune "$run/captions" --out "$run/qa" --task qa --with-features --max-steps 5000

video=$(python -c "
import json
for line in open('$run/synth/corpus.jsonl'):
    r = json.loads(line)
    if r['split'] == 'test':
        print('$run/synth/' + r['video']); break
")
vidcap answer "$video" --model "$run/qa" -q "how many objects are there?" -q "what colour is the circle?"
vidcap evaluate "$run/qa"                      # exact match per question type vs a no-video floor
