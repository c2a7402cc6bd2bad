# Times Kiln's tensor-core attention kernel on its own, on the GPU machine (Python with torch, NVRTC from the
# pip CUDA packages, no Swift): the CUDA source is read from the Swift files, so the kernel timed is the one
# in the tree (edit the Swift template to try a variant). Each shape is checked against float32 attention
# computed by torch, then timed as 20 launches in a CUDA graph, beside torch's scaled_dot_product_attention.
# Use: python3 bench/kernels/attention.py [--head 64] [--shapes 64x128m,64x197,1x128m] [--variants 4.32.4.4,4.32.4.2]
#   [--source FILE]
#   (BxS, m: a [B, 1, 1, S] padding mask; M: a full [B, 1, S, S] mask; variant warps.keys.blocks: warps per
#   block, 16 queries each, keys per tile, blocks per multiprocessor the registers are budgeted for, tiles in
#   flight; a variant without the last number gets 2)
import argparse, ctypes, glob, os, re, statistics, sys, textwrap
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')


def swift_string(path, name):
    """The text of the multi-line Swift string literal `name = \"\"\"...\"\"\"` in `path`, unescaped."""
    text = open(os.path.join(ROOT, path)).read()
    body = re.search(name + r' = """\n(.*?)\n\s*"""', text, re.S).group(1)
    return textwrap.dedent(body).replace('\\\\', '\\')


def kernel_source(head, variants, path):
    """The kernel template of the Swift file `path` with one float16 entry point per variant (warps, keys per tile,
    blocks per multiprocessor, stages), named kiln_attention_tc_f16_d{head}_w{warps}_k{keys}_b{blocks}_s{stages}."""
    prelude = swift_string('Sources/KilnCUDA/Lowering/CUDAPrelude.swift', 'text')
    code = swift_string(path, 'code')
    code = code.replace('KILN_T', 'kiln_half').replace('KILN_PTX', 'f16') + '\n'
    for warps, keys, blocks, stages in variants:
        code += (f'extern "C" __global__ void __launch_bounds__({32 * warps}, {blocks}) '
                 f'kiln_attention_tc_f16_d{head}_w{warps}_k{keys}_b{blocks}_s{stages}('
                 'const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, '
                 'const T* __restrict__ mask, T* __restrict__ out, KilnDims size, KilnDims qv, KilnDims kv, '
                 'KilnDims vv, KilnDims ov, KilnDims mv, float scale, int hasMask, int zeroMasked, int vector, '
                 'int causal, int group) {\n'
                 f'    kiln_attention_tc<{head}, {warps}, {keys}, {stages}>(q, k, v, mask, out, size, qv, kv, vv, ov, mv, scale, '
                 'hasMask, zeroMasked, causal, group);\n}\n')
    return prelude + code


def shared_bytes(head, keys, stages, mask_rows):
    """The Swift `CUDAAttentionTensorCore.sharedBytes`, written again here."""
    return 2 * stages * (2 * keys * (head + 8) + mask_rows * keys)


def nvrtc():
    paths = [os.environ.get('KILN_CUDA_LIBS', '')] + sys.path + ['/usr/local/cuda/lib64']
    found = [p for base in paths if base for p in glob.glob(os.path.join(base, '**', 'libnvrtc.so*'), recursive=True)
             if 'builtins' not in p and 'stub' not in p]
    if not found:
        raise SystemExit('NVRTC not found (set KILN_CUDA_LIBS)')
    return ctypes.CDLL(sorted(found)[-1])


