# Times Kiln's warpgroup product kernel (CUDAWarpGroupProduct: wgmma, sm_90a) on its own, on the GPU machine
# (Python with torch, NVRTC from the pip CUDA packages, no Swift); the CUDA source is read from the Swift file,
# so the kernel timed is the one in the tree. Each shape runs C = gelu_erf(A·B + bias) in float16, checked
# against float32 math by torch beside torch's own float16 result, then timed in a CUDA graph beside torch's
# addmm + in-place GELU and addmm alone.
# Use: python3 bench/kernels/product.py [--shapes 8192x3072x768,...] [--variants 256.4.0.1,128.6.1.2]
#   [--acts gelu,erff,none] [--file EDITED_COPY.swift]
#   (MxNxK; variant BN.STAGES.TB.WM: tile columns, shared-memory buffers, B as [N,K] (0) or [K,N] (1),
#   64-row instructions per warpgroup: 1 cooperative, 2 ping-pong)
import argparse, ctypes, re
import torch
from attention import swift_string, compile_cubin, graph_time

PATH = 'Sources/KilnCUDA/Kernels/CUDAWarpGroupProduct.swift'


def instruction(n, ptx):
    """The Swift `CUDAWarpGroupProduct.instruction(n:ptx:)`, written again here."""
    count = n // 2
    registers = ', '.join(f'%{i}' for i in range(count))
    outputs = ', '.join(f'"+f"(d[{i}])' for i in range(count))
    return (f'template <int TB> __device__ __forceinline__ void kiln_wgmma_n{n}(float* d, u64 a, u64 b) {{\n'
            f'    asm volatile("{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{count + 2}, 0;\\n"\n'
            f'        "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ptx}.{ptx} {{{registers}}}, "\n'
            f'        "%{count}, %{count + 1}, p, 1, 1, 0, %{count + 3};\\n}}\\n"\n'
            f'        : {outputs}\n'
            f'        : "l"(a), "l"(b), "r"(1), "n"(TB));\n}}\n')


def shared_bytes(bn, stages):
    return (128 + bn) * 64 * 2 * stages + 1024 + 16 * stages + 16 + 8 * bn + 8 * 16 * 144


def tensor_map(cuda, tensor, box):
    """A 2-D TMA map of a row-major float16 matrix with the 128-byte swizzle; box = (inner, outer) elements."""
    rows, columns = tensor.shape
    raw = ctypes.create_string_buffer(128 + 64)
    address = (ctypes.addressof(raw) + 63) // 64 * 64
    Dims64, Dims32 = ctypes.c_uint64 * 2, ctypes.c_uint32 * 2
    rc = cuda.cuTensorMapEncodeTiled(
        ctypes.c_void_p(address), 6, 2, ctypes.c_void_p(tensor.data_ptr()), Dims64(columns, rows),
        (ctypes.c_uint64 * 1)(tensor.stride(0) * 2), Dims32(*box), Dims32(1, 1), 0, 3, 3, 0)
    assert rc == 0, f'cuTensorMapEncodeTiled: {rc}'
    return (ctypes.c_uint8 * 128).from_buffer_copy(ctypes.string_at(address, 128)), raw


# The erf GELU through libdevice's erff (Kiln's before it had its own), to time beside the tree's.
ERFF = ('__device__ __forceinline__ float kiln_gelu_erf(float x) '
        '{ return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }\n')


