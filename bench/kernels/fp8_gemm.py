"""What an FP8 E4M3 product could reach on this GPU, beside float16, at transformer shapes: PyTorch's
float16 matmul against torch._scaled_mm (E4M3 operands, float32 scales per tensor and per row/column, 16-bit
output with the bias added), each timed alone as the median of CUDA-event timings over repeated launches. No
Kiln code runs here: it sizes the gap Kiln's FP8 products (quantize, float32 sums, finish) leave.

    python3 bench/kernels/fp8_gemm.py [--shapes MxNxK,...] [--repeats 50]
"""
import argparse
import statistics

import torch


def timed(fn, repeats):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="8192x2304x768,8192x768x768,8192x3072x768,8192x768x3072")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    print(f"{'M x N x K':>18} {'fp16 us':>9} {'fp8 tensor us':>14} {'fp8 rowwise us':>15} {'fp16/fp8':>9}")
    for shape in args.shapes.split(","):
        m, n, k = (int(v) for v in shape.split("x"))
        a = torch.randn(m, k, device="cuda", dtype=torch.float16)
        b = torch.randn(n, k, device="cuda", dtype=torch.float16)
        bias = torch.randn(n, device="cuda", dtype=torch.float16)
        a8 = (a / (a.abs().max() / 448)).to(torch.float8_e4m3fn)
        b8 = (b / (b.abs().max() / 448)).to(torch.float8_e4m3fn)
        one = torch.ones((), device="cuda")
        half = timed(lambda: torch.addmm(bias, a, b.t()), args.repeats)
        tensor = timed(lambda: torch._scaled_mm(a8, b8.t(), scale_a=one, scale_b=one, bias=bias,
                                                out_dtype=torch.float16), args.repeats)
        try:
            rows = torch.ones((m, 1), device="cuda")
            cols = torch.ones((1, n), device="cuda")
            rowwise = timed(lambda: torch._scaled_mm(a8, b8.t(), scale_a=rows, scale_b=cols,
                                                     out_dtype=torch.bfloat16), args.repeats)
            rowwise_text = f"{rowwise:15.1f}"
        except RuntimeError as error:
            rowwise_text = f"{'n/a':>15}"
            print("rowwise scaling:", str(error).splitlines()[0])
        print(f"{shape:>18} {half:9.1f} {tensor:14.1f} {rowwise_text} {half / tensor:9.2f}")


if __name__ == "__main__":
    main()
