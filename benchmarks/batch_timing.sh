#!/bin/bash
# `rtalign batch --workers 2` against the same clips run one by one, and against `--workers 1`
# (issue 15's batch figure). 8 generated 720p clips (rtalign.synth.demo_clip, 90 frames each),
# landmarks CSV only; the three ways alternate, ROUNDS times; finally the CSVs are compared byte for byte.
#     bash benchmarks/batch_timing.sh [ROUNDS]
set -euo pipefail
ROUNDS=${1:-3}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/in"
python -c "
from rtalign.synth import demo_clip
for i in range(8):
    demo_clip('$D/in/clip%d.mp4' % i, n_frames=90, seed=i)
"
now() { date +%s.%N; }
for r in $(seq "$ROUNDS"); do
  rm -rf "$D/seq" "$D/w1" "$D/w2"; mkdir -p "$D/seq"
  t0=$(now)
  for f in "$D"/in/*.mp4; do rtalign video "$f" --landmarks "$D/seq/$(basename "$f").csv" >/dev/null 2>&1; done
  t1=$(now)
  rtalign batch "$D/in" "$D/w1" --landmarks csv --only-landmarks --workers 1 >/dev/null 2>&1
  t2=$(now)
  rtalign batch "$D/in" "$D/w2" --landmarks csv --only-landmarks --workers 2 >/dev/null 2>&1
  t3=$(now)
  python -c "
a, b, c = $t1 - $t0, $t2 - $t1, $t3 - $t2
print(f'round $r: one by one {a:.2f} s, --workers 1 {b:.2f} s, --workers 2 {c:.2f} s; '
      f'workers 2 / one by one {c / a:.3f}, workers 2 / workers 1 {c / b:.3f}')"
done
for f in "$D"/in/*.mp4; do
  n=$(basename "$f").csv
  cmp "$D/seq/$n" "$D/w1/$n" && cmp "$D/seq/$n" "$D/w2/$n"
done
echo "CSV bytes identical: one by one, --workers 1, --workers 2"