def compile_cubin(source, arch):
    lib = nvrtc()
    prog = ctypes.c_void_p()
    lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b'attention.cu', 0, None, None)
    options = [f'--gpu-architecture=sm_{arch}'.encode(), b'-std=c++17', b'--ptxas-options=-v']
    rc = lib.nvrtcCompileProgram(prog, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if rc != 0:
        raise SystemExit(log.value.decode())
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetCUBIN(prog, cubin)
    return cubin.raw, log.value.decode()


Dims = ctypes.c_int64 * 8


def dims(*values):
    return Dims(*(list(values) + [0] * (8 - len(values))))


def graph_time(run, launches=20, rounds=7):
    """Median microseconds per call of `run`, replayed as `launches` calls in one CUDA graph."""
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(launches):
            run()
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / launches * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--head', type=int, default=64)
    parser.add_argument('--heads', type=int, default=12)
    parser.add_argument('--shapes', default='64x128m,64x128M,64x128,64x197,1x128m')
    parser.add_argument('--variants', default='4.32.4.4,4.32.4.2,4.32.4.3',
                        help='warps.keys.blocks[.stages]: warps per block, keys per tile, blocks per multiprocessor, '
                             'tiles in flight (default 2)')
    parser.add_argument('--source', default='Sources/KilnCUDA/Kernels/CUDAAttentionTensorCore.swift',
                        help="the Swift file holding the kernel (another commit's copy, for an A/B)")
    args = parser.parse_args()
    variants = [tuple(int(v) for v in (text + '.2').split('.')[:4]) for text in args.variants.split(',')]
    torch.zeros(1, device='cuda')
    cuda = ctypes.CDLL('libcuda.so.1')
    major, minor = torch.cuda.get_device_capability()
    cubin, log = compile_cubin(kernel_source(args.head, variants, args.source), major * 10 + minor)
    module = ctypes.c_void_p()
    assert cuda.cuModuleLoadData(ctypes.byref(module), cubin) == 0
    functions = {}
    for warps, keys, blocks, stages in variants:
        name = f'kiln_attention_tc_f16_d{args.head}_w{warps}_k{keys}_b{blocks}_s{stages}'
        usage = re.search(rf"Compiling entry function '{name}'.*?(Used [^\n]*)", log, re.S)
        print(f'{torch.cuda.get_device_name()}: {name}, {usage.group(1) if usage else "?"}')
        function = ctypes.c_void_p()
        assert cuda.cuModuleGetFunction(ctypes.byref(function), module, name.encode()) == 0
        assert cuda.cuFuncSetAttribute(function, 8, shared_bytes(args.head, keys, stages, 16 * warps)) == 0
        functions[(warps, keys, blocks, stages)] = function

    H, D = args.heads, args.head
    E = H * D
    for shape in args.shapes.split(','):
        B, S = (int(v) for v in shape.rstrip('mM').split('x'))
        mask_kind = shape[-1] if shape[-1] in 'mM' else ''
        torch.manual_seed(0)
        qkv = torch.randn(B * S, 3 * E, device='cuda', dtype=torch.float16)
        out = torch.zeros(B * S, E, device='cuda', dtype=torch.float16)
        if mask_kind == 'M':
            mask = torch.where(torch.rand(B, 1, S, S, device='cuda') < 0.3, -10000.0, 0.0).half()
            strides = (S * S, 0, S, 1)
        else:
            mask = torch.zeros(B, 1, 1, S, device='cuda', dtype=torch.float16)
            for b, keep in enumerate(torch.randint(S // 2, S + 1, (B,)).tolist()):
                mask[b, ..., keep:] = -10000.0
            strides = (S, 0, 0, 1)
        # The kernel's hasMask: 2 where the mask's tiles can be copied 16 bytes at a time, as the lowering decides.
        mode = 0 if not mask_kind else (2 if all(s % 8 == 0 for s in strides[:3]) else 1)
        q, k, v = (qkv[:, i * E:(i + 1) * E].view(B, S, H, D).transpose(1, 2).float() for i in range(3))
        scores = q @ k.transpose(-1, -2) / D ** 0.5 + (mask.float() if mask_kind else 0)
        reference = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B * S, E)
        view = lambda offset: dims(offset, S * 3 * E, D, 3 * E, 1)
        values = [ctypes.c_uint64(t.data_ptr()) for t in (qkv, qkv, qkv, mask, out)]
        values += [dims(B, H, S, S, D, D), view(0), view(E), view(2 * E), dims(0, S * E, D, E, 1), dims(*strides)]
        values += [ctypes.c_float(1 / D ** 0.5)] + [ctypes.c_int(x) for x in (mode, 0, 0, 0, 1)]
        pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(x), ctypes.c_void_p) for x in values])
        q16, k16, v16 = (qkv[:, i * E:(i + 1) * E].view(B, S, H, D).transpose(1, 2) for i in range(3))
        sdpa = graph_time(lambda: torch.nn.functional.scaled_dot_product_attention(q16, k16, v16))
        label = {'m': 'padding mask', 'M': 'full mask', '': 'no mask'}[mask_kind]
        line = f'B={B:3d} S={S:4d} {label:12s} torch sdpa without mask {sdpa:7.1f} us'
        if mask_kind:
            masked = graph_time(lambda: torch.nn.functional.scaled_dot_product_attention(q16, k16, v16, mask))
            line += f', with the mask {masked:7.1f} us'
        print(line)
        for (warps, keys, blocks, stages), function in functions.items():
            rows = 16 * warps
            mask_rows = 0 if mode != 2 else (1 if strides[2] == 0 else rows)
            shared = shared_bytes(D, keys, stages, mask_rows)

            def run():
                stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
                assert cuda.cuLaunchKernel(function, (S + rows - 1) // rows, H, B, 32 * warps, 1, 1, shared, stream,
                                           pointers, None) == 0

            out.zero_()
            run()
            torch.cuda.synchronize()
            error = ((out.float() - reference).norm() / reference.norm()).item()
            kiln = graph_time(run)
            print(f'    kiln {warps} warps, {keys:3d} keys, {blocks} blocks, {stages} stages: {kiln:7.1f} us '
                  f'(rel. error {error:.3e})')


if __name__ == '__main__':
    main()
