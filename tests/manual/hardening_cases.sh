#!/usr/bin/env bash
# Issue 12 cases, run by hand against a set of memsr-* executables: prints one row per case
# (exit code, last stderr line, what happened to the files). Usage: hardening_cases.sh BINDIR WORKDIR
# Not part of pytest: the tests under tests/ assert the same behaviour; this reproduces the before/after table.
set -u
BIN=$1; W=$2; PY=$BIN/python
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
$PY - <<'PYEOF'
import numpy as np, torch
from PIL import Image
from memsr_deploy.method import models
from memsr_deploy.formats.model_file import save_model
torch.manual_seed(0)
save_model(models.PlainSR(models.PlainConfig(scale=2, widths=[8, 8], acts=["relu", "none"])), "tiny", kind="student")
save_model(models.ResidualSR(models.TeacherConfig(scale=2, width=8, blocks=1, anchor=True)), "teacher")
rng = np.random.default_rng(0)
def img(path, h, w):
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
import os
for d in ("u1", "u2", "u3", "u4", "u5", "u7", "photos", "tinyphotos"):
    os.makedirs(d, exist_ok=True)
img("u1/a.png", 16, 16); img("u1/a_x2.png", 16, 16)
img("u2/a.png", 16, 16); img("u2/a_x2.png", 16, 16)
img("u3/b.png", 16, 16); img("u3/b_x2.png", 16, 16)
img("u4/a.png", 16, 16); img("u4/a.jpg", 16, 16)
img("u5/a.png", 16, 16)
img("u7/a.png", 16, 16); img("u7/.a.tmpabc.png", 16, 16)
img("one.png", 1, 1); img("two.png", 2, 3)
for i in range(2): img(f"photos/p{i}.png", 64, 64)
img("tinyphotos/t1.png", 1, 1); img("tinyphotos/t2.png", 2, 3)
img("big.png", 2500, 2500)
open("afile", "w").write("x")
PYEOF
sha() { sha256sum "$@" 2>/dev/null | cut -c1-8 | tr '\n' ' '; }
row() { # name, then the command
  local name=$1; shift
  "$@" >out.txt 2>err.txt; local rc=$?
  # what a terminal shows: the text after the last carriage return of each line (progress bars redraw)
  awk -F'\r' '{print $NF}' err.txt | grep -v '^\s*$' > shown.txt
  local last; last=$(tail -1 shown.txt | cut -c1-160)
  local n; n=$(grep -c . shown.txt)
  printf '%s | rc=%s | stderr %s lines | %s\n' "$name" "$rc" "$n" "$last"
}
U="$BIN/memsr-upscale --model tiny -q"
s0=$(sha u1/a_x2.png); row "1 upscale a.png a_x2.png" $U u1/a.png u1/a_x2.png; echo "   a_x2.png before $s0 after $(sha u1/a_x2.png); files: $(ls -a u1 | tr '\n' ' ')"
s0=$(sha u2/a_x2.png); row "1 upscale folder {a, a_x2}" $U u2; echo "   a_x2.png before $s0 after $(sha u2/a_x2.png); files: $(ls -a u2 | tr '\n' ' ')"
s0=$(sha u3/b_x2.png); row "1 upscale b.png, b_x2.png exists (not an input)" $U u3/b.png; echo "   b_x2.png before $s0 after $(sha u3/b_x2.png)"
row "2 upscale a.png a.jpg --ext png -o out/" $U u4/a.png u4/a.jpg --ext png -o u4/out/; echo "   out: $(ls -a u4/out 2>/dev/null | tr '\n' ' ')"
s0=$(sha u5/a.png); row "3 upscale a.png -o a.png" $U u5/a.png -o u5/a.png; echo "   a.png before $s0 after $(sha u5/a.png)"
cp teacher.json t2.json; cp teacher.safetensors t2.safetensors; s0=$(sha t2.json t2.safetensors)
row "3 convert t2 -o t2" $BIN/memsr-convert t2 -o t2; echo "   t2 before $s0 after $(sha t2.json t2.safetensors)"
row "4 folder with .a.tmpabc.png" $U u7 -o u7out/; echo "   outputs: $(ls -a u7out 2>/dev/null | tr '\n' ' ')"
waittmp() { # until a hidden temp name shows up in folder $1 (or process $2 ends)
  for _ in $(seq 600); do ls -A "$1" 2>/dev/null | grep -q '^\.' && return; kill -0 "$2" 2>/dev/null || return; sleep 0.05; done; }
