# Checks and times Kiln's tiled transpose (CUDAShapeKernels.transpose, float32) on its own, on the GPU machine
# (Python with torch, NVRTC from the pip CUDA packages, no Swift): the CUDA source is read from the Swift file,
# so the kernel timed is the one in the tree. Each shape is one of ResNet-50's layout transposes at batch 64
# (NxHxWxC, both directions: channels-last to channels-first and back), checked against torch's permute, then
# timed in a CUDA graph beside torch's permute().contiguous() and a plain copy of the same bytes (the memory
# bandwidth bound). --files compares kernels from several Swift files (e.g. an earlier version saved with
# `git show REV:PATH > FILE`).
# Use: python3 bench/kernels/transpose.py [--shapes 64x56x56x64,...] [--files A.swift,B.swift]
import argparse, ctypes, re, textwrap
import torch
from attention import ROOT, swift_string, compile_cubin, graph_time, dims
import os

PATH = 'Sources/KilnCUDA/Kernels/CUDAShapeKernels.swift'
SHAPES = '64x56x56x64,64x28x28x128,64x14x14x256,64x7x7x512,64x224x224x3'


def transpose_source(path):
    """The kernel text of `CUDAShapeKernels.transpose(unit: 4, batchRank: 1)` in the Swift file `path`."""
    text = open(path if os.path.isabs(path) else os.path.join(ROOT, path)).read()
    function = text[text.index('static func transpose(unit'):]
    body = re.search(r'unitDeclaration\(unit\) \+ """\n(.*?)\n\s*"""', function, re.S).group(1)
    code = textwrap.dedent(body).replace('\\\\', '\\')
    return 'typedef unsigned int T;\n' + code.replace('\\(name)', 'kiln_transpose').replace('\\(batchRank)', '1')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--shapes', default=SHAPES)
    parser.add_argument('--files', default=PATH, help='Swift files holding the kernel, one variant each')
    args = parser.parse_args()
    torch.zeros(1, device='cuda')
    cuda = ctypes.CDLL('libcuda.so.1')
    major, minor = torch.cuda.get_device_capability()
    prelude = swift_string('Sources/KilnCUDA/Lowering/CUDAPrelude.swift', 'text')
    functions = []
    for file in args.files.split(','):
        cubin, _ = compile_cubin(prelude + transpose_source(file), f'{major}{minor}')
        module = ctypes.c_void_p()
        assert cuda.cuModuleLoadData(ctypes.byref(module), cubin) == 0
        function = ctypes.c_void_p()
        assert cuda.cuModuleGetFunction(ctypes.byref(function), module, b'kiln_transpose') == 0
        functions.append((module, function))
    print(torch.cuda.get_device_name(), 'microseconds (median of CUDA-graph replays), GB/s moved (read + write)')
    header = ['shape', 'direction'] + [f'kiln{i}' for i in range(len(functions))] + ['torch', 'copy']
    print(' '.join(f'{h:>16}' for h in header))
    totals = [0.0] * (len(functions) + 2)
    for shape in args.shapes.split(','):
        n, h, w, c = (int(v) for v in shape.split('x'))
        hw = h * w
        for direction in ('nhwc>nchw', 'nchw>nhwc'):
            # Source [n, a, b] with b contiguous, output [n, b, a]: the tile's rows are b (source stride 1).
            a, b = (hw, c) if direction == 'nhwc>nchw' else (c, hw)
            x = torch.randn(n, a, b, device='cuda')
            out = torch.empty(n, b, a, device='cuda')
            want = x.permute(0, 2, 1).contiguous()
            tiles = n * ((b + 31) // 32) * ((a + 31) // 32)
            row = [shape, direction]
            for i, (_, function) in enumerate(functions):
                values = [ctypes.c_uint64(out.data_ptr()), ctypes.c_uint64(x.data_ptr()), ctypes.c_int64(b),
                          ctypes.c_int64(a), ctypes.c_int64(b), ctypes.c_int64(a), ctypes.c_int64(0),
                          dims(n), dims(a * b), dims(a * b), ctypes.c_int64(tiles)]
                pointers = (ctypes.c_void_p * len(values))(
                    *[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values])

                def run():
                    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
                    assert cuda.cuLaunchKernel(function, min(tiles, 132 * 16), 1, 1, 32, 8, 1, 0, stream,
                                               pointers, None) == 0
                out.zero_()
                run()
                torch.cuda.synchronize()
                assert torch.equal(out, want), f'{shape} {direction}: kiln{i} differs from torch'
                t = graph_time(run)
                totals[i] += t
                row.append(t)
            copy = torch.empty_like(x)
            for j, run in enumerate((lambda: want.copy_(x.permute(0, 2, 1)), lambda: copy.copy_(x))):
                t = graph_time(run)
                totals[len(functions) + j] += t
                row.append(t)
            moved = 2 * x.numel() * 4
            print(' '.join(f'{v:>16}' for v in row[:2]) + ' ' +
                  ' '.join(f'{t:9.1f} {moved / t / 1e3:5.0f}' for t in row[2:]))
    print(f'{"sum":>16} {"":>16} ' + ' '.join(f'{t:9.1f}      ' for t in totals))


if __name__ == '__main__':
    main()
