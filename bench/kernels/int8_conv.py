# Checks and times Kiln's int8 warpgroup convolution (CUDAInt8WarpGroupConvolution: wgmma s8, TMA im2col,
# sm_90a) on its own, on the GPU machine (Python with torch, NVRTC from the pip CUDA packages, no Swift); the
# CUDA source is read from the Swift files, so the kernel timed is the one in the tree. Each of ResNet-50's
# convolution shapes (torchvision, stride on the 3x3) runs int8 NHWC in, int8 NHWC out, with per-channel alpha
# and beta, ReLU and (where the network has one) an int8 residual, checked against the same formula over an
# exact float64 convolution, then timed in a CUDA graph beside torch's float16 channels-last convolution
# (cuDNN, what Kiln's float16 engines run). The last line weighs each shape by how often ResNet-50 has it.
# Use: python3 bench/kernels/int8_conv.py [--batch 64] [--variants 256.4,128.6,64.8] [--only NAME,...] [--file COPY]
#   [--threads 288] [--blocks-per-sm N] (launch bounds, shared memory and a grid of N resident blocks an SM;
#   default as Kiln launches: two for 64-column tiles, else one)
#   (variant BN.STAGES: output channels per tile, shared-memory buffers at most (fewer where the epilogue's
#   stages leave no room); BK is 128 where C allows, else 64)
import argparse, ctypes, re
import torch
import torch.nn.functional as F
from attention import swift_string, compile_cubin, graph_time

PATH = 'Sources/KilnCUDA/Kernels/CUDAInt8WarpGroupConvolution.swift'
PRODUCT = 'Sources/KilnCUDA/Kernels/CUDAWarpGroupProduct.swift'

# name, times in ResNet-50, C, H (= W), Cout, kernel, stride, residual
SHAPES = [
    ('s1.reduce0', 1, 64, 56, 64, 1, 1, False),
    ('s1.conv3', 3, 64, 56, 64, 3, 1, False),
    ('s1.expand', 3, 64, 56, 256, 1, 1, True),
    ('s1.down', 1, 64, 56, 256, 1, 1, False),
    ('s1.reduce', 2, 256, 56, 64, 1, 1, False),
    ('s2.reduce0', 1, 256, 56, 128, 1, 1, False),
    ('s2.conv3s2', 1, 128, 56, 128, 3, 2, False),
    ('s2.down', 1, 256, 56, 512, 1, 2, False),
    ('s2.conv3', 3, 128, 28, 128, 3, 1, False),
    ('s2.expand', 4, 128, 28, 512, 1, 1, True),
    ('s2.reduce', 3, 512, 28, 128, 1, 1, False),
    ('s3.reduce0', 1, 512, 28, 256, 1, 1, False),
    ('s3.conv3s2', 1, 256, 28, 256, 3, 2, False),
    ('s3.down', 1, 512, 28, 1024, 1, 2, False),
    ('s3.conv3', 5, 256, 14, 256, 3, 1, False),
    ('s3.expand', 6, 256, 14, 1024, 1, 1, True),
    ('s3.reduce', 5, 1024, 14, 256, 1, 1, False),
    ('s4.reduce0', 1, 1024, 14, 512, 1, 1, False),
    ('s4.conv3s2', 1, 512, 14, 512, 3, 2, False),
    ('s4.down', 1, 1024, 14, 2048, 1, 2, False),
    ('s4.conv3', 2, 512, 7, 512, 3, 1, False),
    ('s4.expand', 3, 512, 7, 2048, 1, 1, True),
    ('s4.reduce', 2, 2048, 7, 512, 1, 1, False),
    # The stem (7x7 stride 2 over 3 channels) as the 1x1 product over its 192-byte patch rows.
    ('stem.rows', 1, 192, 112, 64, 1, 1, False),
]


def blocks_per_sm(bn, forced=None):
    """Resident blocks an SM: as Kiln launches them (two for 64-column tiles) unless forced."""
    return forced or (2 if bn == 64 else 1)