def source(variants, act=6, erff=False, path=PATH):
    """Every variant's kernel, with `kiln_linalg_act` index `act` (6: erf GELU, 0: none) as its epilogue;
    `erff`: GELU through libdevice's erff instead of the prelude's."""
    prelude = swift_string('Sources/KilnCUDA/Lowering/CUDAPrelude.swift', 'text')
    if erff:
        prelude = re.sub(r'__device__ __forceinline__ float kiln_gelu_erf\(float x\) \{.*?\n\}\n', ERFF, prelude,
                         count=1, flags=re.S)
        assert 'erff(' in prelude, 'the prelude\'s kiln_gelu_erf was not found'
    activations = swift_string('Sources/KilnCUDA/Kernels/CUDALinearAlgebraEpilogue.swift', 'activationCode')
    code = swift_string(path, 'tensorMemory') + swift_string(path, 'code').replace('KILN_T', 'kiln_half')
    text = prelude + activations + ''.join(instruction(n, 'f16') for n in (128, 192, 256)) + code
    for bn, stages, tb, wm in variants:
        text += (f'extern "C" __global__ void __launch_bounds__(384, 1) kiln_wg_product_{bn}_{stages}_{tb}_{wm}('
                 'const __grid_constant__ KilnTensorMap mapA, const __grid_constant__ KilnTensorMap mapB, '
                 'const T* bias, T* C, int M, int N, int K, i64 ldc, float p0, float p1) {\n'
                 f'    kiln_wg_product<{bn}, {stages}, {tb}, {wm}, {act}>(&mapA, &mapB, bias, C, M, N, K, ldc, p0, p1);'
                 '\n}\n')
    return text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--shapes', default='8192x3072x768,12608x3072x768,8192x768x3072,8192x2304x768,1000x3072x768')
    parser.add_argument('--variants', default='256.4.0.1,192.5.0.1,128.6.0.2,128.6.1.2')
    parser.add_argument('--acts', default='gelu', help='epilogues, comma-separated: gelu (the prelude\'s), erff, none')
    parser.add_argument('--file', default=PATH, help='the Swift file to read the kernel from (an edited copy)')
    args = parser.parse_args()
    variants = [tuple(int(v) for v in text.split('.')) for text in args.variants.split(',')]
    acts = args.acts.split(',')
    torch.zeros(1, device='cuda')
    cuda = ctypes.CDLL('libcuda.so.1')
    major, minor = torch.cuda.get_device_capability()
    functions = {}
    for act in acts:
        cubin, log = compile_cubin(source(variants, 0 if act == 'none' else 6, act == 'erff', args.file), f'{major}{minor}a')
        module = ctypes.c_void_p()
        assert cuda.cuModuleLoadData(ctypes.byref(module), cubin) == 0
        for bn, stages, tb, wm in variants:
            name = f'kiln_wg_product_{bn}_{stages}_{tb}_{wm}'
            usage = re.search(rf"Compiling entry function '{name}'.*?(Used [^\n]*)", log, re.S)
            function = ctypes.c_void_p()
            assert cuda.cuModuleGetFunction(ctypes.byref(function), module, name.encode()) == 0
            assert cuda.cuFuncSetAttribute(function, 8, shared_bytes(bn, stages)) == 0
            functions[(act, bn, stages, tb, wm)] = function
            print(f'{name} {act}: {usage.group(1) if usage else "?"}')
        for line in log.splitlines():
            if 'wgmma' in line.lower() or 'warning' in line.lower():
                print(line)

    for shape in args.shapes.split(','):
        M, N, K = (int(v) for v in shape.split('x'))
        torch.manual_seed(0)
        a = torch.randn(M, K, device='cuda', dtype=torch.float16)
        w = (torch.randn(N, K, device='cuda') / K ** 0.5).half()
        bias = torch.randn(N, device='cuda', dtype=torch.float16)
        product = a.float() @ w.float().t() + bias.float()
        references = {'none': product, 'gelu': torch.nn.functional.gelu(product)}
        mine = torch.nn.functional.gelu(torch.addmm(bias, a, w.t()))
        torch_error = ((mine.float() - references['gelu']).norm() / references['gelu'].norm()).item()
        out = torch.empty(M, N, device='cuda', dtype=torch.float16)
        wt = w.t().contiguous()
        addmm = graph_time(lambda: torch.addmm(bias, a, w.t(), out=out))
        both = graph_time(lambda: (torch.addmm(bias, a, w.t(), out=out), torch.ops.aten.gelu_(out)))
        flops = 2 * M * N * K
        print(f'{M}x{N}x{K}: torch addmm {addmm:7.1f} us ({flops / addmm / 1e6:5.0f} TFLOP/s), addmm + gelu '
              f'{both:7.1f} us, torch rel. error {torch_error:.2e}')
        for (act, bn, stages, tb, wm), function in functions.items():
            reference = references['none' if act == 'none' else 'gelu']
            b = wt if tb else w
            out.zero_()
            map_a, keep_a = tensor_map(cuda, a, (64, 128))
            map_b, keep_b = tensor_map(cuda, b, (64, 64) if tb else (64, bn))
            values = [map_a, map_b] + [ctypes.c_uint64(t.data_ptr()) for t in (bias, out)]
            values += [ctypes.c_int(x) for x in (M, N, K)] + [ctypes.c_int64(N), ctypes.c_float(0), ctypes.c_float(0)]
            pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(x), ctypes.c_void_p) for x in values])
            tiles = (N + bn - 1) // bn * ((M + 127) // 128)
            blocks = min(tiles, torch.cuda.get_device_properties(0).multi_processor_count)

            def run():
                stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
                assert cuda.cuLaunchKernel(function, blocks, 1, 1, 384, 1, 1, shared_bytes(bn, stages),
                                           stream, pointers, None) == 0

            run()
            torch.cuda.synchronize()
            error = ((out.float() - reference).norm() / reference.norm()).item()
            kiln = graph_time(run)
            print(f'    kiln {bn}.{stages}.{tb}.{wm} {act:5}: {kiln:7.1f} us ({flops / kiln / 1e6:5.0f} TFLOP/s), '
                  f'rel. error {error:.2e}{"  WRONG" if not error < 2 * torch_error + 1e-3 else ""}')


if __name__ == '__main__':
    main()
