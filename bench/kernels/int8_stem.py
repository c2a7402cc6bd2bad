# Times the first half of Kiln's chained int8 stem on its own, on the GPU machine (Python with torch, NVRTC
# from the pip CUDA packages, no Swift): `kiln_int8_patches_staged` (CUDAQuantizedProducts+Source.swift, read
# from the tree) writing ResNet-50's 7x7 stride-2 patches of an int8 NHWC batch as rows of 192 bytes, checked
# against torch's unfold. The second half, the 1x1 product over those rows, is `int8_conv.py --only stem.rows`.
# Then Kiln's direct stem (`kiln_i8_stem`, CUDAInt8StemConvolution.swift), which replaces both halves, on
# ResNet-50's and MobileNetV2's stems and two smaller windows, reading int8 NHWC and NCHW, checked byte for byte against torch's float
# convolution of the same int8 values with the same epilogue (ReLU, round half to even, saturate).
# Use: python3 bench/kernels/int8_stem.py [--batch 64] [--blocks 2,3]
import argparse, ctypes, os, re, textwrap
import torch
import torch.nn.functional as F
from attention import ROOT, swift_string, compile_cubin, graph_time, dims

PATH = 'Sources/KilnCUDA/Kernels/CUDAQuantizedProducts+Source.swift'


def kernel_text():
    text = open(os.path.join(ROOT, PATH)).read()
    body = re.search(r'(            /\* The same patches, staged.*?)            extern "C" __global__ void kiln_int8_patches_nhwc',
                     text, re.S).group(1)
    return textwrap.dedent(body).replace('\\\\', '\\')


STEM = 'Sources/KilnCUDA/Kernels/CUDAInt8StemConvolution.swift'


