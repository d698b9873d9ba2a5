"""Training priors and classifiers (issue 13): the loss identities of each parameterisation,
the guidance formulas, the command line (smoke runs of seconds), resume, and refusals."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pnpdiff
from pnpdiff.config.train import TrainConfig
from pnpdiff.errors import PnPError
from pnpdiff.guidance import GuidedPrior
from pnpdiff.priors import load_prior
from pnpdiff.priors.trained import TrainedPrior
from pnpdiff.training import draw_sigma, loss_weight
from pnpdiff.unet import NoiseClassifier, SmallUNet, UNetConfig

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "train_digits.yaml"
TINY = ["model.base=8", "model.emb=16", "batch_size=8", "log_every=1"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pnpdiff", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})


# ------------------------------------------------------------------------ parameterisations
def _card(prediction: str, sigma_data: float = 0.4, mean: float = 0.3) -> dict:
    return {"prediction": prediction, "sigma_data": sigma_data, "sigma_min": 0.001, "sigma_max": 40.0,
            "channels": 1, "size": [8, 8], "classes": 0, "data_mean": [mean], "data_var": [sigma_data**2],
            "model": {"channels": 1, "base": 8, "mult": [1, 2], "emb": 16}}


class _Fixed(torch.nn.Module):
    """A 'network' returning a fixed tensor (records its inputs)."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.out = out
        self.seen: list = []

    def forward(self, x, c_noise, label=None):
        self.seen.append((x.clone(), c_noise.clone()))
        return self.out + 0 * self.w


@pytest.mark.parametrize("prediction", ["edm", "x0", "eps"])
def test_weighted_loss_is_the_papers_target_regression(prediction) -> None:
    """lambda(sigma) ||D - x0||^2 equals ||F - target||^2 with each paper's target: EDM Eq. 8
    ((x0 - c_skip x) / c_out, c_skip / c_out from Table 1 written out here), DDPM's eps, and the
    normalised x0 -- an identity, independent of the code's own formulas."""
    g = torch.Generator().manual_seed(0)
    sd, m = 0.4, 0.3
    x0 = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    n = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.5, 20.0], dtype=torch.float64).view(-1, 1, 1, 1)
    x = x0 + sigma * n
    F = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    prior = TrainedPrior(SmallUNet(UNetConfig(base=8, mult=(1, 2), emb=16)), _card(prediction, sd, m)).double()
    prior.net = _Fixed(F).double()
    m = float(prior.mean_)  # the card's 0.3 as stored (float32, then float64)
    D = prior.denoise(x, sigma.flatten())
    lhs = loss_weight(prediction, sigma, sd) * (D - x0) ** 2
    if prediction == "edm":
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / torch.sqrt(sigma**2 + sd**2)
        target = ((x0 - m) - c_skip * (x - m)) / c_out
    elif prediction == "eps":
        target = n
    else:
        target = (x0 - m) / sd
    torch.testing.assert_close(lhs, (F - target) ** 2, rtol=1e-9, atol=1e-12)
    # and the network saw EDM's c_in (x - m), c_noise = log(sigma) / 4
    xin, c_noise = prior.net.seen[-1]
    torch.testing.assert_close(xin, (x - m) / torch.sqrt(sigma**2 + sd**2))
    torch.testing.assert_close(c_noise, sigma.flatten().log() / 4)


def test_denoiser_is_the_identity_at_sigma_zero() -> None:
    prior = TrainedPrior(SmallUNet(UNetConfig(base=8, mult=(1, 2), emb=16)), _card("x0"))
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(prior.denoise(x, 0.0), x)


def test_sigma_sampling_laws() -> None:
    """EDM: ln(2 sigma) ~ N(-1.2, 1.2^2); DDPM: sigma_t of the linear beta table, t uniform."""
    g = torch.Generator().manual_seed(0)
    cfg = TrainConfig(sigma_min=1e-6, sigma_max=1e6).validate()
    s = draw_sigma(cfg, 200_000, g).double()
    z = (2 * s).log()
    assert abs(float(z.mean()) + 1.2) < 4 * 1.2 / math.sqrt(len(z))
    assert abs(float(z.std()) - 1.2) < 0.01
    cfg = TrainConfig(sigma_sampling="ddpm", sigma_min=1e-6, sigma_max=1e6).validate()
    s = draw_sigma(cfg, 100_000, g).double()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    table = ((1 - abar) / abar).sqrt() / 2
    assert float(s.min()) == pytest.approx(float(table[0]), rel=1e-6)  # t = 1 is drawn (1 in 1000)
    med = float(s.median())
    assert table[480] < med < table[520]  # the median t is ~500


