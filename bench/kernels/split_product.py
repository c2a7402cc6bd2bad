# Checks and times Kiln's split-TF32 float32 product (CUDASplitProduct) on its own, on the GPU machine (Python
# with torch, NVRTC from the pip CUDA packages, no Swift); the CUDA source is read from the Swift file, so the
# kernel timed is the one in the tree. Each shape is one of ResNet-50's 1x1 convolutions at batch 64 as a
# product C = relu(A·Bᵀ + bias [+ R]) (MxNxK, '+r' with a residual, '-' without ReLU); the result is compared
# with float64 math beside torch's strict float32 result, then timed in a CUDA graph beside torch's strict
# float32 addmm (+ residual add + ReLU, the passes cuBLASLt's epilogue would fuse) and addmm alone.
# Use: python3 bench/kernels/split_product.py [--shapes 200704x256x64+r,...]
import argparse, ctypes, re
import torch
from attention import swift_string, compile_cubin, graph_time

PATH = 'Sources/KilnCUDA/Kernels/CUDASplitProduct.swift'
RESNET = ('200704x64x64,200704x64x256,200704x256x64+r,200704x256x64-,200704x128x256,50176x128x512,'
          '50176x512x128+r,50176x512x256-,50176x256x512,12544x256x1024,12544x1024x256+r,12544x1024x512-,'
          '12544x512x1024,3136x512x2048,3136x2048x512+r,3136x2048x1024-,1000x512x2048')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--shapes', default=RESNET)
    parser.add_argument('--blocks', default='1,2', help='KILN_SPLIT_BLOCKS variants (blocks per multiprocessor)')
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.zeros(1, device='cuda')
    cuda = ctypes.CDLL('libcuda.so.1')
    major, minor = torch.cuda.get_device_capability()
    prelude = swift_string('Sources/KilnCUDA/Lowering/CUDAPrelude.swift', 'text')
    variants = [int(b) for b in args.blocks.split(',')]
    functions = {}
    for blocks in variants:
        code = f'#define KILN_SPLIT_BLOCKS {blocks}\n' + swift_string(PATH, 'code')
        cubin, log = compile_cubin(prelude + '\n' + code, f'{major}{minor}')
        module = ctypes.c_void_p()
        assert cuda.cuModuleLoadData(ctypes.byref(module), cubin) == 0
        for columns in (128, 64):
            name = f'kiln_split_tf32_product_{columns}'
            usage = re.search(rf"Compiling entry function '{name}'.*?(Used [^\n]*)", log, re.S)
            spill = re.search(rf"Compiling entry function '{name}'.*?(\d+ bytes spill stores)", log, re.S)
            function = ctypes.c_void_p()
            assert cuda.cuModuleGetFunction(ctypes.byref(function), module, name.encode()) == 0
            shared = 3 * (128 + columns) * 36 * 4
            assert cuda.cuFuncSetAttribute(function, 8, shared) == 0
            functions[(blocks, columns)] = (function, shared)
            print(f'{name} blocks {blocks}: {usage.group(1) if usage else "?"}; {spill.group(1) if spill else "?"}')

    total = {f'kiln{b}': 0.0 for b in variants} | {'addmm': 0.0, 'fused': 0.0}
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
            function, shared = functions[(blocks, columns)]
            values = [ctypes.c_uint64(x.data_ptr() if x is not None else 0) for x in (a, w, bias, r, out)]
            values += [ctypes.c_int(x) for x in (M, N, K, 1 if relu else 0)]
            pointers = (ctypes.c_void_p * len(values))(
                *[ctypes.cast(ctypes.byref(x), ctypes.c_void_p) for x in values])

            def run():
                stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
                assert cuda.cuLaunchKernel(function, N // columns, (M + 127) // 128, 1, 256, 1, 1, shared, stream,
                                           pointers, None) == 0

            out.fill_(float('nan'))
            run()
            torch.cuda.synchronize()
            error = ((out.double() - exact).norm() / exact.norm()).item()
            kiln = graph_time(run)
            total[f'kiln{blocks}'] += kiln
            line += f' | kiln{blocks} {kiln:6.1f} us ({flops / kiln / 1e6:4.1f}) err {error:.1e}'
            line += '  WRONG' if not error < 4 * torch_error + 1e-6 else ''
        print(line)
    print('sums, us: ' + ', '.join(f'{k} {v:.1f}' for k, v in total.items()))


if __name__ == '__main__':
    main()
