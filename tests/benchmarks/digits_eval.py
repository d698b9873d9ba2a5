"""The digits prior, measured (issue 13): generation with and without guidance, memorisation, and
every solver on the held-out digits with the digits prior against the natural prior.

The judge of generated samples is a separate classifier: scikit-learn's logistic regression on
the 8x8 originals of the 1,500 training digits (its accuracy on the 297 held-out digits is
printed), applied to samples average-pooled from 16x16 back to 8x8 and rescaled to 0..16.

    python tests/benchmarks/digits_eval.py [--prior digits] [--classifier digits] [--quick]

Prints Markdown tables (docs/digits.md holds the last run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pnpdiff  # noqa: E402
from pnpdiff import Downsample, GaussianBlur, Inpaint, random_mask  # noqa: E402
from pnpdiff.datasets import digits  # noqa: E402
from pnpdiff.metrics import psnr  # noqa: E402


def judge():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    X, y = d.data / 16.0, d.target
    clf = LogisticRegression(max_iter=5000, C=1.0).fit(X[:1500], y[:1500])
    return clf, float(clf.score(X[1500:], y[1500:]))


def to8(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.avg_pool2d(x.float().cpu(), 2).flatten(1).numpy()


def rate(clf, x: torch.Tensor, labels: torch.Tensor) -> float:
    return float((clf.predict(to8(x)) == labels.cpu().numpy()).mean())


def nn_dist(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x.flatten(1).float(), ref.flatten(1).float()).min(1).values


def generation(prior, clf_name, judge_clf, quick: bool) -> None:
    per = 10 if quick else 30
    labels = torch.arange(10).repeat_interleave(per)
    print("\n### Classifier-free guidance (DDIM, 50 steps; rate = judge agrees with the requested class)\n")
    print("| cfg w | requested-class rate | seconds |")
    print("|---|---|---|")
    for w in (0.0, 1.0, 2.0, 3.0):
        t = time.perf_counter()
        x = pnpdiff.sample(prior, len(labels), label=labels, cfg=w, method="ddim", steps=50, seed=1)
        print(f"| {w:g} | {rate(judge_clf, x, labels):.3f} | {time.perf_counter() - t:.1f} |")
    n_unc = 100 if quick else 300
    x_unc = pnpdiff.sample(prior, n_unc, method="ddim", steps=50, seed=2)
    pred = judge_clf.predict(to8(x_unc))
    hist = np.bincount(pred, minlength=10)
    train_x, _ = digits("train", 16)
    held_x, _ = digits("heldout", 16)
    d_s, d_h = nn_dist(x_unc, train_x), nn_dist(held_x, train_x)
    print(f"\nUnconditional (DDIM 50 steps, {n_unc} samples): judge's class histogram {hist.tolist()} "
          f"({int((hist > 0).sum())} of 10 classes).")
    print(f"Nearest-neighbour L2 distance to the 1,500 training digits (16x16, [0, 1]): samples median "
          f"{float(d_s.median()):.2f} (min {float(d_s.min()):.2f}), held-out digits median {float(d_h.median()):.2f} "
          f"(min {float(d_h.min()):.2f}); fraction of samples closer than the closest held-out digit: "
          f"{float((d_s < d_h.min()).float().mean()):.3f}.")
    if clf_name:
        print("\n### Classifier guidance on the unconditional model (DDIM, 50 steps)\n")
        print("| scale s | requested-class rate |")
        print("|---|---|")
        for s in (0.0, 1.0, 2.0, 4.0, 8.0):
            kw = {"classifier": clf_name, "classifier_scale": s} if s else {}
            x = pnpdiff.sample(prior, len(labels), label=labels if s else None, method="ddim", steps=50, seed=3, **kw)
            print(f"| {s:g} | {rate(judge_clf, x, labels):.3f} |")
    print("\n### Samplers and steps (cfg w = 2 requested-class rate; unconditional: judge's mean confidence)\n")
    print("| sampler | steps | cfg 2 rate | unconditional confidence | seconds (cfg run) |")
    print("|---|---|---|---|---|")
    for method in ("ddpm", "ddim", "euler", "heun"):
        for steps in ((10, 50) if quick else (10, 20, 50, 100)):
            t = time.perf_counter()
            x = pnpdiff.sample(prior, len(labels), label=labels, cfg=2.0, method=method, steps=steps, seed=4)
            dt = time.perf_counter() - t
            xu = pnpdiff.sample(prior, 100, method=method, steps=steps, seed=5)
            conf = float(judge_clf.predict_proba(to8(xu)).max(1).mean())
            print(f"| {method} | {steps} | {rate(judge_clf, x, labels):.3f} | {conf:.3f} | {dt:.1f} |")


METHODS = ("diffpir", "dps", "ddrm", "ddnm", "ddnm+", "pigdm", "reddiff", "dpir")


def restoration(prior, quick: bool) -> None:
    x, _ = digits("heldout", 16)
    if quick:
        x = x[:32]
    g = torch.Generator().manual_seed(0)
    sigma_y = 0.05
    tasks = {
        "inpaint 50 %": Inpaint(random_mask((16, 16), 0.5, generator=g)),
        "SR x2": Downsample(2),
        "Gaussian deblur (1 px)": GaussianBlur(1.0),
    }
    print(f"\n### Restoration of the {len(x)} held-out digits, sigma_y = {sigma_y} (PSNR dB, mean; seconds)\n")
    print("| task | method | digits prior | natural prior |")
    print("|---|---|---|---|")
    for tname, op in tasks.items():
        y = op(x) + sigma_y * torch.randn(op(x).shape, generator=torch.Generator().manual_seed(1))
        for method in METHODS:
            cells = []
            for pname in ("digits", "natural"):
                p = prior if pname == "digits" else "natural"
                yy = y if pname == "digits" else y.expand(-1, 3, -1, -1)  # grey as RGB: restored as one channel
                t = time.perf_counter()
                try:
                    out = pnpdiff.solve(yy, op, prior=p, method=method, sigma_y=sigma_y, seed=0, progress=False)
                    out = out[:, :1]
                    val = float(psnr(out.clamp(0, 1), x).mean())
                    cells.append(f"{val:.2f} ({time.perf_counter() - t:.1f} s)")
                except pnpdiff.PnPError as err:
                    cells.append(f"n/a ({str(err)[:60]})")
            print(f"| {tname} | {method} | {cells[0]} | {cells[1]} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prior", default="digits")
    ap.add_argument("--classifier", default="digits")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("generation", "restoration"))
    a = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    prior = pnpdiff.load_prior(a.prior)
    judge_clf, acc = judge()
    print(f"Judge: logistic regression on the 8x8 training digits, held-out accuracy {acc:.3f}.")
    if a.only != "restoration":
        generation(prior, a.classifier or None, judge_clf, a.quick)
    if a.only != "generation":
        restoration(prior, a.quick)


if __name__ == "__main__":
    main()
