#!/usr/bin/python3
"""Builds the ONNX fixture the teacher tests use: a tiny PyTorch CNN, exported to ONNX.

    apt-get install -y python3-torch      # Debian's PyTorch 1.13
    /usr/bin/python3 scripts/make-onnx-fixture.py

Writes, in test/fixtures/onnx/:
- tiny-cnn.onnx: input `input` [N,1,28,28] (NCHW, as PyTorch exports), outputs `logits`
  [N,10] and `features` [N,4,14,14] (after the pool: a tap), dynamic batch axis.
  Network: conv 3x3, 1->4, padding 1 -> relu -> maxpool 2 -> flatten (NCHW order) -> linear 784->10.
- tiny-rgb.onnx: input [N,3,8,8], output `logits` [N,5] (RgbCnn below): three channels, so
  the NHWC -> NCHW conversion is a real transpose.
- tiny-mlp.onnx: input [N,192] (3x8x8 flattened in NCHW order), output `logits` [N,5].
- <name>.weights.json for each: the weights in PyTorch layouts (conv OIHW, linear
  [out,in]), so a test can rebuild the network in TF.js; plus PyTorch's own logits for two
  deterministic probe inputs (`probe(k)` and `rgb(k)` below; the tests compute the same
  values).
Deterministic: fixed seed, CPU, float32. Running it again rewrites the same files.
"""
import json
import os

import numpy
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'onnx')


class TinyCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 14 * 14, 10)

    def forward(self, x):
        features = self.pool(torch.relu(self.conv(x)))
        return self.fc(torch.flatten(features, 1)), features


class RgbCnn(nn.Module):
    """conv 3x3, 3->2, padding 1 -> relu -> flatten (NCHW order) -> linear 128->5, on 3x8x8."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, kernel_size=3, padding=1)
        self.fc = nn.Linear(2 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class RgbMlp(nn.Module):
    """linear 192->5 on flat 3x8x8 samples (flattened in NCHW order, as PyTorch does)."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(x)


def probe(k):
    """A Fashion-MNIST-shaped input whose pixels are a formula the TS tests repeat:
    pixel i (row-major over 28x28) = ((i * (7 + 2k) + 13k) mod 256) / 255."""
    i = torch.arange(28 * 28, dtype=torch.int64)
    return (((i * (7 + 2 * k) + 13 * k) % 256).to(torch.float32) / 255.0).reshape(1, 1, 28, 28)


def export(model, name, sample, outputs, probes):
    path = os.path.join(OUT, name + '.onnx')
    torch.onnx.export(
        model, torch.zeros(1, *sample), path,
        input_names=['input'], output_names=outputs,
        dynamic_axes={n: {0: 'batch'} for n in ['input', *outputs]},
        opset_version=13, do_constant_folding=True)
    try:  # Debian's python3-onnx, when installed: a structural check of the file
        import onnx
        onnx.checker.check_model(onnx.load(path))
    except ImportError:
        pass
    with torch.no_grad():
        out = model(probes)
        logits = out[0] if isinstance(out, tuple) else out
    # Shortest decimal that reads back as the same float32: the JSON stays small.
    flat = lambda t: [float(repr(v)) for v in t.detach().reshape(-1).numpy().astype(numpy.float32)]
    weights = {'description': f'{name}.onnx weights in PyTorch layouts; see scripts/make-onnx-fixture.py'}
    for key, module in model.named_children():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            weights[key] = {'weightShape': list(module.weight.shape), 'weight': flat(module.weight),
                            'bias': flat(module.bias)}
    weights['probeLogits'] = [flat(row) for row in logits]
    with open(os.path.join(OUT, name + '.weights.json'), 'w') as f:
        json.dump(weights, f, separators=(',', ':'))
        f.write('\n')
    print(f'wrote {path} ({os.path.getsize(path)} bytes) and {name}.weights.json')


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240607)
    export(TinyCnn().eval(), 'tiny-cnn', (1, 28, 28), ['logits', 'features'],
           torch.cat([probe(0), probe(1)]))
    # Three channels, so NHWC -> NCHW is a real transpose (with one channel it is a reshape).
    rgb = lambda k: torch.arange(3 * 8 * 8, dtype=torch.float32).add(k).mul(0.37).sin().reshape(1, 3, 8, 8)
    export(RgbCnn().eval(), 'tiny-rgb', (3, 8, 8), ['logits'], torch.cat([rgb(0), rgb(1)]))
    export(RgbMlp().eval(), 'tiny-mlp', (3 * 8 * 8,), ['logits'],
           torch.cat([rgb(0), rgb(1)]).reshape(2, -1))


if __name__ == '__main__':
    main()
