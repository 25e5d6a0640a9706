"""Fits the rational tanh of the AVX-512 gate pass (`tanh512` in src/x86.rs).

tanh x ~ x P(x^2) / Q(x^2) on [0, 9], P of degree 6 and Q of degree 3 in x^2, Q(0) = 1,
near-minimax in absolute error: linearised least squares (x P - tanh(x) Q = 0) reweighted
Lawson-style towards the largest errors, in the scaled variable t = x / 9 for conditioning,
keeping the best of the iterations. Prints the f32 coefficients in x^2 for the kernel.

    python3 fit_tanh.py     (needs numpy)
"""
import numpy as np

C, NP, NQ = 9.0, 6, 3


def fit(iters=400):
    t = np.linspace(0.0, 1.0, 40001)
    x, z = C * t, t * t
    y = np.tanh(x)
    zp = z[:, None] ** np.arange(NP + 1)
    zq = z[:, None] ** np.arange(1, NQ + 1)
    a = np.hstack([x[:, None] * zp, -(y[:, None] * zq)])
    w = np.ones_like(x)
    best = None
    for _ in range(iters):
        sol, *_ = np.linalg.lstsq(a * w[:, None], y * w, rcond=None)
        p, q = sol[: NP + 1], np.concatenate([[1.0], sol[NP + 1 :]])
        qz = (z[:, None] ** np.arange(NQ + 1)) @ q
        err = x * (zp @ p) / qz - y
        worst = np.abs(err).max()
        if best is None or worst < best[0]:
            best = (worst, p, q)
        w = np.maximum(w * np.abs(err), 1e-300)
        w = w / w.sum() * len(w) / np.abs(qz)
        w = w / w.sum() * len(w)
    return best


worst, p, q = fit()
# Back to the variable x^2: coefficient k of t^(2k) is divided by C^(2k).
p = [float(np.float32(v / C ** (2 * k))) for k, v in enumerate(p)]
q = [float(np.float32(v / C ** (2 * k))) for k, v in enumerate(q)]
print(f"max |error| in f64 on [0, {C}]: {worst:.3e}")
print("P:", ", ".join(repr(np.float32(v)) for v in p))
print("Q:", ", ".join(repr(np.float32(v)) for v in q))
