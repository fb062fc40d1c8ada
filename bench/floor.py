"""The floor: a plain, hand-written NumPy training loop (no classes, no checks, no abstraction).

Whole mini-batch as a matrix, ``x @ W.T + b``, sigmoid or ReLU hidden layers, quadratic or softmax
cross-entropy output, SGD with optional momentum. It is what a careful person writes by hand in
Python; bench/compare.py measures portamlp against it.
"""

import numpy as np


def init(layers, rng, he=False, dtype=np.float32):
    ws = [(rng.standard_normal((o, i)) * (np.sqrt(2 / i) if he else 1.0)).astype(dtype)
          for i, o in zip(layers[:-1], layers[1:])]
    bs = [(np.zeros(o) if he else rng.standard_normal(o)).astype(dtype) for o in layers[1:]]
    return ws, bs


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def train_epoch(x, y_onehot, ws, bs, vs, *, lr, batch, rng, relu=False, softmax=False, mu=0.0,
                dropout=0.0, input_dropout=0.0):
    """One epoch of mini-batch SGD. With ``dropout`` / ``input_dropout``, inverted dropout on the
    hidden / input units, masks drawn with NumPy's own generator (``rng.random``)."""
    n = x.shape[0]
    order = rng.permutation(n)
    last = len(ws) - 1
    rates = [input_dropout] + [dropout] * last
    for k in range(0, n, batch):
        idx = order[k:k + batch]
        a, y = x[idx], y_onehot[idx]
        inputs, outs, masks = [], [], []
        for l, (w, b) in enumerate(zip(ws, bs)):
            m = None
            if rates[l]:
                keep = 1.0 - rates[l]
                m = (rng.random(a.shape, dtype=np.float32) < keep).astype(a.dtype)
                m *= 1.0 / keep
                a = a * m
            masks.append(m)
            inputs.append(a)
            z = a @ w.T + b
            if l == last and softmax:
                e = np.exp(z - z.max(axis=1, keepdims=True))
                a = e / e.sum(axis=1, keepdims=True)
            elif relu and l < last:
                a = np.maximum(z, 0)
            else:
                a = sigmoid(z)
            outs.append(a)
        delta = a - y if softmax else (a - y) * a * (1 - a)
        step = lr / len(idx)
        for l in range(last, -1, -1):
            gw = delta.T @ inputs[l]
            gb = delta.sum(axis=0)
            if l:
                back = delta @ ws[l]
                if masks[l] is not None:
                    back *= masks[l]
                h = outs[l - 1]
                delta = back * ((h > 0) if relu else h * (1 - h))
            if mu:
                vw, vb = vs[l]
                vw *= mu
                vw -= step * gw
                vb *= mu
                vb -= step * gb
                ws[l] += vw
                bs[l] += vb
            else:
                ws[l] -= step * gw
                bs[l] -= step * gb


def accuracy(x, labels, ws, bs, relu=False):
    a = x
    for l, (w, b) in enumerate(zip(ws, bs)):
        z = a @ w.T + b
        a = np.maximum(z, 0) if relu and l < len(ws) - 1 else z
    return float(np.mean(a.argmax(axis=1) == labels))
