#!/usr/bin/env python3
"""PyTorch reference for `npm run bench`: the same models, batch sizes and optimizer as
bench/bench.ts, on this CPU. Run with Debian's python3-torch:

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/pytorch_reference.py --threads 2

Prints one JSON object (samples/s per case, matmul GFLOP/s) on stdout. With --serve, measures
the case named on each line of stdin and answers one JSON line each (how the bench runs it).
"""
import argparse
import gzip
import json
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(nn.Flatten(), *layers)


def cnn():
    # conv32-conv64-maxpool-dense128-dense10 on 1×28×28, 'valid' 3×3 convs.
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(12 * 12 * 64, 128), nn.ReLU(), nn.Linear(128, 10))


def quickstart_teacher():
    # src/experiment/quickstart.ts's teacher (the zoo's `cnn`, blocks [32, 64], dense 256, no
    # dropout): conv-BN-ReLU-maxpool twice, 'same' 3×3 convs without bias, on 1×28×28.
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1),
                nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*block(1, 32), *block(32, 64), nn.Flatten(), nn.Linear(7 * 7 * 64, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def quickstart_student():
    # the quickstart's student: the teacher's CNN at width 0.25 with the zoo's dropout 0.25 after each
    # pool and after the dense layer's ReLU
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1),
                nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25)]
    return nn.Sequential(*block(1, 8), *block(8, 16), nn.Flatten(), nn.Linear(7 * 7 * 16, 64), nn.ReLU(),
                         nn.Dropout(0.25), nn.Linear(64, 10))


def timed(step, batch, seconds, warmup=3):
    for _ in range(warmup):
        step()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def train_step(model, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def kd_step(teacher, student, x, y, temperature=4.0, alpha=0.9):
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    teacher.eval()

    def step():
        with torch.no_grad():
            t = teacher(x)
        s = student(x)
        kl = F.kl_div(F.log_softmax(s / temperature, 1), F.log_softmax(t / temperature, 1),
                      reduction='batchmean', log_target=True)
        loss = alpha * temperature ** 2 * kl + (1 - alpha) * F.cross_entropy(s, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def kd_epoch(data_dir, batch, with_cache):
    """One offline-KD epoch over the Fashion-MNIST training set (MLP teacher → student)."""
    images = read_idx(f'{data_dir}/train-images-idx3-ubyte.gz').astype(np.float32) / 255
    labels = read_idx(f'{data_dir}/train-labels-idx1-ubyte.gz').astype(np.int64)
    x_all = torch.from_numpy(images).reshape(-1, 784)
    y_all = torch.from_numpy(labels)
    torch.manual_seed(1)
    teacher = mlp([784, 1200, 1200, 10]).eval()
    student = mlp([784, 800, 800, 10])
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    cached = None
    if with_cache:
        with torch.no_grad():
            cached = torch.cat([teacher(x_all[i:i + 1024]) for i in range(0, len(x_all), 1024)])
    t0 = time.perf_counter()
    order = torch.randperm(len(x_all))
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        x, y = x_all[idx], y_all[idx]
        if cached is None:
            with torch.no_grad():
                t = teacher(x)
        else:
            t = cached[idx]
        s = student(x)
        kl = F.kl_div(F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1), reduction='batchmean', log_target=True)
        loss = 0.9 * 16 * kl + 0.1 * F.cross_entropy(s, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(x_all) / (time.perf_counter() - t0)


def measure(case, seconds, data_dir):
    """One case's figure: samples/s, or GFLOP/s for matmulGflops (models built anew, seeded)."""
    torch.manual_seed(0)
    x = torch.rand(128, 1, 28, 28)
    y = torch.randint(0, 10, (128,))
    xc, yc = x[:64], y[:64]
    if case == 'matmulGflops':
        a = torch.randn(1024, 1024)
        b = torch.randn(1024, 1024)
        return 2 * 1024 ** 3 * timed(lambda: torch.mm(a, b), 1, seconds) / 1e9
    if case == 'mlpTrain':
        return timed(train_step(mlp([784, 1200, 1200, 10]), x, y), 128, seconds)
    if case == 'cnnTrain':
        return timed(train_step(cnn(), xc, yc), 64, seconds)
    if case == 'qsTeacherTrain':
        return timed(train_step(quickstart_teacher(), xc, yc), 64, seconds)
    if case == 'qsStudentTrain':
        return timed(train_step(quickstart_student(), xc, yc), 64, seconds)
    if case == 'kdStep':
        return timed(kd_step(mlp([784, 1200, 1200, 10]), mlp([784, 800, 800, 10]), x, y), 128, seconds)
    if case in ('kdEpoch', 'kdEpochCached'):
        return kd_epoch(data_dir, 128, with_cache=case == 'kdEpochCached')
    raise ValueError(f'unknown case {case}')


STEP_CASES = ['matmulGflops', 'mlpTrain', 'cnnTrain', 'qsTeacherTrain', 'qsStudentTrain', 'kdStep']


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--data', default='/usr/share/datasets/fashion-mnist')
    parser.add_argument('--skip-epochs', action='store_true')
    parser.add_argument('--serve', action='store_true',
                        help='measure the case named on each line of stdin; answer one JSON line each')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.serve:
        # the bench asks for each case right after measuring its own, so that both are measured
        # within seconds of each other: this VM's speed drifts by up to 2x over minutes
        # a fresh process's first case runs at a third of its speed (thread pool, allocator): warm up
        for case in STEP_CASES:
            measure(case, 0.3, args.data)
        print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            case = line.strip()
            if case:
                print(json.dumps({case: measure(case, args.seconds, args.data)}), flush=True)
        return
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads()}
    cases = STEP_CASES + ([] if args.skip_epochs else ['kdEpoch', 'kdEpochCached'])
    for case in cases:
        out[case] = measure(case, args.seconds, args.data)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
