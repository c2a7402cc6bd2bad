#!/usr/bin/env python3
"""Trains Kiln's default model: a small CNN on scikit-learn's bundled handwritten digits (8x8 images,
10 classes), exported to ONNX with a fixed test split and a calibration split.

    python3 scripts/train-digits.py [--out models/digits] [--epochs 60] [--seed 0]

Needs torch, scikit-learn, onnx and onnxruntime (nothing is downloaded: the digits ship with
scikit-learn). Writes into OUT:
  model.onnx        opset 17, input `input` [N,1,8,8] float32 (pixels / 16), output `logits` [N,10]
  test.npz          input__input [360,1,8,8], output__logits (ONNX Runtime's FP32 outputs), labels int64
  calibration.npz   input__input [256,1,8,8], images of the training split
  training.json     the accuracy of the exported model on the test split, and the settings
Training runs on the CPU with a fixed seed, so a rerun gives the same model up to torch's version.
"""
import argparse
import json
import os

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="models/digits")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    import torch.nn as nn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=360, random_state=args.seed, stratify=labels)
    rng = np.random.default_rng(args.seed)
    calibration = x_train[rng.choice(len(x_train), 256, replace=False)]

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    model = nn.Sequential(
        *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.2), nn.Linear(128, 10))

    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = (len(xt) + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=args.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(xt), 64):
            index = order[start:start + 64]
            batch = xt[index]
            # small random shifts so the model does not memorize pixel positions
            shift = torch.randint(-1, 2, (2,), generator=generator).tolist()
            batch = torch.roll(batch, shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(model(batch), yt[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1}: loss {total / len(xt):.4f}", flush=True)

    model.eval()
    with torch.no_grad():
        torch_accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.onnx")
    example = torch.from_numpy(x_test[:1])
    torch.onnx.export(model, example, path, dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=True)

    import onnx
    import onnxruntime
    onnx.checker.check_model(onnx.load(path))
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"input": x_test})[0]
    accuracy = float((logits.argmax(1) == y_test).mean())
    np.savez(os.path.join(args.out, "test.npz"), input__input=x_test, output__logits=logits.astype(np.float32),
             labels=y_test)
    np.savez(os.path.join(args.out, "calibration.npz"), input__input=calibration)
    report = {"test_images": len(x_test), "calibration_images": len(calibration), "epochs": args.epochs,
              "seed": args.seed, "torch": torch.__version__, "onnx_runtime_top1": accuracy,
              "torch_top1": torch_accuracy}
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
