# Times the first half of Kiln's chained int8 stem on its own, on the GPU machine (Python with torch, NVRTC
# from the pip CUDA packages, no Swift): `kiln_int8_patches_staged` (CUDAQuantizedProducts+Source.swift, read
# from the tree) writing ResNet-50's 7x7 stride-2 patches of an int8 NHWC batch as rows of 192 bytes, checked
# against torch's unfold. The second half, the 1x1 product over those rows, is `int8_conv.py --only stem.rows`.
# Use: python3 bench/kernels/int8_stem.py [--batch 64]
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--batch', type=int, default=64)
    args = parser.parse_args()
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


if __name__ == '__main__':
    main()