def source(variants, path=PATH, per_sm=None, threads=288):
    prelude = swift_string('Sources/KilnCUDA/Lowering/CUDAPrelude.swift', 'text')
    text = prelude + swift_string(PRODUCT, 'tensorMemory')
    for n in (64, 128, 256):
        count = n // 2
        registers = ', '.join(f'%{i}' for i in range(count))
        outputs = ', '.join(f'"+r"(d[{i}])' for i in range(count))
        text += (f'__device__ __forceinline__ void kiln_wgmma_i8_n{n}(int* d, u64 a, u64 b) {{\n'
                 f'    asm volatile("{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{count + 2}, 0;\\n"\n'
                 f'        "wgmma.mma_async.sync.aligned.m64n{n}k32.s32.s8.s8 {{{registers}}}, "\n'
                 f'        "%{count}, %{count + 1}, p;\\n}}\\n"\n'
                 f'        : {outputs}\n        : "l"(a), "l"(b), "r"(1));\n}}\n')
    text += swift_string(path, 'conversions') + swift_string(path, 'code') + '\n'
    for bn, bk, stages, im2col, relu, res, small in variants:
        name = f'kiln_i8_conv_{bn}_{bk}_{stages}_{im2col}{relu}{res}{small}'
        text += (f'extern "C" __global__ void __launch_bounds__({threads}, {blocks_per_sm(bn, per_sm)}) {name}('
                 'const __grid_constant__ KilnTensorMap mapA, const __grid_constant__ KilnTensorMap mapB, '
                 'const float* alpha, const float* beta, const signed char* residual, float residualScale, '
                 'signed char* Y, KilnDims g, KilnDims s) {\n'
                 f'    kiln_i8_conv<{bn}, {bk}, {stages}, {im2col}, {relu}, {res}, {small}>(&mapA, &mapB, alpha, beta, '
                 'residual, residualScale, Y, g, s);\n}\n')
    return text


def shared_bytes(bn, bk, stages, res):
    return (128 + bn) * bk * stages + 1024 + 16 * stages + 8 * bn + 8 * (2 if res else 1) * 16 * (bn + 16)


LIMIT = 232448  # an H100's shared memory per block


def fitting_stages(bn, bk, stages, res, per_sm=None):
    """The most buffers, at most `stages`, that fit beside the epilogue's stages (`per_sm` blocks an SM)."""
    while stages > 2 and shared_bytes(bn, bk, stages, res) > (LIMIT + 1024) // blocks_per_sm(bn, per_sm) - 1024:
        stages -= 1
    return stages


class Map(ctypes.Structure):
    _fields_ = [('v', ctypes.c_uint64 * 16)]


def aligned_map():
    raw = ctypes.create_string_buffer(128 + 64)
    return raw, (ctypes.addressof(raw) + 63) // 64 * 64


def tiled_map(cuda, tensor2d, box, swizzle):
    """A 2-D uint8 map of a row-major byte matrix; box = (inner bytes, rows); swizzle 3 = 128 B, 2 = 64 B."""
    rows, columns = tensor2d.shape
    raw, address = aligned_map()
    Dims64, Dims32 = ctypes.c_uint64 * 2, ctypes.c_uint32 * 2
    rc = cuda.cuTensorMapEncodeTiled(
        ctypes.c_void_p(address), 0, 2, ctypes.c_void_p(tensor2d.data_ptr()), Dims64(columns, rows),
        (ctypes.c_uint64 * 1)(tensor2d.stride(0)), Dims32(*box), Dims32(1, 1), 0, swizzle, 2, 0)
    assert rc == 0, f'cuTensorMapEncodeTiled: {rc}'
    return Map.from_buffer_copy(ctypes.string_at(address, 128))


