#!/usr/bin/env python3
"""Build Kiln's ONNX conformance suite from the pinned onnx wheel.

usage: generate_suite.py OUT

Normally run through make-suite.sh, which provides a Python environment with
the exact pins of requirements.txt (onnx 1.23.2, numpy 2.4.6, ...).

What ends up in OUT (2,033 cases):

  node/               1,884 cases from onnx.backend.test.case.node: the
                      collector runs every export() of every operator test
                      class (numpy is seeded with 0 before each export, by
                      onnx's exporter metaclass) and this script writes the
                      model and data protos itself.
  light/              9 small-weight model-zoo CNNs shipped in the wheel.  The
                      input is made the way onnx's test runner makes it
                      (arange(n) / n, float32, unknown dims = 1); the expected
                      output is the one shipped in the wheel.
  simple/             23 cases, copied from the wheel.
  pytorch-converted/  82 cases, copied from the wheel.
  pytorch-operator/   35 cases, copied from the wheel.
  SUMMARY.json        versions, case/file/byte counts per group
  MANIFEST.sha256     sha256 of every file under the groups, sorted by path

Per case:

  <group>/<case>/model.onnx
  <group>/<case>/test_data_set_<N>/input_<K>.pb    K-th graph input that is
                                                   not an initializer
  <group>/<case>/test_data_set_<N>/output_<K>.pb   K-th graph output
  <group>/<case>/data.json      only when rtol/atol are not 1e-3/1e-7
                                (light/test_densenet121: rtol 2e-3)

Tensors are TensorProto; sequence, optional and map values are SequenceProto,
OptionalProto and MapProto, serialized with onnx.numpy_helper exactly like
onnx's own generate-data tool.  The output is byte-for-byte reproducible for a
given set of pins (the script re-executes itself with PYTHONHASHSEED=0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import warnings

DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-7

# Case counts for the pinned onnx wheel; anything else means the pins drifted.
EXPECTED_CASES = {
    "node": 1884,
    "light": 9,
    "simple": 23,
    "pytorch-converted": 82,
    "pytorch-operator": 35,
}
GROUPS = list(EXPECTED_CASES)
COPIED_GROUPS = ["simple", "pytorch-converted", "pytorch-operator"]


def _ensure_fixed_hash_seed() -> None:
    # Some onnx helpers iterate over sets/dicts of strings; pin str hashing so
    # that nothing about the output can depend on the process.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])


# --------------------------------------------------------------------------
# Writing values


def _value_bytes(value, value_info) -> bytes:
    """Serialize one input/output value according to its graph value-info type."""
    import onnx
    from onnx import numpy_helper

    kind = value_info.type.WhichOneof("value")
    name = value_info.name
    if kind == "tensor_type":
        if isinstance(value, onnx.TensorProto):
            proto = value
        else:
            proto = numpy_helper.from_array(value, name)
    elif kind == "sequence_type":
        proto = numpy_helper.from_list(value, name)
    elif kind == "optional_type":
        proto = numpy_helper.from_optional(value, name)
    elif kind == "map_type":
        proto = numpy_helper.from_dict(value, name)
    else:
        raise TypeError(f"{name}: cannot serialize a value of type {kind}")
    return proto.SerializeToString()


def _put(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _put_tolerances(case_dir: str, rtol: float, atol: float, model_name: str | None = None) -> None:
    if (rtol, atol) == (DEFAULT_RTOL, DEFAULT_ATOL):
        return
    doc: dict[str, object] = {"rtol": rtol, "atol": atol}
    if model_name is not None:
        doc["model_name"] = model_name
    with open(os.path.join(case_dir, "data.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, sort_keys=True)
        f.write("\n")


def _non_initializer_inputs(model):
    initialized = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in initialized]


# --------------------------------------------------------------------------
# Groups


def make_node_group(root: str) -> int:
    import numpy as np

    from onnx.backend.test.case import node as node_cases

    np.random.seed(0)  # onnx's exporter also reseeds before every export()
    with warnings.catch_warnings():
        # The numpy references deliberately overflow/divide by zero in places.
        warnings.simplefilter("ignore")
        cases = list(node_cases.collect_testcases())

    seen: set[str] = set()
    for case in sorted(cases, key=lambda c: c.name):
        if case.name in seen:
            raise RuntimeError(f"duplicate node case {case.name}")
        seen.add(case.name)
        model = case.model
        case_dir = os.path.join(root, case.name)
        os.makedirs(case_dir)
        _put(os.path.join(case_dir, "model.onnx"), model.SerializeToString())
        graph_inputs = _non_initializer_inputs(model)
        for n, (inputs, outputs) in enumerate(case.data_sets):
            if len(inputs) != len(graph_inputs) or len(outputs) != len(model.graph.output):
                raise RuntimeError(f"{case.name}: data set {n} does not match the graph's inputs/outputs")
            ds = os.path.join(case_dir, f"test_data_set_{n}")
            os.makedirs(ds)
            for k, value in enumerate(inputs):
                _put(os.path.join(ds, f"input_{k}.pb"), _value_bytes(value, graph_inputs[k]))
            for k, value in enumerate(outputs):
                _put(os.path.join(ds, f"output_{k}.pb"), _value_bytes(value, model.graph.output[k]))
        _put_tolerances(case_dir, case.rtol, case.atol)
    return len(seen)


def _wheel_data() -> str:
    import onnx.backend.test

    return os.path.join(os.path.dirname(onnx.backend.test.__file__), "data")


def _runner_style_input(value_info):
    """The deterministic input onnx's runner feeds the light models."""
    import numpy as np

    from onnx import TensorProto

    tt = value_info.type.tensor_type
    if value_info.type.WhichOneof("value") != "tensor_type" or tt.elem_type != TensorProto.FLOAT:
        raise TypeError(f"light model input {value_info.name} is not a float tensor")
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim)
    count = np.prod(shape)
    return (np.arange(count).reshape(shape) / count).astype(np.float32)


