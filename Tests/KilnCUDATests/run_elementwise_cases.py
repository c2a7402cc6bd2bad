#!/usr/bin/env python3
"""Runs the elementwise cases ElementwiseGPUCases.writeCases dumped (KILN_ELEMENTWISE_CASES=DIR) on a GPU with
CuPy (NVRTC) + the driver's cuLaunchKernel, and compares each output with the CPU backend's bytes.
Usage: run_elementwise_cases.py DIR [--bench]"""
import ctypes, json, os, sys
import numpy as np
import cupy as cp

folder = sys.argv[1]
cases = json.load(open(os.path.join(folder, "manifest.json")))
cuda = ctypes.CDLL("libcuda.so.1")
NP = {"f32": np.float32, "f64": np.float64, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
      "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64, "bool": np.bool_}
modules = {}

def function(code, name):
    if code not in modules:
        modules[code] = cp.RawModule(code=code, options=("--std=c++17",))
    return modules[code].get_function(name)

def launch(step, operands):
    f = function(step["code"], step["launch"])
    keep = []
    for kind, *rest in step["args"]:
        if kind == "ptr":
            keep.append(ctypes.c_uint64(operands[rest[0]].data.ptr + rest[1]))
        elif kind == "i32": keep.append(ctypes.c_int32(rest[0]))
        elif kind == "i64": keep.append(ctypes.c_int64(rest[0]))
        elif kind == "f32": keep.append(ctypes.c_float(rest[0]))
        elif kind == "f64": keep.append(ctypes.c_double(rest[0]))
        elif kind == "dims":
            keep.append((ctypes.c_int64 * 8)(*(rest[0] + [0] * (8 - len(rest[0])))))
    params = (ctypes.c_void_p * len(keep))(*[ctypes.cast(ctypes.pointer(k), ctypes.c_void_p) for k in keep])
    rc = cuda.cuLaunchKernel(ctypes.c_void_p(f.ptr), step["grid"], 1, 1, step["block"], 1, 1, 0,
                             ctypes.c_void_p(cp.cuda.get_current_stream().ptr), params, None)
    assert rc == 0, f"cuLaunchKernel {rc}"

bad = 0
for case in [c for c in cases if not c["name"].startswith("bench")]:
    ops = {}
    for i, name in enumerate(case["inputs"]):
        if name:
            ops[f"input({i})"] = cp.asarray(np.fromfile(os.path.join(folder, name), dtype=np.uint8))
    expected = np.fromfile(os.path.join(folder, case["output"]), dtype=NP[case["dtype"]])
    if case["aliases"]:
        got = cp.asnumpy(ops["input(0)"]).view(NP[case["dtype"]])
    else:
        out = cp.full(case["bytes"] + 256, 0xA5, dtype=cp.uint8)
        ops["output(0)"] = out
        for step in case["steps"]:
            if "copy" in step:
                out[:step["bytes"]] = ops[step["copy"]][:step["bytes"]]
            else:
                launch(step, ops)
        cp.cuda.runtime.deviceSynchronize()
        host = cp.asnumpy(out)
        if (host[case["bytes"]:] != 0xA5).any():
            print("WROTE PAST THE END:", case["name"]); bad += 1
        got = host[:case["bytes"]].view(NP[case["dtype"]])
    if expected.dtype.kind == "f":
        ok = np.allclose(got, expected, rtol=2e-6 if expected.dtype == np.float32 else 1e-12, atol=1e-6,
                         equal_nan=True) and (np.isinf(got) == np.isinf(expected)).all()
    else:
        ok = (got == expected).all()
    if not ok:
        bad += 1
        diff = np.nonzero(~np.isclose(got, expected, equal_nan=True) if expected.dtype.kind == "f"
                          else got != expected)[0][:5]
        print("MISMATCH", case["name"], [(int(i), got[i].item(), expected[i].item()) for i in diff])
checked = len([c for c in cases if not c["name"].startswith("bench")])
print(f"{checked - bad}/{checked} cases match")

if "--bench" in sys.argv:
    # Bandwidth of the three paths on large fp32 tensors, against PyTorch eager.
    import torch
    def bench(fn, reps=50):
        for _ in range(3): fn()
        s, e = cp.cuda.Event(), cp.cuda.Event(); s.record()
        for _ in range(reps): fn()
        e.record(); e.synchronize(); return cp.cuda.get_elapsed_time(s, e) / reps
    for case in cases:
        if case["name"].startswith("bench"):
            ops = {f"input({i})": cp.random.rand(n // 4, dtype=cp.float32).view(cp.uint8)
                   for i, n in enumerate(case["inputBytes"])}
            ops["output(0)"] = cp.empty(case["bytes"], dtype=cp.uint8)
            moved = sum(o.nbytes for o in ops.values())
            ms = bench(lambda: launch(case["steps"][0], ops))
            print(f"{case['name']}: {ms * 1e3:.1f} us, {moved / ms / 1e6:.0f} GB/s")
    n, c = 16384, 4096
    a, b, r = torch.randn(n, c, device="cuda"), torch.randn(n, c, device="cuda"), torch.randn(c, device="cuda")
    ms = bench(lambda: a + b); print(f"torch same-shape add: {ms * 1e3:.1f} us, {3 * a.nbytes / ms / 1e6:.0f} GB/s")
    ms = bench(lambda: a + r); print(f"torch row add: {ms * 1e3:.1f} us, {2 * a.nbytes / ms / 1e6:.0f} GB/s")
sys.exit(1 if bad else 0)
