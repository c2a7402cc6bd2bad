"""Writes DIR/NAME.calibration.npz for each NAME: 32 random N(0,1) images shaped like the input of the
reference file DIR/NAME.io_b1.npz that baselines.py --export wrote (its models take N(0,1) inputs).

    python3 random-calibration.py DIR NAME [NAME ...]
"""
import sys

import numpy as np

folder = sys.argv[1]
for name in sys.argv[2:]:
    reference = np.load(f"{folder}/{name}.io_b1.npz")
    key = [k for k in reference.files if k.startswith("input__")][0]
    images = np.random.default_rng(1).standard_normal((32,) + reference[key].shape[1:]).astype(np.float32)
    np.savez(f"{folder}/{name}.calibration.npz", **{key: images})