def stem_window(C, K):
    """As CUDAInt8StemConvolution.Window for a K x K window over C channels: words a pixel, window rows a step
    (0: taps run on across rows), steps, and the (row, column, word) of each step's slot (None: padding)."""
    words = (C + 3) // 4
    rows = 8 // (K * words) if K * words <= 8 else 0
    steps = (K + rows - 1) // rows if rows else (K * K * words + 7) // 8

    def word(step, slot):
        if rows:
            row, rest = step * rows + slot // (K * words), slot % (K * words)
            return (row, rest // words, rest % words) if slot < rows * K * words and row < K else None
        index = step * 8 + slot
        tap = index // words
        return (tap // K, tap % K, index % words) if tap < K * K else None
    return words, rows, steps, word


def fragment_weights(w, steps, word):
    """As CUDAInt8StemConvolution.fragmentWeights: [M, kh, kw, C] int8 to the order the fragments read."""
    M, KH, KW, C = w.shape
    words = (C + 3) // 4
    padded = torch.zeros(M, KH, KW, words * 4, dtype=torch.int8)
    padded[..., :C] = w
    padded = padded.reshape(M, KH, KW, words, 4)
    zero = torch.zeros(M, 4, dtype=torch.int8)
    slots = [[padded[:, p[0], p[1], p[2]] if p else zero for p in (word(s, u) for u in range(8))]
             for s in range(steps)]
    out = []
    for block in range(M // 64):
        for step in range(steps):
            for wn in range(2):
                for half in range(2):
                    for lane in range(32):
                        g, t = lane // 4, lane % 4
                        for fragment in (2 * half, 2 * half + 1):
                            n = block * 64 + wn * 32 + fragment * 8 + g
                            out += [slots[step][t][n], slots[step][t + 4][n]]
    return torch.stack(out).reshape(-1)


def direct(args, cuda, B, C, H, K, S, P, M=64):
    OH = (H + 2 * P - K) // S + 1
    words, rows, steps, word = stem_window(C, K)
    IH, IW = 7 * S + (rows * steps if rows else K), 15 * S + K
    row = IW * words
    pitch = row + (16 - row % 32 + 32) % 32
    shared = 2 * 64 * 4 + IH * pitch * 4 + 8 * 32 * 48
    small = int(K * K * C <= 256)
    prelude = swift_string('Sources/KilnCUDA/Lowering/CUDAPrelude.swift', 'text')
    source = (prelude + swift_string('Sources/KilnCUDA/Kernels/CUDAInt8WarpGroupConvolution.swift', 'conversions')
              + swift_string(STEM, 'code'))
    names = []
    for blocks in args.blocks:
        for nchw in (0, 1):
            name = f'stem_b{blocks}_{"nchw" if nchw else "nhwc"}'
            names.append((name, blocks, nchw))
            source += (f'extern "C" __global__ void __launch_bounds__(256, {blocks}) {name}(const signed char* X, '
                       'const uint4* B, const float* alpha, const float* beta, signed char* Y, KilnDims g) {\n'
                       f'    kiln_i8_stem<{C}, {words}, {K}, {K}, {S}, {S}, 1, 1, {steps}, {rows}, {nchw}, 1, {small}>'
                       '(X, B, alpha, beta, Y, g);\n}\n')
    major, minor = torch.cuda.get_device_capability()
    cubin, log = compile_cubin(source, f'{major}{minor}')
    module = ctypes.c_void_p()
    assert cuda.cuModuleLoadData(ctypes.byref(module), cubin) == 0

    torch.manual_seed(0)
    image = torch.randn(B, C, H, H, device='cuda')
    scale = float(image.abs().max()) / 127
    q = torch.round(image / scale).clamp(-128, 127)
    planes = q.to(torch.int8).contiguous()
    x = planes.permute(0, 2, 3, 1).contiguous()
    w = torch.randint(-127, 128, (M, K, K, C), dtype=torch.int8)
    alpha = (torch.rand(M, device='cuda') + 0.5) / 2000
    beta = torch.randn(M, device='cuda') * 20
    acc = F.conv2d(q, w.permute(0, 3, 1, 2).float().cuda(), stride=S, padding=P)
    reference = torch.round((acc * alpha[None, :, None, None] + beta[None, :, None, None]).clamp(0, 127))
    reference = reference.to(torch.int8).permute(0, 2, 3, 1).contiguous()
    weights = fragment_weights(w, steps, word).cuda()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    tiles = B * ((OH + 7) // 8) * ((OH + 15) // 16)
    for name, blocks, nchw in names:
        usage = re.search(rf"Compiling entry function '{name}'.*?(Used [^\n]*)", log, re.S)
        function = ctypes.c_void_p()
        assert cuda.cuModuleGetFunction(ctypes.byref(function), module, name.encode()) == 0
        if shared > 48 << 10:
            assert cuda.cuFuncSetAttribute(function, 8, shared) == 0
        out = torch.full((B, OH, OH, M), 7, device='cuda', dtype=torch.int8)
        grid = min(tiles, sms * blocks * 64 // M)
        values = [ctypes.c_uint64((planes if nchw else x).data_ptr()), ctypes.c_uint64(weights.data_ptr()),
                  ctypes.c_uint64(alpha.data_ptr()), ctypes.c_uint64(beta.data_ptr()), ctypes.c_uint64(out.data_ptr()),
                  dims(B, H, H, OH, OH, M, P, P)]
        pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values])

        def run():
            stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
            assert cuda.cuLaunchKernel(function, grid, M // 64, 1, 256, 1, 1, shared, stream, pointers, None) == 0

        run()
        torch.cuda.synchronize()
        wrong = (out != reference).sum().item()
        worst = (out.int() - reference.int()).abs().max().item()
        t = graph_time(run)
        print(f'{name}: batch {B}, C {C}, {K}x{K} stride {S}, {grid} blocks, {shared} B shared, '
              f'{usage.group(1) if usage else "?"}: {t:.1f} us; {wrong} of {out.numel()} bytes differ, by at most {worst}', flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--blocks', default='2', help='blocks an SM for the direct kernel (launch bounds), e.g. 1,2')
    args = parser.parse_args()
    args.blocks = [int(v) for v in args.blocks.split(',')]
    torch.zeros(1, device='cuda')  # the CUDA context the driver calls below use
    prelude = swift_string('Sources/KilnCUDA/Lowering/CUDAPrelude.swift', 'text')
    source = prelude + kernel_text()
    major, minor = torch.cuda.get_device_capability()
    cubin, log = compile_cubin(source, f'{major}{minor}')
    cuda = ctypes.CDLL('libcuda.so.1')
    module = ctypes.c_void_p()
    assert cuda.cuModuleLoadData(ctypes.byref(module), cubin) == 0
    names = ['kiln_int8_patches_staged']

    B, C, H, K, S, P = args.batch, 3, 224, 7, 2, 3
    OH = (H + 2 * P - K) // S + 1
    depth, Kp = K * K * C, (K * K * C + 63) // 64 * 64
    x = torch.randint(-128, 128, (B, H, H, C), device='cuda', dtype=torch.int8)
    # Reference rows: (kh, kw, c) order, channels innermost, zero-padded.
    cols = F.unfold(x.permute(0, 3, 1, 2).float(), K, padding=P, stride=S)  # [B, C*K*K, L] as (c, kh, kw)
    cols = cols.view(B, C, K * K, OH * OH).permute(0, 3, 2, 1).reshape(B * OH * OH, depth)
    reference = torch.zeros(B * OH * OH, Kp, device='cuda', dtype=torch.int8)
    reference[:, :depth] = cols.to(torch.int8)
    tile = min(OH, 128)
    span = (tile - 1) * S + K
    # As CUDAInt8WarpGroupConvolution.patchTile: offsets, input rows (16-byte aligned), patch rows + 16.
    shared = Kp * 4 + (K * span * C + 15) // 16 * 16 + tile * (Kp + 16)
    blocks = B * OH * ((OH + tile - 1) // tile)
    written = B * OH * OH * Kp
    for name in names:
        function = ctypes.c_void_p()
        assert cuda.cuModuleGetFunction(ctypes.byref(function), module, name.encode()) == 0
        out = torch.full((B * OH * OH, Kp), 7, device='cuda', dtype=torch.int8)
        values = [ctypes.c_uint64(x.data_ptr()), ctypes.c_uint64(out.data_ptr()),
                  dims(B, C, H, H, OH, OH, OH * OH, Kp), dims(K, K, S, S, P, P, 1, 1), ctypes.c_int(0),
                  ctypes.c_int(tile)]
        pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values])

        def run():
            stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
            assert cuda.cuLaunchKernel(function, blocks, 1, 1, 256, 1, 1, shared, stream, pointers, None) == 0

        run()
        torch.cuda.synchronize()
        wrong = (out != reference).sum().item()
        t = graph_time(run)
        print(f'{name}: batch {B}, {blocks} blocks, {written / 1e6:.0f} MB of rows in {t:.1f} us '
              f'({written / t / 1e6:.2f} TB/s written); {wrong} bytes wrong', flush=True)
    for C, H, K, S, P in ((3, 224, 7, 2, 3), (3, 224, 3, 2, 1), (5, 64, 3, 1, 1), (16, 64, 4, 1, 0)):
        direct(args, cuda, B, C, H, K, S, P)


if __name__ == '__main__':
    main()
