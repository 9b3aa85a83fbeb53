#!/usr/bin/python3
"""PyTorch reference for tfjs-distill's parity cases (bench/parity/cases.json).

An independent re-implementation, in plain PyTorch (torch + numpy + stdlib), of what
tfjs-distill runs for each parity case, so the two accuracies can be compared:

- models: the zoo's `cnn` and `mlp` (src/models/cnn.ts, mlp.ts, common.ts), same layers,
  same layer names (used as taps), same parameter counts (`--self-test` checks them);
- knowledge terms: `ce`, `kd`, `fitnets`, `rkd` (src/knowledge/**), the same formulas;
- schemes: `offline` with the FitNets hint stage (src/schemes/offline.ts), `dml`,
  `ensemble` (src/schemes/online.ts, dml.ts, ensemble.ts), `born-again`, `byot` with its
  exits, `previous-epoch` (src/schemes/self.ts, born-again.ts, byot.ts, exits.ts,
  previous-epoch.ts), with the same phases: every phase (teacher, hint stage, warmup,
  generation, label-only twins…) is its own `fit` with a fresh Adam, its own cosine
  schedule over that phase, and data order / dropout re-seeded from the seed, as
  src/train/fit.ts does;
- teacher of kd / fitnets / rkd: the `teacherOnSubset` model trained here on the labels
  with the teacher seed (tfjs-distill: the run's first seed, src/experiment/teacher-sources.ts),
  then frozen and run in eval mode (src/teachers/layers.ts).

Deliberate PyTorch choices (the parity brief), each switchable to tfjs-distill's own:
  --init torch|glorot     PyTorch default init (default) | Glorot-uniform kernels, zero biases (tfjs)
  --bn torch|tfjs         BatchNorm2d momentum 0.1, eps 1e-5 (default) | momentum 0.01, eps 1e-3 (tfjs)
  --lr-granularity step|epoch   cosine per step (default) | per epoch (tfjs: trainer.ts sets the
                          rate at each epoch's start)
  --adam-eps 1e-8         (tfjs: 1e-7, the float32 backend epsilon)
  --tfjs-defaults         all four as tfjs-distill.

CLI:
  /usr/bin/python3 bench/parity/reference.py --case NAME --seed S --split SPLIT.json \
      [--quick] [--threads 2] [--data-dir /usr/share/datasets/fashion-mnist]
SPLIT.json: {"train": [rows], "validation": [rows], "testRows": N}. Stdout: one JSON line
{"case", "seed", "accuracy": {row: test accuracy}, "seconds"}; progress goes to stderr.
Step equivalence (bench/parity/steps.ts): --steps SPEC.json prints {"losses", "accuracy"}.
Testing only: --epochs N (students), --teacher-epochs N, --self-test (param counts).
"""
import argparse
import copy
import gzip
import hashlib
import json
import math
import os
import sys
import tempfile
import time

# Idle OpenMP threads sleep instead of spinning: with --threads 2 on a 2-core machine that is
# also busy with other work, spinning made an epoch ~12× slower (48.8 s vs 3.8 s measured).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANT_SEED_STRIDE = 7919  # src/experiment/run.ts: student variant k is seeded seed + 1000 + 7919·k


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Settings shared by every phase
# ---------------------------------------------------------------------------------------