def make_light_group(root: str) -> int:
    import onnx
    from onnx import numpy_helper
    from onnx.backend.test.case import model as model_cases

    light_dir = os.path.join(_wheel_data(), "light")
    real = sorted((c for c in model_cases.collect_testcases() if c.kind == "real"), key=lambda c: c.name)
    for case in real:
        src_model = os.path.join(light_dir, f"light_{case.model_name}.onnx")
        case_dir = os.path.join(root, case.name)
        ds = os.path.join(case_dir, "test_data_set_0")
        os.makedirs(ds)
        shutil.copyfile(src_model, os.path.join(case_dir, "model.onnx"))
        model = onnx.load(src_model)
        for k, vi in enumerate(_non_initializer_inputs(model)):
            # The runner serializes these without a tensor name; so do we.
            tensor = numpy_helper.from_array(_runner_style_input(vi))
            _put(os.path.join(ds, f"input_{k}.pb"), tensor.SerializeToString())
        for k in range(len(model.graph.output)):
            expected = os.path.join(light_dir, f"light_{case.model_name}_output_{k}.pb")
            if not os.path.isfile(expected):
                raise FileNotFoundError(expected)
            shutil.copyfile(expected, os.path.join(ds, f"output_{k}.pb"))
        _put_tolerances(case_dir, case.rtol, case.atol, case.model_name)
    return len(real)


def make_copied_group(root: str, group: str) -> int:
    src_root = os.path.join(_wheel_data(), group)
    count = 0
    for name in sorted(os.listdir(src_root)):
        src = os.path.join(src_root, name)
        if not os.path.isfile(os.path.join(src, "model.onnx")):
            continue
        dst = os.path.join(root, name)
        os.makedirs(dst)
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src)
            target = dst if rel == "." else os.path.join(dst, rel)
            os.makedirs(target, exist_ok=True)
            for fname in sorted(filenames):
                shutil.copyfile(os.path.join(dirpath, fname), os.path.join(target, fname))
        count += 1
    return count


# --------------------------------------------------------------------------
# Summary and manifest


def _files_under(base: str, group: str) -> list[str]:
    found = []
    for dirpath, _dirnames, filenames in os.walk(os.path.join(base, group)):
        for fname in filenames:
            found.append(os.path.relpath(os.path.join(dirpath, fname), base).replace(os.sep, "/"))
    return sorted(found)


def write_summary_and_manifest(out: str, counts: dict[str, int]) -> dict:
    import numpy as np

    import onnx

    summary: dict = {"onnx": onnx.__version__, "numpy": np.__version__, "groups": {}}
    manifest = []
    total_files = total_bytes = 0
    for group in GROUPS:
        files = _files_under(out, group)
        size = 0
        for rel in files:
            with open(os.path.join(out, rel), "rb") as f:
                data = f.read()
            size += len(data)
            manifest.append(f"{hashlib.sha256(data).hexdigest()}  {rel}")
        summary["groups"][group] = {"cases": counts[group], "files": len(files), "bytes": size}
        total_files += len(files)
        total_bytes += size
    summary["total"] = {"cases": sum(counts.values()), "files": total_files, "bytes": total_bytes}
    with open(os.path.join(out, "SUMMARY.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    manifest.sort(key=lambda line: line.split("  ", 1)[1])
    with open(os.path.join(out, "MANIFEST.sha256"), "w", encoding="utf-8") as f:
        f.write("\n".join(manifest) + "\n")
    return summary


# --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", help="suite folder; the group folders in it are replaced")
    args = parser.parse_args()

    _ensure_fixed_hash_seed()
    started = time.monotonic()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    # Build everything in a staging folder first so that a failed run leaves
    # the previous suite (if any) untouched.
    staging = os.path.join(out, ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    builders = {
        "node": make_node_group,
        "light": make_light_group,
        **{g: (lambda root, g=g: make_copied_group(root, g)) for g in COPIED_GROUPS},
    }
    counts: dict[str, int] = {}
    for group in GROUPS:
        root = os.path.join(staging, group)
        os.makedirs(root)
        t0 = time.monotonic()
        counts[group] = builders[group](root)
        print(f"  {group:<18} {counts[group]:>5} cases  ({time.monotonic() - t0:.1f} s)", flush=True)

    wrong = {g: (counts[g], n) for g, n in EXPECTED_CASES.items() if counts[g] != n}
    if wrong:
        for g, (got, want) in wrong.items():
            print(f"error: {g}: {got} cases, expected {want} (are the pins of requirements.txt installed?)")
        return 1

    for group in GROUPS:
        final = os.path.join(out, group)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(os.path.join(staging, group), final)
    os.rmdir(staging)

    summary = write_summary_and_manifest(out, counts)
    for group in GROUPS:
        g = summary["groups"][group]
        print(f"  {group:<18} {g['cases']:>5} cases {g['files']:>6} files {g['bytes'] / 1e6:8.2f} MB")
    t = summary["total"]
    print(f"  {'total':<18} {t['cases']:>5} cases {t['files']:>6} files {t['bytes'] / 1e6:8.2f} MB")
    print(f"suite written to {out} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
