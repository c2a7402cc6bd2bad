"""DenseNet-121 and GoogLeNet (torchvision, seeded random weights): the concat-heavy networks. Exports each to
ONNX with a dynamic batch and writes the batch-1 input and PyTorch's float32 output (`NAME.io_b1.npz`, members
input__x / output__y, what `kiln compare --reference` reads), then times PyTorch eager in float32 (TF32 off
and on) and float16 (channels-first and channels-last memory format) at each batch on the GPU: median
milliseconds, one JSON line per model, and the range of each model's batch-1 output.

    python3 bench/models/concat_nets.py OUT_DIR [--batches 1 32] [--iterations 50]
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torchvision


def build(name):
    torch.manual_seed(0)
    if name == "densenet121":
        return torchvision.models.densenet121(weights=None).eval()
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True).eval()
    # Its own initialisation (truncated normal, std 0.01) shrinks activations layer by layer until the logits
    # are all but zero, which makes a comparison of outputs meaningless; He initialisation keeps their scale.
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


def median_ms(model, x, iterations):
    with torch.no_grad():
        for _ in range(5):
            model(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            model(x)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--iterations", type=int, default=50)
    args = p.parse_args()
    for name in ["densenet121", "googlenet"]:
        model = build(name)
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        torch.onnx.export(model, x, f"{args.out}/{name}.onnx", dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        with torch.no_grad():
            y = model(x)
        np.savez(f"{args.out}/{name}.io_b1.npz", input__x=x.numpy(), output__y=y.numpy())
        gpu = model.cuda()
        result = {"model": name, "output_min": float(y.min()), "output_max": float(y.max())}
        for batch in args.batches:
            xb = torch.randn(batch, 3, 224, 224, device="cuda")
            torch.backends.cudnn.allow_tf32 = False
            result[f"eager_fp32_strict_b{batch}"] = median_ms(gpu, xb, args.iterations)
            torch.backends.cudnn.allow_tf32 = True
            result[f"eager_fp32_b{batch}"] = median_ms(gpu, xb, args.iterations)
            result[f"eager_fp16_b{batch}"] = median_ms(gpu.half(), xb.half(), args.iterations)
            nhwc = torch.channels_last
            result[f"eager_fp16_nhwc_b{batch}"] = median_ms(
                gpu.to(memory_format=nhwc), xb.half().to(memory_format=nhwc), args.iterations)
            gpu = gpu.float().to(memory_format=torch.contiguous_format)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    main()