# ------------------------------------------------------------------------ guidance formulas
class _CondPrior(pnpdiff.Prior):
    """Analytic class-conditional 'prior': D(x, s, c) = x / (1 + s^2) + c (c = none: 0)."""

    classes = 3
    channels, size = 1, (4, 4)

    def denoise(self, x, sigma, label=None):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        shift = 0.0 if label is None else torch.as_tensor(label, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return x / (1 + s**2) + shift


class _LinearClassifier(torch.nn.Module):
    """log p(c | x) = log_softmax(W x) with W fixed: grad_x log p(c) = W_c - sum_k p_k W_k."""

    classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.W = torch.randn(3, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def log_probs(self, x, sigma):
        return torch.log_softmax(x.flatten(1) @ self.W.T, dim=1)


def test_classifier_free_guidance_formula() -> None:
    prior = _CondPrior()
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    w = 2.5
    out = GuidedPrior(prior, label=[1, 2], cfg=w).denoise(x, 0.7)
    cond = x / 1.49 + torch.tensor([1.0, 2.0], dtype=torch.float64).view(-1, 1, 1, 1)
    torch.testing.assert_close(out, (1 + w) * cond - w * (x / 1.49))


def test_classifier_guidance_adds_sigma2_times_the_log_likelihood_gradient() -> None:
    prior, clf = _CondPrior(), _LinearClassifier()
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    s, scale = 0.7, 3.0
    out = GuidedPrior(prior, label=[0, 2], classifier=clf, classifier_scale=scale, conditional=False).denoise(x, s)
    p = torch.softmax(x.flatten(1) @ clf.W.T, dim=1)
    grad = clf.W[[0, 2]] - p @ clf.W  # closed form
    torch.testing.assert_close(out, x / (1 + s**2) + scale * s**2 * grad.view(2, 1, 4, 4))


def test_guidance_errors() -> None:
    prior = _CondPrior()
    with pytest.raises(PnPError, match="label"):
        GuidedPrior(prior, cfg=1.0)
    with pytest.raises(PnPError, match="cfg"):
        GuidedPrior(prior, label=1, cfg=-1.0)
    with pytest.raises(PnPError, match="classifier"):
        GuidedPrior(prior, label=1, classifier_scale=2.0)
    with pytest.raises(PnPError, match="label"):
        GuidedPrior(prior, label=1.5)


# ------------------------------------------------------------------------ the command line
def test_cli_smoke_train_loads_as_a_prior_and_samples(tmp_path) -> None:
    out = tmp_path / "run"
    r = _cli("train", str(RECIPE), "steps=3", f"output={out}", "sample_every=3", *TINY, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "prior.pt" in r.stdout
    names = {p.name for p in out.iterdir()}
    assert {"prior.pt", "checkpoint.pt", "model_card.yaml", "train_log.csv", "samples-000003.png"} <= names
    prior = load_prior(f"trained:{out / 'prior.pt'}")
    assert isinstance(prior, TrainedPrior) and prior.size == (16, 16) and prior.classes == 10
    assert prior.card["seed"] == 0 and "steps=3" in prior.card["command"]
    assert load_prior(str(out / "prior.pt")).card == prior.card  # a bare path is recognised too
    x = pnpdiff.sample(prior, 4, method="heun", steps=3, seed=0)
    assert x.shape == (4, 1, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1
    lines = (out / "train_log.csv").read_text().splitlines()
    assert lines[0] == "step,loss,lr,seconds" and len(lines) == 4


def test_resume_gives_the_uninterrupted_weights(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert _cli("train", str(RECIPE), "steps=4", f"output={a}", "sample_every=0", *TINY).returncode == 0
    assert _cli("train", str(RECIPE), "steps=2", f"output={b}", "sample_every=0", *TINY).returncode == 0
    r = _cli("train", str(RECIPE), "steps=4", f"output={b}", "sample_every=0", "resume=true", *TINY)
    assert r.returncode == 0, r.stderr
    sa = torch.load(a / "prior.pt", weights_only=True)["state_dict"]
    sb = torch.load(b / "prior.pt", weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_with_other_settings_is_refused(tmp_path) -> None:
    out = tmp_path / "run"
    assert _cli("train", str(RECIPE), "steps=2", f"output={out}", "sample_every=0", *TINY).returncode == 0
    r = _cli("train", str(RECIPE), "steps=4", f"output={out}", "resume=true", "lr=0.01", *TINY)
    assert r.returncode == 2 and "lr" in r.stderr and "Traceback" not in r.stderr


def test_train_never_replaces_a_users_file(tmp_path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "prior.pt").write_text("my notes")
    r = _cli("train", str(RECIPE), "steps=1", f"output={out}", *TINY)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (out / "prior.pt").read_text() == "my notes"


@pytest.mark.parametrize("override, key", [("prediction=v", "prediction"), ("steps=0", "steps"),
                                           ("bogus=1", "bogus"), ("model.mult=[]", "mult"),
                                           ("label_dropout=2", "label_dropout")])
def test_bad_training_recipes_give_one_line(tmp_path, override, key) -> None:
    r = _cli("train", str(RECIPE), override, f"output={tmp_path / 'x'}")
    assert r.returncode == 2 and key in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_smoke_train_classifier(tmp_path) -> None:
    out = tmp_path / "clf"
    recipe = REPO / "recipes" / "train_digits_classifier.yaml"
    r = _cli("train-classifier", str(recipe), "steps=2", f"output={out}", *TINY, "--no-progress")
    assert r.returncode == 0, r.stderr
    from pnpdiff.priors.trained import load_classifier

    clf = load_classifier(out / "classifier.pt")
    lp = clf.log_probs(torch.rand(3, 1, 16, 16), 0.5)
    assert lp.shape == (3, 10)
    torch.testing.assert_close(lp.exp().sum(1), torch.ones(3))


def test_unet_shapes_and_null_label() -> None:
    net = SmallUNet(UNetConfig(channels=3, base=8, mult=(1, 2), emb=16, classes=4))
    x = torch.randn(2, 3, 8, 8)
    out = net(x, torch.zeros(2), torch.tensor([0, 4]))
    assert out.shape == x.shape
    clf = NoiseClassifier(UNetConfig(channels=3, base=8, mult=(1, 2), emb=16, classes=4))
    assert clf(x, torch.zeros(2)).shape == (2, 4)


@pytest.mark.parametrize("kind", ["train", "sample"])
def test_train_and_sample_runs_hold_their_folder_from_the_start(tmp_path, kind) -> None:
    """While a training or sampling run works, before it has committed anything, its output folder
    is held: another run is told 'in use by another pnpdiff run' (before: only the commit itself
    was locked, so two runs into one folder worked side by side until the first commit)."""
    import contextlib
    import time

    from pnpdiff.errors import OutputFolderError
    from pnpdiff.outputs import OutputFolder

    out = tmp_path / "run"
    if kind == "train":
        args = ["train", str(RECIPE), "steps=40", "checkpoint_every=40", f"output={out}", "sample_every=0", *TINY]
        first = out / "prior.pt"
    else:
        args = [str(REPO / "recipes" / "sample_digits.yaml"), "steps=40", "n=4", f"output={out}"]
        first = out / "samples.png"
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    proc = subprocess.Popen([sys.executable, "-m", "pnpdiff", *args, "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held_before_commit = mine = False
    while proc.poll() is None and not held_before_commit:
        lock = out / ".pnpdiff-lock"
        with contextlib.suppress(OSError):  # probe only once the run has written its pid there
            mine = lock.is_file() and lock.read_text().strip() == str(proc.pid)
        if mine and not first.exists():
            try:
                with OutputFolder(out, []).hold(check=False):
                    pass
            except OutputFolderError as err:
                held_before_commit = "in use by another pnpdiff run" in str(err) and not first.exists()
        time.sleep(0.02)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert held_before_commit
    assert first.is_file()
