#!/usr/bin/env bash
# The whole vidcap pipeline, one stage at a time, on a synthetic corpus:
#
#   synth → extract → encode → quantize → pretrain → finetune → evaluate → caption
#
# Usage: examples/pipeline.sh [WORK_DIR]        (default ./vidcap-run; VIDEOS=150 videos)
#
# Each stage reads the folder the one before wrote and writes its own under WORK_DIR (see
# docs/artifacts.md). A stage that already finished with the same settings does nothing, and
# training goes on from its last checkpoint (--resume auto), so running the script again after a
# stop continues where it stopped. `vidcap demo` runs the same
# pipeline in one command; this script shows the commands it stands for.
set -euo pipefail

work="${1:-./vidcap-run}"
videos="${VIDEOS:-150}"
corpus="$work/synth/corpus.jsonl"
mkdir -p "$work"

# 1. A synthetic corpus: corpus.jsonl and videos/*.mp4 (coloured shapes that move, grow, rotate…,
#    each event with paraphrased captions, split into train / val / test). Skipped when it is there:
#    a new corpus.jsonl would make every later stage start over.
if [[ ! -f "$corpus" ]]; then
  vidcap synth "$work/synth" --videos "$videos" --seed 0
fi

# 2. Frames at 20 fps, short side 96 pixels (the shapes need no more), cut into 1.5 s clips.
vidcap extract "$corpus" --out "$work/frames" --size 96

# 3. One feature vector per clip (the built-in `descriptor` encoder: no weights to download).
vidcap encode "$work/frames" --out "$work/features"

# 4. Visual words: a k-means tree with 8 clusters per node, 2 levels → 8 × 8 = 64 words.
vidcap quantize "$work/features" --out "$work/words" --k 8 --depth 2

# 5. BART pretraining on the corpus text and the visual words (denoising).
vidcap pretrain "$work/words" --out "$work/pretrain" --arch bart --preset base --max-steps 300 \
  --resume auto

# 6. The captioner: BART finetuned to caption segments, reading the clip features beside the words.
#    $work/model is the bundle that `vidcap caption` and `vidcap evaluate` use.
vidcap finetune "$work/pretrain" --out "$work/model" --with-features --max-steps 1000 \
  --resume auto

# 7. Metrics on the test split, against the nearest-neighbour floor and the reference ceiling
#    (METEOR needs Java; without it, it is skipped with a notice). The report is kept as JSON.
vidcap evaluate "$work/model" --json > "$work/evaluation.json"
python - "$work/evaluation.json" <<'EOF'
import json
import sys
from pathlib import Path

report = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
print(f"{report['split']} split: {report['segments']} segments of {report['videos']} videos")
for row, scores in report["scores"].items():
    if scores is not None:
        print(f"  {row:18}  BLEU-4 {scores['BLEU-4']:.3f}  CIDEr {scores['CIDEr']:.3f}")
for notice in report["notices"]:
    print(f"  note: {notice}")
EOF

# 8. Caption the test videos from their raw files. Their paths come from the corpus (relative to
#    its folder there, so read_corpus resolves them); `-` makes `vidcap caption` read them from
#    stdin. With jq instead:  (cd "$work/synth" && jq -r 'select(.split == "test") | .video' \
#    corpus.jsonl | sed "s|^|$PWD/|")
python -c 'import sys; from vidcap.corpus import read_corpus
print(*(r.video for r in read_corpus(sys.argv[1]) if r.split == "test"), sep="\n")' "$corpus" \
  | tee "$work/test-videos.txt" \
  | vidcap caption - --model "$work/model" --format jsonl > "$work/test-captions.jsonl"
echo "one caption per test video: $work/test-captions.jsonl"
if command -v jq > /dev/null; then
  jq -r 'select(.error | not) | [.video, .captions[0].text] | @tsv' "$work/test-captions.jsonl"
fi

# 9. Dense captions of one test video as subtitles, cut where the picture changes, with a
#    storyboard picture of the segments.
first="$(head -n 1 "$work/test-videos.txt")"
name="$(basename "${first%.*}")"
vidcap caption "$first" --model "$work/model" --format srt --out "$work/$name.srt" \
  --preview "$work/$name.png"
cat "$work/$name.srt"
