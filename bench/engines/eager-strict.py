"""PyTorch eager in float32 twice in one process: with PyTorch's default TF32 settings (convolutions on
TF32 tensor cores, products strict), as baselines.py's eager_fp32 row, and with TF32 off everywhere, the
arithmetic Kiln's default float32 engines use. Same models, inputs and timing as baselines.py (imported).

Use: python3 eager-strict.py BASELINES_PY OUT_JSON MODEL[,MODEL...] BATCH [BATCH...]
Writes {"results": [{model, batch, mode, median_ms, throughput, ...}]} for `baselines.py --compare`.
"""
import importlib.util
import json
import sys

import torch

spec = importlib.util.spec_from_file_location("baselines", sys.argv[1])
baselines = importlib.util.module_from_spec(spec)
spec.loader.exec_module(baselines)
out_path, models, batches = sys.argv[2], sys.argv[3].split(","), [int(b) for b in sys.argv[4:]]
args = baselines.parse_args(["--models", ",".join(models)])
torch.backends.cudnn.benchmark = True  # as baselines.py does unless told otherwise

rows = []
for name in models:
    model, _ = baselines.build_model(name, args.seq_len)
    model = model.cuda()
    for batch in batches:
        sets = baselines.to_dev(baselines.make_inputs(name, batch, args.seq_len), "cuda")

        def call(k):
            with torch.inference_mode():
                model(*sets[k])

        for mode, tf32 in [("eager_fp32", None), ("eager_fp32_strict", False)]:
            saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            if tf32 is not None:
                torch.backends.cuda.matmul.allow_tf32 = tf32
                torch.backends.cudnn.allow_tf32 = tf32
            try:
                stats = baselines.time_cuda(call, args)
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
            row = {"model": name, "batch": batch, "mode": mode, **stats,
                   "throughput": batch / stats["median_ms"] * 1e3,
                   "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if tf32 is None else tf32}
            rows.append(row)
            print(f"{name} b{batch} {mode}: median {stats['median_ms']:.3f} ms", flush=True)
json.dump({"results": rows}, open(out_path, "w"), indent=1)