class Settings:
    """Training settings of one case (optimizer, schedule, batch, numerics switches)."""

    def __init__(self, lr, batch_size, schedule, init, bn, lr_granularity, adam_eps):
        self.lr = lr
        self.batch_size = batch_size
        self.schedule = schedule  # 'cosine' | 'constant'
        self.init = init  # 'torch' | 'glorot'
        self.bn_momentum, self.bn_eps = (0.1, 1e-5) if bn == 'torch' else (0.01, 1e-3)
        self.lr_granularity = lr_granularity  # 'step' | 'epoch'
        self.adam_eps = adam_eps

    def rate(self, step, steps_per_epoch, epochs):
        """The learning rate of a step (0-based) of a phase of `epochs` epochs."""
        if self.schedule != 'cosine':
            return self.lr
        if self.lr_granularity == 'epoch':
            return 0.5 * self.lr * (1 + math.cos(math.pi * (step // steps_per_epoch) / epochs))
        return 0.5 * self.lr * (1 + math.cos(math.pi * step / (epochs * steps_per_epoch)))


def init_module(module, settings):
    """--init glorot: Glorot-uniform kernels and zero biases (tfjs-distill's builders); else keep torch's."""
    if settings.init != 'glorot':
        return module
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


# ---------------------------------------------------------------------------------------
# Models (src/models/cnn.ts, mlp.ts)
# ---------------------------------------------------------------------------------------

class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's 'same' padding (extra row/column at the end when odd), no bias."""

    def __init__(self, cin, cout, kernel, stride=1):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, bias=False)

    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        pads = []
        for size in x.shape[-2:]:
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, None, self.stride, (top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, None, self.stride)


class FlattenNHWC(nn.Module):
    """tfjs flattens channels-last; flatten in that order (no effect on accuracy, kept for fidelity)."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


class Sequence(nn.Module):
    """A chain of named layers; `forward` returns the logits and the requested taps by layer name."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleDict(layers)

    def forward(self, x, taps=(), until=None):
        out = {}
        for name, layer in self.layers.items():
            x = layer(x)
            if name in taps:
                out[name] = x
            if name == until:
                return x
        return x, out

    def tap_shape(self, name, input_shape=(1, 28, 28)):
        with torch.no_grad():
            was = self.training
            self.eval()
            y = self(torch.zeros(1, *input_shape), until=name)
            self.train(was)
        return tuple(y.shape[1:])


def units(n, width):
    return max(1, int(math.floor(n * width + 0.5)))  # JS Math.round


def build_cnn(settings, width=1, blocks=(32, 64), convsPerBlock=2, dense=256, dropout=0.25,
              in_channels=1, hw=28, classes=10):
    layers = []
    c, size = in_channels, hw
    for b, filters in enumerate(blocks, start=1):
        for i in range(1, convsPerBlock + 1):
            f = units(filters, width)
            layers += [(f'block{b}_conv{i}', SameConv2d(c, f, 3)),
                       (f'block{b}_conv{i}_bn', nn.BatchNorm2d(f, eps=settings.bn_eps, momentum=settings.bn_momentum)),
                       (f'block{b}_conv{i}_relu', nn.ReLU())]
            c = f
        layers.append((f'block{b}_pool', nn.MaxPool2d(2, 2, ceil_mode=True)))  # tfjs padding 'same'
        size = math.ceil(size / 2)
        if dropout > 0:
            layers.append((f'block{b}_drop', nn.Dropout(dropout)))
    d = units(dense, width)
    layers += [('flatten', FlattenNHWC()), ('fc', nn.Linear(c * size * size, d)), ('features', nn.ReLU())]
    if dropout > 0:
        layers.append(('fc_drop', nn.Dropout(dropout)))
    layers.append(('logits', nn.Linear(d, classes)))
    return init_module(Sequence(layers), settings)


def build_mlp(settings, hidden=(256, 128), dropout=0, width=1, in_features=784, classes=10):
    layers = [('flatten' if hidden else 'features', FlattenNHWC())]
    n = in_features
    for i, h in enumerate(hidden, start=1):
        u = units(h, width)
        last = i == len(hidden)
        layers += [(f'fc{i}', nn.Linear(n, u)), ('features' if last else f'fc{i}_relu', nn.ReLU())]
        if dropout > 0:
            layers.append((f'fc{i}_drop', nn.Dropout(dropout)))
        n = u
    layers.append(('logits', nn.Linear(n, classes)))
    return init_module(Sequence(layers), settings)


def build_model(node, settings, init_seed):
    """A zoo node {key, kwargs} with its initial weights drawn from `init_seed`."""
    torch.manual_seed(init_seed)
    kwargs = dict(node.get('kwargs', {}))
    if node['key'] == 'cnn':
        return build_cnn(settings, **kwargs)
    if node['key'] == 'mlp':
        return build_mlp(settings, **kwargs)
    raise SystemExit(f'reference.py: model {node["key"]} is not implemented')


def param_count(model):
    """Trainable parameters + BN moving statistics (as tfjs countParams)."""
    n = sum(p.numel() for p in model.parameters())
    n += sum(b.numel() for name, b in model.named_buffers() if not name.endswith('num_batches_tracked'))
    return n


class ExitHead(nn.Module):
    """An early exit (src/schemes/exits.ts): after a map, k×k conv (stride s, 'same', no bias) →
    BN → ReLU → global average pool = `exit{i}_features` → linear logits; after a vector,
    dense → ReLU = features → logits. Width: the size of the network's `features`."""

    def __init__(self, in_shape, width, classes, settings, kernel=3, stride=2):
        super().__init__()
        self.is_map = len(in_shape) == 3
        if self.is_map:
            self.conv = SameConv2d(in_shape[0], width, kernel, stride)
            self.bn = nn.BatchNorm2d(width, eps=settings.bn_eps, momentum=settings.bn_momentum)
        else:
            self.fc = nn.Linear(in_shape[0], width)
        self.logits = nn.Linear(width, classes)

    def forward(self, x):
        if self.is_map:
            f = F.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        else:
            f = F.relu(self.fc(x))
        return self.logits(f), f


class ExitModel(nn.Module):
    """input → the network's layers up to `after` → the head: an early-exit classifier of its own
    (evaluation). Training branches the heads off one forward pass of the network (byot_phase)."""

    def __init__(self, net, after, head):
        super().__init__()
        self.head = head
        self.after = after
        self._net = [net]  # shared, not registered (its parameters belong to the network)

    def forward(self, x):
        return self.head(self._net[0](x, until=self.after))


def attach_exits(net, specs, settings, init_seed, feature_layer='features'):
    torch.manual_seed(init_seed)
    width = int(np.prod(net.tap_shape(feature_layer)))
    exits = []
    for spec in specs:
        head = ExitHead(net.tap_shape(spec['after']), spec.get('channels', width), 10, settings,
                        spec.get('kernelSize', 3), spec.get('stride', 2))
        exits.append(ExitModel(net, spec['after'], init_module(head, settings)))
    return exits


# ---------------------------------------------------------------------------------------
# Knowledge terms (src/knowledge/**)
# ---------------------------------------------------------------------------------------

def kl_batchmean(log_p, log_q):
    """Batch mean of Σ_k p_k (log p_k − log q_k) (response/common.ts klDiv)."""
    return (log_p.exp() * (log_p - log_q)).sum(1).mean()


def huber(d):
    a = d.abs()
    q = a.clamp(max=1)
    return 0.5 * q * q + (a - q)


def distance_potential(x):
    """RKD ψ_D (relation/rkd.ts): pairwise distances / mean positive distance, 0 on the diagonal."""
    sq = (x * x).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * x @ x.t()
    off = 1 - torch.eye(x.shape[0], dtype=x.dtype)
    d = d2.clamp(min=1e-12).sqrt() * off
    positive = (d > 0).sum().clamp(min=1).to(x.dtype)
    return d / (d.sum() / positive)


def angle_potential(x):
    """RKD ψ_A: [B, B, B], (i, j, k) = cos of the angle at x_i between x_j and x_k."""
    e = x[None, :, :] - x[:, None, :]
    e = e / (e * e).sum(-1, keepdim=True).clamp(min=1e-24).sqrt()
    return e @ e.transpose(1, 2)


class Term:
    student_taps = ()
    teacher_taps = ()
    needs_teacher = True
    stage = 'joint'
    hint_epochs = None

    def prepare(self, student, teacher_shapes, settings):
        pass

    def parameters(self):
        return []


class CeTerm(Term):
    needs_teacher = False

    def __init__(self, labelSmoothing=0.0):
        self.eps = labelSmoothing

    def __call__(self, s, y, t=None, s_taps=None, t_taps=None):
        return F.cross_entropy(s, y, label_smoothing=self.eps)


class KdTerm(Term):
    def __init__(self, temperature=4.0, alpha=0.9):
        self.T, self.alpha = temperature, alpha

    def __call__(self, s, y, t, s_taps=None, t_taps=None):
        T, a = self.T, self.alpha
        loss = 0
        if a != 0:
            loss = a * T * T * kl_batchmean(F.log_softmax(t / T, 1), F.log_softmax(s / T, 1))
        if a != 1:
            loss = loss + (1 - a) * F.cross_entropy(s, y)
        return loss


class FitnetsTerm(Term):
    """β · mean (Φ(f_s) − f_t)²; Φ a 1×1 conv (+bias) when channels differ, identity when equal."""

    def __init__(self, student='features', teacher='features', loss='mse', beta=100.0, stage='joint',
                 hintEpochs=None, seed=0):
        if loss != 'mse':
            raise SystemExit('reference.py: only fitnets loss mse is implemented')
        self.pair = (student, teacher)
        self.student_taps, self.teacher_taps = (student,), (teacher,)
        self.beta, self.stage, self.hint_epochs, self.seed = beta, stage, hintEpochs, seed
        self.adapter = None

    def prepare(self, student_shape, teacher_shape, settings):
        if tuple(student_shape) == tuple(teacher_shape):
            self.adapter = nn.Identity()
            return
        if len(student_shape) == 1 and len(teacher_shape) == 1:
            adapter = nn.Linear(student_shape[0], teacher_shape[0])
        elif len(student_shape) == 3 and student_shape[1:] == teacher_shape[1:] and student_shape[0] != teacher_shape[0]:
            adapter = nn.Conv2d(student_shape[0], teacher_shape[0], 1)
        else:
            raise SystemExit(f'reference.py: fitnets adapter {student_shape} → {teacher_shape} not implemented')
        torch.manual_seed(self.seed)
        self.adapter = init_module(adapter, settings)

    def parameters(self):
        return list(self.adapter.parameters()) if self.adapter is not None else []

    def __call__(self, s, y, t, s_taps, t_taps):
        fs, ft = s_taps[self.pair[0]], t_taps[self.pair[1]]
        return self.beta * ((self.adapter(fs) - ft) ** 2).mean()


class RkdTerm(Term):
    def __init__(self, student='features', teacher='features', distanceWeight=25.0, angleWeight=50.0):
        self.pair = (student, teacher)
        self.student_taps, self.teacher_taps = (student,), (teacher,)
        self.wd, self.wa = distanceWeight, angleWeight

    def __call__(self, s, y, t, s_taps, t_taps):
        xs = (s if self.pair[0] == 'logits' else s_taps[self.pair[0]]).flatten(1)
        xt = (t if self.pair[1] == 'logits' else t_taps[self.pair[1]]).flatten(1)
        loss = 0
        if self.wd != 0:
            loss = self.wd * huber(distance_potential(xs) - distance_potential(xt)).mean()
        if self.wa != 0:
            loss = loss + self.wa * huber(angle_potential(xs) - angle_potential(xt)).mean()
        return loss


class PskdTerm(Term):
    """PS-KD (src/knowledge/response/pskd.ts): (1 − α_e)·CE(y, s) + α_e·CE(softmax(t), s),
    α_e = α_T · min(e + 1, K) / K at the start of epoch e (0-based)."""

    def __init__(self, alpha=0.8, rampEpochs=10):
        self.alpha_t, self.ramp = alpha, rampEpochs
        self.on_epoch_begin(0)

    def on_epoch_begin(self, e):
        self.alpha = self.alpha_t * min(e + 1, self.ramp) / self.ramp

    def __call__(self, s, y, t, s_taps=None, t_taps=None):
        a = self.alpha
        loss = 0
        if a != 0:
            loss = a * -(F.softmax(t, 1) * F.log_softmax(s, 1)).sum(1).mean()
        if a != 1:
            loss = loss + (1 - a) * F.cross_entropy(s, y)
        return loss


TERMS = {'ce': CeTerm, 'kd': KdTerm, 'fitnets': FitnetsTerm, 'rkd': RkdTerm, 'pskd': PskdTerm}


def create_terms(knowledge):
    """Fresh (term, weight) pairs from the case's `knowledge` list."""
    out = []
    for k in knowledge:
        if k['key'] not in TERMS:
            raise SystemExit(f'reference.py: knowledge term {k["key"]} is not implemented')
        out.append((TERMS[k['key']](**k.get('kwargs', {})), k.get('weight', 1.0)))
    return out


def taps_of(terms, side):
    return tuple(sorted({n for term, _ in terms for n in getattr(term, f'{side}_taps') if n != 'logits'}))


def terms_loss(terms, s, y, sources, s_taps=None):
    """Σ_terms weight · term; a term needing a teacher is summed over `sources` [(logits, taps, w)]."""
    total = 0
    for term, weight in terms:
        if term.needs_teacher:
            part = sum(w * term(s, y, t, s_taps, t_taps) for t, t_taps, w in sources)
        else:
            part = term(s, y, None, s_taps, None)
        total = total + weight * part
    return total


# ---------------------------------------------------------------------------------------
# Data, training loop, evaluation
# ---------------------------------------------------------------------------------------

def read_idx(path):
    with gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb') as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], 'big') for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def idx_file(d, stem):
    for name in (stem, stem + '.gz'):
        if os.path.isfile(os.path.join(d, name)):
            return os.path.join(d, name)
    raise SystemExit(f'reference.py: no {stem}[.gz] in {d}')


class Data:
    def __init__(self, data_dir, train_rows, test_rows):
        images = read_idx(idx_file(data_dir, 'train-images-idx3-ubyte'))
        labels = read_idx(idx_file(data_dir, 'train-labels-idx1-ubyte'))
        rows = np.asarray(train_rows, dtype=np.int64)
        self.x = torch.from_numpy(images[rows].astype(np.float32) / 255).unsqueeze(1).contiguous()
        self.y = torch.from_numpy(labels[rows].astype(np.int64))
        timages = read_idx(idx_file(data_dir, 't10k-images-idx3-ubyte'))[:test_rows]
        tlabels = read_idx(idx_file(data_dir, 't10k-labels-idx1-ubyte'))[:test_rows]
        self.tx = torch.from_numpy(timages.astype(np.float32) / 255).unsqueeze(1).contiguous()
        self.ty = torch.from_numpy(tlabels.astype(np.int64))
        self.rows_digest = hashlib.sha256(rows.tobytes()).hexdigest()[:16]


class Frozen:
    """A frozen teacher in eval mode; logits (and small taps) precomputed per training row once,
    as tfjs-distill's CachedTeacher; larger taps computed per batch; `cache=False` for a teacher
    whose weights change (previous-epoch snapshot)."""

    def __init__(self, model, data=None, taps=(), cache=True, forward=None):
        self.model, self.taps = model, tuple(taps)
        self.forward = forward or (lambda x, t: model(x, taps=t))
        self.cached = None
        if cache and data is not None:
            small = tuple(n for n in self.taps if int(np.prod(model.tap_shape(n))) <= 4096)
            if small == self.taps:
                self.cached = self._run(data.x, self.taps)

    @torch.no_grad()
    def _run(self, x, taps, batch=1000):
        self.model.eval()
        outs = [self.forward(x[i:i + batch], taps) for i in range(0, len(x), batch)]
        return torch.cat([o[0] for o in outs]), {n: torch.cat([o[1][n] for o in outs]) for n in taps}

    def __call__(self, xb, idx):
        if self.cached is not None:
            logits, taps = self.cached
            return logits[idx], {n: v[idx] for n, v in taps.items()}
        return self._run(xb, self.taps, batch=len(xb))


def fit(label, models, params, epochs, step, data, settings, seed, on_epoch_begin=None):
    """One training phase (src/train/fit.ts + src/train/trainer.ts): a fresh Adam over `params`,
    the cosine schedule over this phase, data order and dropout re-seeded from `seed`; each epoch
    a new shuffle (last partial batch kept). `step(x, y, idx)` returns the summed loss."""
    torch.manual_seed(seed)
    order_rng = torch.Generator().manual_seed(seed)
    unique = list({id(p): p for p in params}.values())
    opt = torch.optim.Adam(unique, lr=settings.lr, eps=settings.adam_eps)
    n, bs = len(data.y), settings.batch_size
    per_epoch = math.ceil(n / bs)
    t = 0
    start = time.time()
    for epoch in range(epochs):
        if on_epoch_begin:
            on_epoch_begin(epoch)
        for m in models:
            m.train()
        perm = torch.randperm(n, generator=order_rng)
        total = 0.0
        for b in range(per_epoch):
            idx = perm[b * bs:(b + 1) * bs]
            for g in opt.param_groups:
                g['lr'] = settings.rate(t, per_epoch, epochs)
            loss = step(data.x[idx], data.y[idx], idx)
            opt.zero_grad(set_to_none=True)  # unconnected parameters stay untouched (as tfjs variableGrads)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            t += 1
        log(f'  {label}: epoch {epoch + 1}/{epochs} loss {total / n:.4f} ({time.time() - start:.1f} s)')


@torch.no_grad()
def logits_on_test(model, data, batch=1000):
    model.eval()
    outs = []
    for i in range(0, len(data.tx), batch):
        z = model(data.tx[i:i + batch])
        outs.append(z[0] if isinstance(z, tuple) else z)
    return torch.cat(outs)


def accuracy_of(logits, data):
    return int((logits.argmax(1) == data.ty).sum()) / len(data.ty)


def test_accuracy(model, data):
    return accuracy_of(logits_on_test(model, data), data)


def ce_step(models):
    """All `models` on the labels, jointly on the same batches (label-only twins)."""
    def step(x, y, idx):
        return sum(F.cross_entropy(m(x)[0], y) for m in models)
    return step


def train_labels(label, models, epochs, data, st, seed):
    models = models if isinstance(models, list) else [models]
    fit(label, models, [p for m in models for p in m.parameters()], epochs, ce_step(models), data, st, seed)


# ---------------------------------------------------------------------------------------
# Schemes
# ---------------------------------------------------------------------------------------

def cache_path(kind, spec):
    return os.path.join(tempfile.gettempdir(), 'tfjs-distill-parity',
                        f'{kind}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}.pt')


class Run:
    """One case at one seed: its config, data, settings and how its models are built."""

    def __init__(self, cfg, data, st, seed, args):
        self.cfg, self.data, self.st, self.seed, self.args = cfg, data, st, seed, args
        self.epochs = cfg['epochs']
        self.student = cfg['students'][0]['model']

    def build(self, variant=0):
        """The student with this seed's initial weights for `variant` (cohort peer, generation)."""
        return build_model(self.student, self.st, self.seed + 1000 + VARIANT_SEED_STRIDE * variant)

    def terms(self):
        return create_terms(self.cfg['knowledge'])

    def training_spec(self):
        """Everything besides the model, epochs and seed that a training on the labels depends on."""
        st = self.st
        return {'rows': self.data.rows_digest, 'lr': st.lr, 'bs': st.batch_size, 'schedule': st.schedule,
                'init': st.init, 'bn': [st.bn_momentum, st.bn_eps], 'gran': st.lr_granularity, 'eps': st.adam_eps,
                'torch': torch.__version__}

    def on_labels(self, label, variants):
        """The student's `variants` trained (jointly, as `train_labels`) on the labels with this run's
        seed. That training recurs across cases — every offline baseline, born-again's generation 0,
        previous-epoch's baseline, a cohort's twins — and is deterministic (`fit` seeds everything),
        so after the first case it is read from a cache beside the teacher's, keyed by all it depends
        on (thread count included: it changes the float sums)."""
        models = [self.build(v) for v in variants]
        spec = json.dumps({'student': self.student, 'variants': list(variants), 'epochs': self.epochs,
                           'seed': self.seed, 'threads': torch.get_num_threads(), **self.training_spec()},
                          sort_keys=True)
        path = cache_path('labels', spec)
        if not self.args.no_teacher_cache and os.path.exists(path):
            for m, state in zip(models, torch.load(path)):
                m.load_state_dict(state)
            log(f'{label}: the same training as an earlier case, loaded from {path}')
            return models
        train_labels(label, models, self.epochs, self.data, self.st, self.seed)
        if not self.args.no_teacher_cache:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f'{path}.{os.getpid()}.tmp'
            torch.save([m.state_dict() for m in models], tmp)
            os.replace(tmp, path)
        return models

    def teacher(self):
        """The teacherOnSubset model trained on the labels (cached on disk between seeds/cases)."""
        tcfg = self.cfg['teacher']
        if tcfg.get('key') != 'train':
            raise SystemExit('reference.py: this case needs teacher: teacherOnSubset')
        node, epochs = tcfg['kwargs']['model'], self.cfg['teacher_epochs']
        tseed = self.args.teacher_seed
        model = build_model(node, self.st, tseed)
        spec = json.dumps({'model': node, 'epochs': epochs, 'seed': tseed, **self.training_spec()}, sort_keys=True)
        path = cache_path('teacher', spec)
        if not self.args.no_teacher_cache and os.path.exists(path):
            model.load_state_dict(torch.load(path))
            log(f'teacher: loaded from {path}')
        else:
            t0 = time.time()
            log(f'teacher: training {node} for {epochs} epochs (seed {tseed})')
            train_labels('teacher', model, epochs, self.data, self.st, tseed)
            log(f'teacher: trained in {time.time() - t0:.1f} s')
            if not self.args.no_teacher_cache:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f'{path}.{os.getpid()}.tmp'
                torch.save(model.state_dict(), tmp)
                os.replace(tmp, path)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model


def scheme_labels(run):
    """labels-cnn, labels-mlp: the student on CE alone."""
    model = run.build()
    fit('student', [model], list(model.parameters()), run.epochs, terms_step(model, run.terms(), None),
        run.data, run.st, run.seed)
    return {'student': test_accuracy(model, run.data)}


def terms_step(model, terms, teacher):
    """One learner, its terms, a frozen teacher (or none)."""
    s_taps = taps_of(terms, 'student')

    def step(x, y, idx):
        z, taps = model(x, taps=s_taps)
        sources = []
        if teacher is not None:
            t, t_taps = teacher(x, idx)
            sources = [(t, t_taps, 1.0)]
        return terms_loss(terms, z, y, sources, taps)
    return step


def scheme_offline(run):
    """kd, fitnets, rkd (src/schemes/offline.ts `offline`): with `baseline`, the same student
    (same initial weights, same batches) on the labels; then the distilled student. Terms with
    `stage: hint` first train alone for hintEpochs (extra epochs, own phase), then the others."""
    teacher_model = run.teacher()
    acc = {'teacher': test_accuracy(teacher_model, run.data)}
    if run.cfg.get('baseline'):
        [model] = run.on_labels('labels', [0])
        acc['labels'] = test_accuracy(model, run.data)
    model = run.build()
    terms = run.terms()
    for term, _ in terms:
        for s_name, t_name in zip(term.student_taps, term.teacher_taps):
            term.prepare(model.tap_shape(s_name), teacher_model.tap_shape(t_name), run.st)
    hint = [(t, w) for t, w in terms if t.stage == 'hint']
    main = [(t, w) for t, w in terms if t.stage != 'hint']
    if hint:
        epochs = max(t.hint_epochs or max(1, int(math.floor(run.epochs / 4 + 0.5))) for t, _ in hint)  # JS Math.round
        teacher = Frozen(teacher_model, run.data, taps_of(hint, 'teacher'))
        params = list(model.parameters()) + [p for t, _ in hint for p in t.parameters()]
        fit('student hint stage', [model], params, epochs, terms_step(model, hint, teacher), run.data, run.st, run.seed)
    teacher = Frozen(teacher_model, run.data, taps_of(main, 'teacher'))
    params = list(model.parameters()) + [p for t, _ in main for p in t.parameters()]
    fit('student', [model], params, run.epochs, terms_step(model, main, teacher), run.data, run.st, run.seed)
    acc['student'] = test_accuracy(model, run.data)
    return acc


def cohort(run, k):
    """k replicas of the one student, each its own initialization (variant v), and identical twins."""
    members = [run.build(v) for v in range(k)]
    return members, [copy.deepcopy(m) for m in members]


def scheme_dml(run):
    """Deep mutual learning (src/schemes/dml.ts): L_i = terms(z_i, teacher z_j) averaged over j ≠ i
    (weight 1/(k−1)), z_j the training-mode logits of the same step, detached."""
    k = run.cfg['scheme'].get('kwargs', {}).get('peers', 2)
    peers, twins = cohort(run, k)
    acc = {}
    if run.cfg.get('baseline'):
        twins = run.on_labels('each alone (labels)', list(range(k)))
        acc.update({f'alone-{i + 1}': test_accuracy(m, run.data) for i, m in enumerate(twins)})
    terms = [run.terms() for _ in peers]

    def step(x, y, idx):
        logits = [m(x)[0] for m in peers]
        total = 0
        for i, z in enumerate(logits):
            sources = [(logits[j].detach(), {}, 1 / (k - 1)) for j in range(k) if j != i]
            total = total + terms_loss(terms[i], z, y, sources)
        return total
    fit('dml cohort', peers, [p for m in peers for p in m.parameters()], run.epochs, step, run.data, run.st, run.seed)
    acc.update({f'peer-{i + 1}': test_accuracy(m, run.data) for i, m in enumerate(peers)})
    return acc


def scheme_ensemble(run):
    """Online ensemble (src/schemes/ensemble.ts): the mean of every member's training-mode logits
    (itself included, detached) teaches each member; row `ensemble` = mean of members' test logits."""
    k = run.cfg['scheme'].get('kwargs', {}).get('members', 2)
    members, twins = cohort(run, k)
    acc = {}
    if run.cfg.get('baseline'):
        twins = run.on_labels('each alone (labels)', list(range(k)))
        acc.update({f'alone-{i + 1}': test_accuracy(m, run.data) for i, m in enumerate(twins)})
    terms = [run.terms() for _ in members]

    def step(x, y, idx):
        logits = [m(x)[0] for m in members]
        teacher = torch.stack(logits).mean(0).detach()
        return sum(terms_loss(terms[i], z, y, [(teacher, {}, 1.0)]) for i, z in enumerate(logits))
    fit('online ensemble', members, [p for m in members for p in m.parameters()], run.epochs, step,
        run.data, run.st, run.seed)
    test_logits = [logits_on_test(m, run.data) for m in members]
    acc.update({f'member-{i + 1}': accuracy_of(z, run.data) for i, z in enumerate(test_logits)})
    acc['ensemble'] = accuracy_of(torch.stack(test_logits).mean(0), run.data)
    return acc


def scheme_born_again(run):
    """Born-again networks (src/schemes/born-again.ts): gen 0 on the labels; gen g = 1…N (N =
    `generations`, so N+1 models), freshly initialized (variant g), from frozen gen g−1 in eval
    mode (or, with `ensemble`, the mean of all earlier generations' logits)."""
    kw = run.cfg['scheme'].get('kwargs', {})
    generations, ensemble = kw.get('generations', 3), kw.get('ensemble', False)
    done, acc = [], {}
    for g in range(generations + 1):
        if g == 0:
            [model] = run.on_labels('gen 0 (labels)', [0])
        else:
            model = run.build(g)
            if ensemble and g > 1:
                teachers = list(done)

                def forward(x, taps, teachers=teachers):
                    return torch.stack([t(x)[0] for t in teachers]).mean(0), {}
                teacher = Frozen(teachers[0], run.data, forward=forward)
            else:
                teacher = Frozen(done[-1], run.data)
            fit(f'gen {g}', [model], list(model.parameters()), run.epochs, terms_step(model, run.terms(), teacher),
                run.data, run.st, run.seed)
        acc[f'gen-{g}'] = test_accuracy(model, run.data)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        done.append(model)
    return acc


def byot_phase(run, net, exits, label, self_mode, hint_weight=1.0, feature_layer='features'):
    """Be Your Own Teacher (src/schemes/byot.ts): the network's CE; each exit (a head on a tap of
    the network's one forward pass) learns from the deepest's training-mode logits and `features`
    (detached) through the terms + hint_weight · mse(exit features, deepest features);
    `self_mode=False`: every exit on CE alone (deep supervision)."""
    exit_terms = [run.terms() for _ in exits] if self_mode else None

    def step(x, y, idx):
        z0, taps = net(x, taps=(feature_layer, *[e.after for e in exits]))
        total = F.cross_entropy(z0, y)
        for i, e in enumerate(exits):
            z, f = e.head(taps[e.after])
            if not self_mode:
                total = total + F.cross_entropy(z, y)
                continue
            total = total + terms_loss(exit_terms[i], z, y, [(z0.detach(), {}, 1.0)])
            if hint_weight > 0:  # fitnets term: identity adapter (exit width = features size)
                total = total + hint_weight * ((f - taps[feature_layer].detach()) ** 2).mean()
        return total
    params = list(net.parameters()) + [p for e in exits for p in e.head.parameters()]
    fit(label, [net] + [e.head for e in exits], params, run.epochs, step, run.data, run.st, run.seed)


def scheme_byot(run):
    kw = run.cfg['scheme'].get('kwargs', {})
    if kw.get('hintLoss', 'mse') != 'mse':
        raise SystemExit('reference.py: byot hintLoss other than mse is not implemented')
    specs, hint = kw['exits'], kw.get('hint', 1.0)
    baselines = kw.get('baselines', ['plain', 'deep-supervision'])
    feature_layer = kw.get('featureLayer', 'features')

    def build():
        net = run.build()
        return net, attach_exits(net, specs, run.st, run.seed, feature_layer)
    net, exits = build()
    acc = {}
    if run.cfg.get('baseline') and 'plain' in baselines:
        plain = run.build()
        train_labels('plain (labels)', plain, run.epochs, run.data, run.st, run.seed)
        acc['plain'] = test_accuracy(plain, run.data)
    if run.cfg.get('baseline') and 'deep-supervision' in baselines:
        ds_net, ds_exits = build()
        byot_phase(run, ds_net, ds_exits, 'deep supervision', False, feature_layer=feature_layer)
        ds_net.eval()
        acc.update({f'ds-exit-{i + 1}': test_accuracy(e, run.data) for i, e in enumerate(ds_exits)})
        acc['ds-deepest'] = test_accuracy(ds_net, run.data)
    byot_phase(run, net, exits, 'byot', True, hint, feature_layer)
    net.eval()
    acc.update({f'exit-{i + 1}': test_accuracy(e, run.data) for i, e in enumerate(exits)})
    acc['deepest'] = test_accuracy(net, run.data)
    return acc


def scheme_previous_epoch(run):
    """Previous-epoch teacher (src/schemes/previous-epoch.ts): one phase (one Adam, one schedule)
    of `epochs` epochs: CE for the first `warmup`, then the terms with a snapshot of the model in
    eval mode as the teacher, copied (BN statistics included) at the start of each epoch e ≥ warmup
    with (e − warmup) % every == 0."""
    kw = run.cfg['scheme'].get('kwargs', {})
    every, warmup = kw.get('every', 1), kw.get('warmup', 1)
    if run.epochs <= warmup:
        raise SystemExit(f'reference.py: previous-epoch needs more epochs ({run.epochs}) than warmup ({warmup})')
    acc = {}
    if run.cfg.get('baseline'):
        [model] = run.on_labels('labels', [0])
        acc['labels'] = test_accuracy(model, run.data)
    model, snapshot = run.build(), run.build()
    for p in snapshot.parameters():
        p.requires_grad_(False)
    epoch = [0]

    terms = run.terms()

    def begin(e):
        epoch[0] = e
        if e >= warmup and (e - warmup) % every == 0:
            snapshot.load_state_dict(model.state_dict())
        for term, _ in terms:
            if hasattr(term, 'on_epoch_begin'):
                term.on_epoch_begin(e)
    learn = terms_step(model, terms, Frozen(snapshot, cache=False))

    def step(x, y, idx):
        return F.cross_entropy(model(x)[0], y) if epoch[0] < warmup else learn(x, y, idx)
    fit('warmup, then from its snapshot', [model], list(model.parameters()), run.epochs, step, run.data, run.st,
        run.seed, on_epoch_begin=begin)
    acc['student'] = test_accuracy(model, run.data)
    return acc


SCHEMES = {'dml': scheme_dml, 'ensemble': scheme_ensemble, 'born-again': scheme_born_again,
           'byot': scheme_byot, 'previous-epoch': scheme_previous_epoch}


def run_case(cfg, data, st, seed, args):
    run = Run(cfg, data, st, seed, args)
    key = cfg['scheme']['key']
    if key == 'offline':
        has_teacher = cfg['teacher'].get('key', 'none') != 'none'
        return scheme_offline(run) if has_teacher else scheme_labels(run)
    return SCHEMES[key](run)


# ---------------------------------------------------------------------------------------
# Config and CLI
# ---------------------------------------------------------------------------------------

def case_config(cases, name, quick):
    """`common` merged under the case (case keys win, shallow per top-level key); the teacher
    resolved; `quick` overrides applied; teacher_epochs set."""
    found = [c for c in cases['cases'] if c['name'] == name]
    if not found:
        raise SystemExit(f'reference.py: no case {name}; cases: {", ".join(c["name"] for c in cases["cases"])}')
    cfg = {**copy.deepcopy(cases['common']), **copy.deepcopy(found[0])}
    if isinstance(cfg.get('teacher'), str):
        cfg['teacher'] = copy.deepcopy(cases[cfg['teacher']])
    tk = cfg['teacher'].get('kwargs', {})
    cfg['teacher_epochs'] = tk.get('epochs', cfg['epochs'])
    if quick:
        q = cases['quick']
        for k in ('data', 'epochs', 'seeds'):
            if k in q:
                cfg[k] = copy.deepcopy(q[k])
        cfg['teacher_epochs'] = q.get('teacherEpochs', cfg['epochs'])
    return cfg


def load_tfjs_weights(model, manifest, blob):
    """Copies weights saved by tfjs-distill (channels-last kernels `[kh, kw, in, out]`, dense
    `[in, out]`, names `layer/kernel|bias|gamma|beta|moving_mean|moving_variance`) into the
    same-named layers of `model`; returns how many tensors were copied."""
    layers, offset, copied = model.layers, 0, 0
    for w in manifest:
        n = int(np.prod(w['shape']))
        t = torch.from_numpy(np.frombuffer(blob, dtype='<f4', count=n, offset=offset * 4).copy()).reshape(w['shape'])
        offset += n
        layer, kind = w['name'].split('/')
        m = layers[layer]
        if kind == 'kernel':
            target, value = m.weight, t.permute(3, 2, 0, 1) if t.dim() == 4 else t.T
        else:
            target = {'bias': m.bias, 'gamma': m.weight, 'beta': m.bias,
                      'moving_mean': getattr(m, 'running_mean', None), 'moving_variance': getattr(m, 'running_var', None)}[kind]
            value = t
        with torch.no_grad():
            target.copy_(value)
        copied += 1
    return copied


def step_equivalence(spec_path, data_dir):
    """`--steps SPEC.json`: the deterministic check under every parity case. Same initial weights
    (tfjs-distill's, from SPEC's weight file), the same batches (training rows 0…steps·batch−1
    in order, no shuffle), no dropout; Adam with the cosine decayed per step over `steps`; CE.
    BatchNorm as tfjs-distill configures it (ε, momentum from SPEC), so any difference left
    is in the arithmetic of the forward pass, the gradients or the optimizer."""
    with open(spec_path) as f:
        spec = json.load(f)
    with open(spec['weightsPath'], 'rb') as f:
        blob = f.read()
    b, steps = spec['batchSize'], spec['steps']
    data = Data(data_dir, list(range(b * steps)), spec['testRows'])
    st = Settings(spec['learningRate'], b, 'cosine', 'torch', 'torch', 'step', spec['adamEpsilon'])
    st.bn_momentum, st.bn_eps = 1 - spec['bnMomentum'], spec['bnEpsilon']
    model = build_model(spec['model'], st, 0)
    copied = load_tfjs_weights(model, spec['weights'], blob)
    opt = torch.optim.Adam(model.parameters(), lr=st.lr, eps=st.adam_eps)
    model.train()
    losses = []
    for t in range(steps):
        for g in opt.param_groups:
            g['lr'] = st.rate(t, steps, 1)
        loss = F.cross_entropy(model(data.x[t * b:(t + 1) * b])[0], data.y[t * b:(t + 1) * b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {'losses': losses, 'accuracy': test_accuracy(model, data), 'copied': copied}


def self_test():
    """Param counts against the doc comments of src/models/cnn.ts and mlp.ts."""
    st = Settings(1e-3, 64, 'cosine', 'torch', 'torch', 'step', 1e-8)
    expected = [({'key': 'cnn', 'kwargs': {'width': 1}}, 871210), ({'key': 'cnn', 'kwargs': {'width': 0.5}}, 218778),
                ({'key': 'cnn', 'kwargs': {'width': 0.25}}, 55186), ({'key': 'mlp', 'kwargs': {}}, 235146),
                ({'key': 'mlp', 'kwargs': {'width': 0.5}}, 109386), ({'key': 'mlp', 'kwargs': {'width': 0.25}}, 52650)]
    ok = True
    for node, want in expected:
        got = param_count(build_model(node, st, 0))
        ok &= got == want
        log(f'{node}: {got} (doc: {want}) {"ok" if got == want else "MISMATCH"}')
    net = build_model({'key': 'cnn', 'kwargs': {'width': 0.5, 'convsPerBlock': 1}}, st, 0)
    for e in attach_exits(net, [{'after': 'block1_pool'}, {'after': 'block2_pool'}], st, 0):
        z, f = e(torch.zeros(2, 1, 28, 28))
        log(f'exit after {e.after}: in {net.tap_shape(e.after)}, features {tuple(f.shape)}, logits {tuple(z.shape)}')
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--case')
    p.add_argument('--seed', type=int)
    p.add_argument('--split')
    p.add_argument('--quick', action='store_true')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--data-dir', default='/usr/share/datasets/fashion-mnist')
    p.add_argument('--cases', default=os.path.join(HERE, 'cases.json'))
    p.add_argument('--teacher-seed', type=int, default=None,
                   help="seed of the teacher's init and data order (default: the case's first seed, as tfjs-distill)")
    p.add_argument('--no-teacher-cache', action='store_true', help='always train the teacher and the label-only runs (default: reuse them from $TMPDIR)')
    p.add_argument('--init', choices=['torch', 'glorot'], default='torch')
    p.add_argument('--bn', choices=['torch', 'tfjs'], default='torch')
    p.add_argument('--lr-granularity', choices=['step', 'epoch'], default='step')
    p.add_argument('--adam-eps', type=float, default=1e-8)
    p.add_argument('--bn-eps', type=float, default=None, help="BatchNorm ε (default: the --bn setting's)")
    p.add_argument('--tfjs-defaults', action='store_true', help='--init glorot --bn tfjs --lr-granularity epoch --adam-eps 1e-7')
    p.add_argument('--epochs', type=int, help=argparse.SUPPRESS)  # testing: override the students' epochs
    p.add_argument('--teacher-epochs', type=int, help=argparse.SUPPRESS)
    p.add_argument('--self-test', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--steps', metavar='SPEC.json', help='step equivalence from tfjs-distill weights (bench/parity/steps.ts)')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.self_test:
        sys.exit(0 if self_test() else 1)
    if args.steps:
        print(json.dumps(step_equivalence(args.steps, args.data_dir)), flush=True)
        return
    if args.case is None or args.seed is None or args.split is None:
        p.error('--case, --seed and --split are required')
    if args.tfjs_defaults:
        args.init, args.bn, args.lr_granularity, args.adam_eps = 'glorot', 'tfjs', 'epoch', 1e-7

    with open(args.cases) as f:
        cases = json.load(f)
    cfg = case_config(cases, args.case, args.quick)
    if args.epochs is not None:
        cfg['epochs'] = args.epochs
        cfg['teacher_epochs'] = args.epochs
    if args.teacher_epochs is not None:
        cfg['teacher_epochs'] = args.teacher_epochs
    if args.teacher_seed is None:
        args.teacher_seed = cfg['seeds'][0]
    with open(args.split) as f:
        split = json.load(f)

    start = time.time()
    data = Data(args.data_dir, split['train'], split['testRows'])
    opt = cfg['optimizer']
    if opt['key'] != 'adam':
        raise SystemExit('reference.py: only the adam optimizer is implemented')
    st = Settings(opt.get('kwargs', {}).get('learningRate', 1e-3), cfg['batchSize'], cfg.get('schedule', 'constant'),
                  args.init, args.bn, args.lr_granularity, args.adam_eps)
    if args.bn_eps is not None:
        st.bn_eps = args.bn_eps
    log(f'{args.case} seed {args.seed}: {len(data.y)} train / {len(data.ty)} test rows, {cfg["epochs"]} epochs, '
        f'{args.threads} thread(s), init {st.init}, bn momentum {st.bn_momentum} eps {st.bn_eps}, '
        f'cosine per {st.lr_granularity}')
    acc = run_case(cfg, data, st, args.seed, args)
    seconds = time.time() - start
    log(f'{args.case} seed {args.seed}: ' + ', '.join(f'{k} {v * 100:.2f} %' for k, v in acc.items()) + f' ({seconds:.1f} s)')
    print(json.dumps({'case': args.case, 'seed': args.seed, 'accuracy': acc, 'seconds': round(seconds, 3)}), flush=True)


if __name__ == '__main__':
    main()