def im2col_map(cuda, x, k, stride, pad, bk, swizzle):
    """The im2col map of NHWC int8 `x` for a k x k window: 128 pixels of bk channels per load."""
    n, h, w, c = x.shape
    raw, address = aligned_map()
    dims = (ctypes.c_uint64 * 4)(c, w, h, n)
    strides = (ctypes.c_uint64 * 3)(c, w * c, h * w * c)
    lower = (ctypes.c_int * 2)(-pad, -pad)
    upper = (ctypes.c_int * 2)(pad - (k - 1), pad - (k - 1))
    steps = (ctypes.c_uint32 * 4)(1, stride, stride, 1)
    rc = cuda.cuTensorMapEncodeIm2col(
        ctypes.c_void_p(address), 0, 4, ctypes.c_void_p(x.data_ptr()), dims, strides, lower, upper, bk, 128,
        steps, 0, swizzle, 2, 0)
    assert rc == 0, f'cuTensorMapEncodeIm2col: {rc}'
    return Map.from_buffer_copy(ctypes.string_at(address, 128))


class Dims(ctypes.Structure):
    _fields_ = [('v', ctypes.c_int64 * 8)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--variants', default='256.4,128.6,64.8')
    parser.add_argument('--only', default='')
    parser.add_argument('--file', default=PATH)
    parser.add_argument('--threads', type=int, default=288, help='a block: two consumer warpgroups and the loader warp')
    parser.add_argument('--blocks-per-sm', type=int, default=None,
                        help='launch bounds, shared memory and grid for this many resident blocks an SM '
                             '(default: as Kiln, two for 64-column tiles, else one)')
    args = parser.parse_args()
    per_sm = args.blocks_per_sm
    torch.zeros(1, device='cuda')
    cuda = ctypes.CDLL('libcuda.so.1')
    multiprocessors = torch.cuda.get_device_properties(0).multi_processor_count
    shapes = [s for s in SHAPES if not args.only or s[0] in args.only.split(',')]
    tiles = [tuple(int(v) for v in t.split('.')) for t in args.variants.split(',')]

    def variant_keys(c, k, stride, res, bn, stages):
        bk = 128 if c % 128 == 0 else 64
        im2col = 0 if (k == 1 and stride == 1) else 1
        small = 1 if k * k * c <= 256 else 0
        return (bn, bk, fitting_stages(bn, bk, stages, res, per_sm), im2col, 1, 1 if res else 0, small)

    wanted = sorted({variant_keys(c, k, st, res, bn, stages) for _, _, c, _, cout, k, st, res in shapes
                     for bn, stages in tiles if bn <= cout} |
                    {variant_keys(c, 1, 2, res, bn, stages) for _, _, c, _, cout, k, st, res in shapes
                     for bn, stages in tiles if bn <= cout and k == 1 and st == 1})
    major, minor = torch.cuda.get_device_capability()
    cubin, log = compile_cubin(source(wanted, args.file, per_sm, args.threads), f'{major}{minor}a')
    module = ctypes.c_void_p()
    assert cuda.cuModuleLoadData(ctypes.byref(module), cubin) == 0
    functions = {}
    for key in wanted:
        bn, bk, stages, im2col, relu, res, small = key
        name = f'kiln_i8_conv_{bn}_{bk}_{stages}_{im2col}{relu}{res}{small}'
        function = ctypes.c_void_p()
        assert cuda.cuModuleGetFunction(ctypes.byref(function), module, name.encode()) == 0
        assert cuda.cuFuncSetAttribute(function, 8, shared_bytes(bn, bk, stages, res)) == 0
        functions[key] = function
        usage = re.search(rf"Compiling entry function '{name}'.*?(Used [^\n]*)", log, re.S)
        print(f'{name}: {usage.group(1) if usage else "?"}')
    for line in log.splitlines():
        if 'warning' in line.lower() or 'wgmma' in line.lower():
            print(line)

    totals = {'fp16': 0.0, 'int8': 0.0}
    failures = 0
    B = args.batch
    for name, times, C, H, Cout, k, stride, res in shapes:
        pad = k // 2
        Ho = (H + 2 * pad - k) // stride + 1
        M = B * Ho * Ho
        torch.manual_seed(0)
        x = torch.randint(-128, 128, (B, H, H, C), device='cuda', dtype=torch.int8)
        w = torch.randint(-128, 128, (Cout, k, k, C), device='cuda', dtype=torch.int8)
        K = k * k * C
        alpha = (torch.rand(Cout, device='cuda') + 0.5) * 60 / (K ** 0.5 * 5500)
        beta = torch.randn(Cout, device='cuda') * 10
        residual = torch.randint(-128, 128, (B, Ho, Ho, Cout), device='cuda', dtype=torch.int8)
        rs = 0.5
        acc = F.conv2d(x.permute(0, 3, 1, 2).double(), w.permute(0, 3, 1, 2).double(), stride=stride, padding=pad)
        acc = acc.permute(0, 2, 3, 1).reshape(M, Cout)
        exact = acc * alpha.double() + beta.double()
        if res:
            exact = exact + rs * residual.reshape(M, Cout).double()
        reference = torch.clamp(torch.round(exact), 0, 127)

        xh = x.permute(0, 3, 1, 2).half().contiguous(memory_format=torch.channels_last) / 64
        wh = w.permute(0, 3, 1, 2).half().contiguous(memory_format=torch.channels_last) / 64
        fp16 = graph_time(lambda: F.conv2d(xh, wh, stride=stride, padding=pad))
        flops = 2 * M * Cout * K
        line = f'{name:11} x{times} M={M} N={Cout} K={K}: cudnn fp16 {fp16:7.1f} us ({flops / fp16 / 1e6:4.0f} TF)'
        best = None
        for bn, stages in tiles:
            if bn > Cout:
                continue
            for force in ([False, True] if (k == 1 and stride == 1) else [False]):
                key = variant_keys(C, 1 if force else k, 2 if force else stride, res, bn, stages)
                bk, used, im2col = key[1], key[2], key[3]
                y = torch.zeros(M, Cout, device='cuda', dtype=torch.int8)
                swizzle = 3 if bk == 128 else 2
                map_a = (im2col_map(cuda, x, k, stride, pad, bk, swizzle) if im2col
                         else tiled_map(cuda, x.view(M, C), (bk, 128), swizzle))
                map_b = tiled_map(cuda, w.view(Cout, K), (bk, bn), swizzle)
                g = Dims((ctypes.c_int64 * 8)(M, Cout, Ho, Ho, k, k, C // bk, 0))
                s = Dims((ctypes.c_int64 * 8)(stride, stride, pad, pad, 1, 1, 0, 0))
                values = [map_a, map_b] + [ctypes.c_uint64(t.data_ptr()) for t in (alpha, beta, residual)]
                values += [ctypes.c_float(rs), ctypes.c_uint64(y.data_ptr()), g, s]
                pointers = (ctypes.c_void_p * len(values))(
                    *[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values])
                count = (Cout + bn - 1) // bn * ((M + 127) // 128)
                blocks = min(count, multiprocessors * blocks_per_sm(bn, per_sm))
                function = functions[key]

                def run():
                    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
                    assert cuda.cuLaunchKernel(function, blocks, 1, 1, args.threads, 1, 1, shared_bytes(bn, bk, used, res),
                                               stream, pointers, None) == 0

                run()
                torch.cuda.synchronize()
                diff = (y.double() - reference).abs()
                worst, off = diff.max().item(), (diff > 0).float().mean().item()
                ok = worst <= 1 and off < 1e-3
                failures += 0 if ok else 1
                t = graph_time(run)
                tag = f'{bn}.{used}{".2d" if im2col == 0 else (".i2c" if force else "")}'
                line += (f'\n    kiln int8 {tag:9} {t:7.1f} us ({flops / t / 1e6:4.0f} TF, {fp16 / t:4.2f}x fp16)'
                         f'  max diff {worst:.0f}, {off:.1e} off{"" if ok else "  WRONG"}')
                if ok and (best is None or t < best):
                    best = t
        print(line, flush=True)
        totals['fp16'] += times * fp16
        totals['int8'] += times * (best if best is not None else float('nan'))
    print(f'ResNet-50 convolutions (weighted, batch {B}): cudnn fp16 {totals["fp16"]:.0f} us, kiln int8 '
          f'{totals["int8"]:.0f} us ({totals["fp16"] / totals["int8"]:.2f}x); {failures} variant(s) wrong')


if __name__ == '__main__':
    main()
