# Checks and times Kiln's split-TF32 float32 product (CUDASplitProduct) on its own, on the GPU machine (Python
# with torch, NVRTC from the pip CUDA packages, no Swift); the CUDA source is read from the Swift file, so the
# kernel timed is the one in the tree. Each shape is one of ResNet-50's 1x1 convolutions at batch 64 as a
# product C = relu(A·Bᵀ + bias [+ R]) (MxNxK, '+r' with a residual, '-' without ReLU); the result is compared
# with float64 math beside torch's strict float32 result, then timed in a CUDA graph beside torch's strict
# float32 addmm (+ residual add + ReLU, the passes cuBLASLt's epilogue would fuse) and addmm alone.
# --files compares kernels from several Swift files (each holding the same `code` string, e.g. an earlier
# version saved with `git show REV:PATH > FILE`), each at every --blocks value.
# Use: python3 bench/kernels/split_product.py [--shapes 200704x256x64+r,...] [--files A.swift,B.swift]
import argparse, ctypes, re
import torch
from attention import swift_string, compile_cubin, graph_time

PATH = 'Sources/KilnCUDA/Kernels/CUDASplitProduct+Source.swift'
# ResNet-50's 3x3 convolutions at batch 64, channels-last: NxHxWxC>COUT/STRIDE (pad 1, bias and ReLU).
CONVS = '64x224x224x3>64/2k7,64x56x56x128>128/2,64x28x28x256>256/2,64x14x14x512>512/2,64x56x56x64>64/1,64x28x28x128>128/1,' \
        '64x14x14x256>256/1,64x7x7x512>512/1'
# ResNet-50's 1x1 convolutions after a stride-1 3x3 one at batch 64, reading its channels-first output as the
# product's transposed A: IMAGESxPIXELSxK>N (+r: a residual), C = relu(A·Bᵀ + bias + R), A stored [images, K, pixels].
COLUMNS = '64x3136x64>256+r,64x784x128>512+r,64x196x256>1024+r'
RESNET = ('200704x64x64,200704x64x256,200704x256x64+r,200704x256x64-,200704x128x256,50176x128x512,'
          '50176x512x128+r,50176x512x256-,50176x256x512,12544x256x1024,12544x1024x256+r,12544x1024x512-,'
          '12544x512x1024,3136x512x2048,3136x2048x512+r,3136x2048x1024-,1000x512x2048')


