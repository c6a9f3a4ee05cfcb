#!/usr/bin/env bash
# Regenerates the reports in docs/ and the numbers of the shipped model's card.
# Needs Debian's opencv-doc (apt-get install opencv-doc) for the independent evaluation clip.
set -euo pipefail
cd "$(dirname "$0")/.."
VSR=${VSR:-.venv/bin/vsrdeploy}
DATA=/usr/share/doc/opencv-doc/examples/data
MODEL=vsrdeploy/weights/basicvsr_c16n4_opencv.pth
HELDOUT=vsrdeploy/data/vtest_heldout_320x240.avi

# Every shipped precision in one table (issue 17): the FP32 bundle, its FP16 bundle and both INT8 forms
# (ONNX Runtime CPU's U8/S8 and TensorRT's symmetric S8/S8, calibrated on 8 training frames of vtest.avi),
# on runtimes x real video (held-out vtest.avi frames, BI x4), with the lookahead sweep
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
$VSR export $MODEL --dcn decomposed -o $WORK/basicvsr.vsr
$VSR convert $WORK/basicvsr.vsr -o $WORK/basicvsr-fp16.vsr
$VSR calibrate $WORK/basicvsr.vsr -i $DATA/vtest.avi --max-frames 8 --degrade bi --target cpu \
    -o $WORK/basicvsr-int8-cpu.vsr
$VSR calibrate $WORK/basicvsr.vsr -i $DATA/vtest.avi --max-frames 8 --degrade bi --target tensorrt \
    -o $WORK/basicvsr-int8-trt.vsr
$VSR compare $WORK/basicvsr.vsr $WORK/basicvsr-fp16.vsr $WORK/basicvsr-int8-cpu.vsr $WORK/basicvsr-int8-trt.vsr \
    -i $HELDOUT --degrade bi --backends torch,ort-cpu,openvino-cpu --precisions fp32,bf16 \
    --window 10 --lookahead 5 --sweep-lookahead 0,2,5,10 --report docs/compare_vtest_heldout

# Model card: whole-clip quality vs bicubic on held-out vtest frames and on an independent clip (accuracy only: one timed run)
$VSR compare $MODEL -i $HELDOUT --degrade bi --backends torch --window 0 --warmup 0 --repeat 1 --report docs/model_card_eval/vtest_heldout
$VSR compare $MODEL -i $DATA/Megamind.avi --skip 100 --frames 30 --degrade bi --backends torch --window 0 --warmup 0 --repeat 1 \
    --report docs/model_card_eval/megamind

# The second shipped model (BasicVSR++), same evaluation
MODEL_PP=vsrdeploy/weights/basicvsrpp_c16n2_opencv.pth
$VSR compare $MODEL_PP -i $HELDOUT --degrade bi --backends torch --window 0 --warmup 0 --repeat 1 --report docs/model_card_eval/basicvsrpp_vtest_heldout
$VSR compare $MODEL_PP -i $DATA/Megamind.avi --skip 100 --frames 30 --degrade bi --backends torch --window 0 --warmup 0 --repeat 1 \
    --report docs/model_card_eval/basicvsrpp_megamind

# Reduced precision on the shipped models (benchmarks/RESULTS.md, "Reduced precision"): FP16/BF16 emulated,
# INT8 calibrated on 8 training frames of vtest.avi (frames 0-7), measured on the held-out clip
PY=${PY:-.venv/bin/python}
mkdir -p docs/precision
for M in $MODEL $MODEL_PP; do
  NAME=$(basename $M .pth)
  $PY benchmarks/precision_accuracy.py --threads 1 --model $M --clip $HELDOUT --calib $DATA/vtest.avi --calib-frames 8 \
      --fp16 "" --fp16 "sampling-grid" --fp16 "sampling-grid,op=DeformConv" --bf16 "" --bf16 "sampling-grid" \
      --int8 cpu:minmax --int8 cpu:minmax:none --int8 tensorrt:minmax --int8 tensorrt:minmax:none \
      --int8 tensorrt:percentile --int8 tensorrt:entropy --int8 tensorrt:minmax:sampling-grid,concat-input --json docs/precision/$NAME.json > docs/precision/$NAME.md
done

# INT8 speed at full frame size, 2 threads, nothing else running (RESULTS.md "INT8 speed")
for B in ort-cpu openvino-cpu; do
  $PY benchmarks/precision_accuracy.py --threads 2 --backend $B --dcn decomposed --model $MODEL_PP \
      --clip $DATA/vtest.avi --skip 740 --frames 8 --calib $DATA/vtest.avi --calib-frames 8 \
      --int8 cpu:minmax --int8 tensorrt:minmax > docs/precision/speed_basicvsrpp_$B.md
done