# SIGTERM during a long run writing a streamed TIFF
$U big.png -o sig/big.tif >/dev/null 2>sigerr.txt & pid=$!; waittmp sig $pid; kill -TERM $pid; wait $pid; rc=$?
echo "4 SIGTERM during upscale -> .tif | rc=$rc | $(tail -1 sigerr.txt | cut -c1-120) | left in sig/: $(ls -A sig 2>/dev/null | tr '\n' ' ')"
$U big.png -o sig2/big.tif >/dev/null 2>sigerr.txt & pid=$!; waittmp sig2 $pid; kill -INT $pid; wait $pid; rc=$?
echo "4 SIGINT during upscale -> .tif | rc=$rc | $(tail -1 sigerr.txt | cut -c1-120) | left in sig2/: $(ls -A sig2 2>/dev/null | tr '\n' ' ')"
$BIN/memsr-export tiny --target onnx -o exp_killed >/dev/null 2>sigerr.txt & pid=$!; waittmp exp_killed $pid; kill -TERM $pid; wait $pid; rc=$?
echo "4 SIGTERM during export | rc=$rc | $(tail -1 sigerr.txt | cut -c1-120) | left in exp_killed/: $(ls -A exp_killed 2>/dev/null | tr '\n' ' ')"
# model JSON validation
mk() { cp tiny.safetensors $1.safetensors; $PY -c "
import json,sys; d=json.load(open('tiny.json')); exec(sys.argv[1]); d['weights']='$1.safetensors'; json.dump(d,open('$1.json','w'))" "$2"; }
mk m_radius "d['receptive_radius']=1"; row "6 model radius 1 (arch: 3)" $U u5/a.png -o m1.png --model m_radius
mk m_range "d['input']['value_range']=0; d['arch']['input']['value_range']=0"; row "6 model value_range 0" $U u5/a.png -o m2.png --model m_range
mk m_nosum "del d['weights_sha256']"; row "6 model without weights_sha256" $U u5/a.png -o m3.png --model m_nosum
$PY -c "
import torch; from safetensors.torch import load_file, save_file
s=load_file('tiny.safetensors'); s['layers.0.weight'][0,0,0,0]=float('nan'); save_file(s,'m_nan.safetensors')"
$PY -c "
import json,hashlib; d=json.load(open('tiny.json')); d['weights']='m_nan.safetensors'; d['weights_sha256']=hashlib.sha256(open('m_nan.safetensors','rb').read()).hexdigest(); json.dump(d,open('m_nan.json','w'))"
row "6 model NaN weight (checksum matches)" $U u5/a.png -o m4.png --model m_nan
mk m_width "d['layer_widths'][0]=9"; row "6 model layer_widths wrong" $U u5/a.png -o m5.png --model m_width
# sidecars
$BIN/memsr-export tiny --target onnx --no-verify -o exp >/dev/null 2>&1
$BIN/memsr-export tiny --target tflite --no-verify -o expt >/dev/null 2>&1
A="$BIN/memsr-upscale -q"
sc=$(ls exp/*.json | head -1); art=$(ls expt/*.tflite | head -1)
$PY -c "import json; d=json.load(open('$sc')); d['scale']='abc'; json.dump(d,open('exp/s_abc.json','w'))"
row "7 sidecar scale abc" $A u5/a.png -o s1.png --artefact exp/s_abc.json
$PY -c "import json; d=json.load(open('$sc')); del d['halo']; json.dump(d,open('exp/s_nohalo.json','w'))"
row "7 sidecar missing halo" $A u5/a.png -o s2.png --artefact exp/s_nohalo.json
$PY -c "import json; d=json.load(open('$sc')); d['file_sha256']='0'*64; json.dump(d,open('exp/s_sum.json','w'))"
row "7 sidecar checksum mismatch" $A u5/a.png -o s3.png --artefact exp/s_sum.json
$PY -c "import json; d=json.load(open('$sc')); del d['file_sha256']; json.dump(d,open('exp/s_nosum.json','w'))"
row "7 sidecar without file_sha256" $A u5/a.png -o s4.png --artefact exp/s_nosum.json
# 9 output under a regular file
row "9 export -o afile/sub" $BIN/memsr-export tiny --target onnx --no-verify -o afile/sub
row "9 convert -o afile/x" $BIN/memsr-convert teacher -o afile/x
row "9 profile --plot afile/x.png" $BIN/memsr-profile tiny --resolution 1MP --mode whole --plot afile/x.png
row "9 bench --out afile/x" $BIN/memsr-bench-device $art --host --threads 1 --num-runs 1 --warmup-runs 0 --out afile/x
T="$BIN/memsr-train teacher --preset tiny --data photos --no-val --patch 8 --batch 1 --threads 1"
row "9 train --out afile" $T --steps 1 --out afile
row "9 train --out afile/run" $T --steps 1 --out afile/run
# 10 resume
$T --steps 2 --ckpt-every 1 --out run10 >/dev/null 2>&1
row "10 resume with --width 4 (arch differs)" $T --steps 3 --width 4 --out run10
row "10 resume with --scale 3" $T --steps 3 --scale 3 --out run10
row "10 resume with --lr 1e-3" $T --steps 3 --lr 1e-3 --out run10
echo "   provenance lr/resumed: $($PY -c "import json; p=json.load(open('run10/model.json'))['provenance']; print(p.get('lr'), p.get('resumed_with_changes', p.get('resume')))" 2>&1 | tail -1)"
# 11 numeric flags
row "11 train --ckpt-every 0" $T --steps 1 --ckpt-every 0 --out r11a
row "11 train --batch 0" $T --steps 1 --batch 0 --out r11b
row "11 train --steps 0" $T --steps 0 --out r11c
row "11 upscale --max-pixels nan" $U u5/a.png -o f1.png --max-pixels nan
row "11 upscale --tile -5" $U u5/a.png -o f2.png --tile -5
row "11 upscale --max-memory 0" $U u5/a.png -o f3.png --max-memory 0
row "11 eval --max-size 0" $BIN/memsr-eval tiny --data photos --max-size 0
row "11 profile --tile 0" $BIN/memsr-profile tiny --tile 0 --resolution 1MP
row "11 bench --run-timeout nan" $BIN/memsr-bench-device $art --host --run-timeout nan --out b11
row "11 export --max-photos 0" $BIN/memsr-export tiny --target onnx --max-photos 0 -o e11
# 12 tiny images
row "12 upscale 1x1" $U one.png -o o1.png; echo "   $($PY -c "from PIL import Image; print(Image.open('o1.png').size)" 2>&1|tail -1)"
row "12 upscale 2x3" $U two.png -o o2.png; echo "   $($PY -c "from PIL import Image; print(Image.open('o2.png').size)" 2>&1|tail -1)"
row "12 train on 1x1/2x3 photos" $T --steps 1 --data tinyphotos --out r12
row "12 eval on 1x1/2x3 photos" $BIN/memsr-eval tiny --data tinyphotos
