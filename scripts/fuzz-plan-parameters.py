#!/usr/bin/env python3
"""Mutates the layer parameters inside plans and runs them: every run must succeed or exit 1, never trap.

For each sampled ONNX conformance case: `kiln build --device cpu` writes a plan; then, a number of times, one to
three digits of the plan's metadata (layer parameters, types, names: the protobuf body) are replaced by other
digits, the checksum is recomputed so the damage reaches the decoders and kernels, and `kiln run` runs the
plan on random inputs. Plans that make kiln exit with anything but 0 or 1 are kept as crashN.kiln.

  usage: scripts/fuzz-plan-parameters.py KILN SUITE_DIR OUT_DIR [SEED] [CASES] [MUTATIONS]
"""
import glob
import os
import random
import struct
import subprocess
import sys


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main() -> int:
    kiln, suite, out = sys.argv[1:4]
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 7
    count = int(sys.argv[5]) if len(sys.argv) > 5 else 60
    mutations = int(sys.argv[6]) if len(sys.argv) > 6 else 15
    os.makedirs(out, exist_ok=True)
    random.seed(seed)
    cases = sorted(glob.glob(os.path.join(suite, "node", "*", "model.onnx")))
    crashes = []
    for model in random.sample(cases, min(count, len(cases))):
        plan = os.path.join(out, "plan.kiln")
        if subprocess.run([kiln, "build", model, "-o", plan, "--device", "cpu"], capture_output=True).returncode:
            continue
        data = open(plan, "rb").read()
        header = struct.unpack_from("<Q", data, 8)[0]
        body_start = 16 + header + 8
        body = struct.unpack_from("<Q", data, 16 + header)[0]
        digits = [i for i in range(body_start, body_start + body) if chr(data[i]).isdigit()]
        for _ in range(mutations if digits else 0):
            mutated = bytearray(data[:-8])
            for _ in range(random.randint(1, 3)):
                mutated[random.choice(digits)] = ord(random.choice("0123456789"))
            mutated += struct.pack("<Q", fnv1a64(bytes(mutated)))
            path = os.path.join(out, "mutated.kiln")
            open(path, "wb").write(mutated)
            result = subprocess.run([kiln, "run", path], capture_output=True, timeout=120)
            if result.returncode not in (0, 1):
                crashes.append(os.path.basename(os.path.dirname(model)))
                os.rename(path, os.path.join(out, f"crash{len(crashes)}.kiln"))
                break
    print(f"{len(crashes)} crashing cases: {', '.join(crashes) or 'none'}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