def launcher(cuda, function, grid, shared, buffers, ints):
    """A function that launches `function` (256 threads a block) on the current stream with device pointers
    `buffers` (None: a null pointer) and int32 `ints` as its arguments."""
    values = [ctypes.c_uint64(x.data_ptr() if x is not None else 0) for x in buffers]
    values += [ctypes.c_int(x) for x in ints]
    pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(x), ctypes.c_void_p) for x in values])

    def run():
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        assert cuda.cuLaunchKernel(function, *grid, 256, 1, 1, shared, stream, pointers, None) == 0

    run.arguments = values  # the pointers point into these: they must live as long as the launcher
    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--shapes', default=RESNET)
    parser.add_argument('--blocks', default='1,2', help='KILN_SPLIT_BLOCKS variants (blocks per multiprocessor)')
    parser.add_argument('--convs', default=CONVS)
    parser.add_argument('--columns', default=COLUMNS)
    parser.add_argument('--files', default=PATH, help='Swift files holding the kernel source, one variant each')
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.zeros(1, device='cuda')
    cuda = ctypes.CDLL('libcuda.so.1')
    major, minor = torch.cuda.get_device_capability()
    prelude = swift_string('Sources/KilnCUDA/Lowering/CUDAPrelude.swift', 'text')
    files = args.files.split(',')
    # A variant: the mma.sync kernels of one file at one KILN_SPLIT_BLOCKS value ('kiln'), and on Hopper the
    # file's warpgroup kernels ('wg', their blocks fixed at 1), labelled with the file's index where several.
    variants, functions = [], {}
    hopper = major == 9
    blocks = args.blocks.split(',')
    for i, file in enumerate(files):
        code = swift_string(file, 'code')
        for b in blocks:
            tag = f'{i}b{b}' if len(files) > 1 else b
            cubin, log = compile_cubin(prelude + f'\n#define KILN_SPLIT_BLOCKS {b}\n' + code,
                                       f'{major}{minor}' + ('a' if hopper else ''))
            module = ctypes.c_void_p()
            assert cuda.cuModuleLoadData(ctypes.byref(module), cubin) == 0
            warpGroup = hopper and 'kiln_split_tf32_wg_' in code and b == blocks[0]
            prefixes = [''] + (['wg_'] if warpGroup else [])
            for prefix in prefixes:
                label = ('wg' if prefix else 'kiln') + tag
                variants.append(label)
                for kind in ('product', 'conv', 'gather') + (('columns',) if prefix else ()):
                    for columns in (128, 64):
                        name = f'kiln_split_tf32_{prefix}{kind}_{columns}'
                        usage = re.search(rf"Compiling entry function '{name}'.*?(Used [^\n]*)", log, re.S)
                        spill = re.search(rf"Compiling entry function '{name}'.*?(\d+ bytes spill stores)", log, re.S)
                        function = ctypes.c_void_p()
                        assert cuda.cuModuleGetFunction(ctypes.byref(function), module, name.encode()) == 0
                        # CUDASplitProduct.sharedBytes, written again here
                        stages = 4 * (2 * columns * 128 + 128 * 40 * 4) + 1024 if prefix else 3 * (128 + columns) * 160
                        shared = stages + (1536 if kind == 'gather' else 0)
                        assert cuda.cuFuncSetAttribute(function, 8, shared) == 0
                        functions[(label, kind, columns)] = (function, shared)
                        print(f'{name} ({label}): {usage.group(1) if usage else "?"}; {spill.group(1) if spill else "?"}')
    warnings = re.findall(r'[^\n]*warning[^\n]*', log)
    if warnings:
        print('\n'.join(sorted(set(warnings))))

    total = {v: 0.0 for v in variants} | {'addmm': 0.0, 'fused': 0.0}
    for shape in args.shapes.split(','):
        residual, relu = shape.endswith('+r'), not shape.endswith('-')
        M, N, K = (int(v) for v in shape.rstrip('+r-').split('x'))
        torch.manual_seed(0)
        a = torch.randn(M, K, device='cuda').relu_()
        w = torch.randn(N, K, device='cuda') / K ** 0.5
        bias = torch.randn(N, device='cuda')
        r = torch.randn(M, N, device='cuda') if residual else None
        exact = a.double() @ w.double().t() + bias.double()
        if residual:
            exact += r.double()
        if relu:
            exact = exact.relu()
        out = torch.empty(M, N, device='cuda')

        def torch_fused():
            torch.addmm(bias, a, w.t(), out=out)
            if residual:
                out.add_(r)
            if relu:
                out.relu_()

        torch_fused()
        torch_error = ((out.double() - exact).norm() / exact.norm()).item()
        addmm = graph_time(lambda: torch.addmm(bias, a, w.t(), out=out))
        fused = graph_time(torch_fused)
        columns = 128 if N % 128 == 0 else 64
        flops = 2 * M * N * K
        total['addmm'] += addmm
        total['fused'] += fused
        line = f'{shape:>18}: torch fp32 addmm {addmm:6.1f} us ({flops / addmm / 1e6:4.1f} TFLOP/s), with epilogue ' \
               f'{fused:6.1f} us, err {torch_error:.1e}'
        for blocks in variants:
            function, shared = functions[(blocks, 'product', columns)]
            run = launcher(cuda, function, (N // columns, (M + 127) // 128, 1), shared, (a, w, bias, r, out),
                           (M, N, K, 1 if relu else 0))
            out.fill_(float('nan'))
            run()
            torch.cuda.synchronize()
            error = ((out.double() - exact).norm() / exact.norm()).item()
            kiln = graph_time(run)
            total[blocks] += kiln
            line += f' | {blocks} {kiln:6.1f} us ({flops / kiln / 1e6:4.1f}) err {error:.1e}'
            line += '  WRONG' if not error < 4 * torch_error + 1e-6 else ''
        print(line)
    print('sums, us: ' + ', '.join(f'{k} {v:.1f}' for k, v in total.items()))
    convs(cuda, functions, variants, args.convs)
    if hopper:
        channels_first(cuda, functions, [v for v in variants if v.startswith('wg')], args.columns)


def channels_first(cuda, functions, variants, shapes):
    """The warpgroup form reading A from channels-first images, beside torch's strict addmm on the same
    product with A already channels-last and the transpose torch would need first."""
    for shape in shapes.split(','):
        left, right = shape.split('>')
        images, pixels, K = (int(v) for v in left.split('x'))
        N, residual = int(right.rstrip('+r')), right.endswith('+r')
        M = images * pixels
        torch.manual_seed(0)
        x = torch.randn(images, K, pixels, device='cuda').relu_()
        a = x.permute(0, 2, 1).reshape(M, K)
        w = torch.randn(N, K, device='cuda') / K ** 0.5
        bias = torch.randn(N, device='cuda')
        r = torch.randn(M, N, device='cuda') if residual else None
        exact = a.double() @ w.double().t() + bias.double() + (r.double() if residual else 0)
        exact = exact.relu()
        out = torch.empty(M, N, device='cuda')
        rows = a.contiguous()
        addmm = graph_time(lambda: torch.addmm(bias, rows, w.t(), out=out))
        transpose = graph_time(lambda: rows.copy_(x.permute(0, 2, 1).reshape(M, K)))
        flops = 2 * M * N * K
        line = f'{shape:>20}: torch fp32 addmm {addmm:6.1f} us, its transpose first {transpose:6.1f} us'
        for label in variants:
            width = 128 if N % 128 == 0 else 64
            function, shared = functions[(label, 'columns', width)]
            run = launcher(cuda, function, (N // width, (M + 127) // 128, 1), shared, (x, w, bias, r, out),
                           (M, N, K, 1, pixels))
            out.fill_(float('nan'))
            run()
            torch.cuda.synchronize()
            error = ((out.double() - exact).norm() / exact.norm()).item()
            kiln = graph_time(run)
            line += f' | {label} columns {kiln:6.1f} us ({flops / kiln / 1e6:4.1f}) err {error:.1e}'
            line += '  WRONG' if not error < 1e-6 else ''
        print(line)


def convs(cuda, functions, variants, shapes):
    import torch.nn.functional as F
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    for shape in shapes.split(','):
        left, right = shape.split('>')
        N, H, W, C = (int(v) for v in left.split('x'))
        M, rest = right.split('/')
        S, R = (int(v) for v in rest.split('k')) if 'k' in rest else (int(rest), 3)
        M, P = int(M), R // 2
        OH, OW = (H + 2 * P - R) // S + 1, (W + 2 * P - R) // S + 1
        torch.manual_seed(0)
        x = torch.randn(N, C, H, W, device='cuda').relu_()
        w = torch.randn(M, C, R, R, device='cuda') / (R * R * C) ** 0.5
        bias = torch.randn(M, device='cuda')
        exact = F.conv2d(x.double(), w.double(), bias.double(), stride=S, padding=P).relu()
        mine = F.conv2d(x, w, bias, stride=S, padding=P).relu()
        torch_error = ((mine.double() - exact).norm() / exact.norm()).item()
        nchw = graph_time(lambda: F.conv2d(x, w, bias, stride=S, padding=P).relu_())
        xl, wl = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
        nhwc = graph_time(lambda: F.conv2d(xl, wl, bias, stride=S, padding=P).relu_())
        xs = x.permute(0, 2, 3, 1).contiguous()
        ws = w.permute(0, 2, 3, 1).contiguous()
        out = torch.empty(N, OH, OW, M, device='cuda')
        m, k = N * OH * OW, R * R * C
        flops = 2 * m * M * k
        line = f'{shape:>20}: torch fp32 NCHW {nchw:6.1f} us ({flops / nchw / 1e6:4.1f}), NHWC {nhwc:6.1f} us, err {torch_error:.1e}'
        for blocks in variants:
            columns = 128 if M % 128 == 0 else 64
            function, shared = functions[(blocks, 'conv' if C % 32 == 0 else 'gather', columns)]
            run = launcher(cuda, function, (M // columns, (m + 127) // 128, 1), shared, (xs, ws, bias, None, out),
                           (m, M, k, 1, H, W, C, OH, OW, R, S, S, P, P))
            out.fill_(float('nan'))
            run()
            torch.cuda.synchronize()
            got = out.permute(0, 3, 1, 2).double()
            error = ((got - exact).norm() / exact.norm()).item()
            kiln = graph_time(run)
            line += f' | {blocks} {kiln:6.1f} us ({flops / kiln / 1e6:4.1f}) err {error:.1e}'
            line += '  WRONG' if not error < 4 * torch_error + 1e-6 else ''
        print(line)


if __name__ == '__main__':
    main()
