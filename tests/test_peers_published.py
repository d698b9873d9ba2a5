"""The peers' own published configs, as their repositories hold them, read by pnpdiff.

The YAML texts below are the files of the three repositories, key for key (comments kept):
DiffPIR's ``configs/{sisr,deblur,inpaint}.yaml`` (yuanzhi-zhu/DiffPIR, both published versions:
the 2023 batched one with ``batch_size: 16`` and the current one), DPS's task configs
(DPS2022/diffusion-posterior-sampling ``configs/*_config.yaml``, current, and the first release's
Poisson-noise ones), and DAPS's task configs (zhangbingliang2019/DAPS ``configs/task/*.yaml``, and
the older ``config/task/*.yaml`` layout). Every key of a config that runs must be accepted, with
one row of the translation table each; the refusals must name the key and the reason.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from pnpdiff.config.files import load_yaml
from pnpdiff.config.peers import SCRIPT_SCALING, translate
from pnpdiff.config.restore import RECIPE_OPERATORS, parse_recipe
from pnpdiff.errors import RecipeError
from pnpdiff.runs.measure import build_operator

# ---------------------------------------------------------------------------------------------
# DiffPIR (yuanzhi-zhu/DiffPIR, configs/)
# ---------------------------------------------------------------------------------------------
_DIFFPIR_COMMON_2023 = """\
seed: 42

noise_level_img: {noise}
noise_level_model: noise_level_img
model_name: diffusion_ffhq_10m
testset_name: demo_test
num_train_timesteps: 1000
iter_num: {iters}
iter_num_U: 1
batch_size: 16

save_L: true
save_E: true

lambda_: {lam}
zeta: {zeta}
sub_1_analytic: true
log_process: false
ddim_sample: false
model_output_type: pred_xstart
generate_mode: DiffPIR
skip_type: quad
eta: {eta}
guidance_scale: 1.0 # effective guidance scale
n_channels: 3
cwd: ''

calc_LPIPS: true
beta_start: 0.0001
beta_end: 0.02

noise_init_img: max
skip_noise_model_t: false

"""
_DIFFPIR_TAILS = {
    "sr": "\n# sr\nsf: 4\nsr_mode: blur\ninIter: 1\ngamma: 0.01\n",
    "deblur": "\n# deblur\nsf: 1\nuse_DIY_kernel: true\nblur_mode: 'Gaussian'          # Gaussian; motion      \n"
              "kernel_size: 61\n\n",
    "inpaint": "\n# inpaint\nsf: 1\nmask_name: 'gt_keep_masks/face/000000.png'   # mask path for loading mask img\n"
               "load_mask: false\nmask_type: 'random'  #['box', 'random', 'both', 'extreme']\n"
               "mask_len_range: [128, 129]\nmask_prob_range: [0.5, 0.5]\nsave_progressive_mask: false\n\n",
}
_DIFFPIR_VALUES = {
    "sr": {"noise": "12.75", "iters": "100", "lam": "1", "zeta": "0.1", "eta": "0"},
    "deblur": {"noise": "12.75", "iters": "100", "lam": "1", "zeta": "0.1", "eta": "0"},
    "inpaint": {"noise": "0", "iters": "20", "lam": "1.", "zeta": "1.", "eta": "0."},
}
_TASK_NAMES = {"sr": "sr", "deblur": "deblur", "inpaint": "inpaint"}


def _diffpir(task: str, version: str) -> str:
    """DiffPIR's configs/<task>.yaml: ``2023`` (batched main_ddpir.py) or ``current``."""
    body = _DIFFPIR_COMMON_2023.format(**_DIFFPIR_VALUES[task])
    if version == "current":  # the current files drop batch_size and save more progress images
        body = body.replace("batch_size: 16\n", "").replace(
            "save_E: true\n", "save_E: false\nsave_LEH: false\nsave_progressive: true\n")
    return f"task: {_TASK_NAMES[task]}\n" + body + _DIFFPIR_TAILS[task]


#: name -> text of every published DiffPIR config
DIFFPIR_PUBLISHED = {f"{task}-{version}": _diffpir(task, version)
                     for task in ("sr", "deblur", "inpaint") for version in ("2023", "current")}

# ---------------------------------------------------------------------------------------------
# DPS (DPS2022/diffusion-posterior-sampling, configs/)
# ---------------------------------------------------------------------------------------------
_DPS_HEAD = ("conditioning:\n  method: ps\n  params:\n    scale: {scale}\n\n"
             "data:\n  name: ffhq\n  root: ./data/samples/\n\n")
DPS_PUBLISHED = {
    "super_resolution": _DPS_HEAD.format(scale=0.3) + (
        "measurement:\n  operator:\n    name: super_resolution\n    in_shape: !!python/tuple [1, 3, 256, 256]\n"
        "    scale_factor: 4\n  \n  noise: \n    name: gaussian\n    sigma: 0.05\n"),
    "gaussian_deblur": _DPS_HEAD.format(scale=0.3) + (
        "measurement:\n  operator:\n    name: gaussian_blur\n    kernel_size: 61\n    intensity: 3.0\n  \n"
        "  noise: \n    name: gaussian\n    sigma: 0.05\n"),
    "motion_deblur": _DPS_HEAD.format(scale=0.3) + (
        "measurement:\n  operator:\n    name: motion_blur\n    kernel_size: 61\n    intensity: 0.5\n\n"
        "  noise: \n    name: gaussian\n    sigma: 0.05\n"),
    "inpainting": _DPS_HEAD.format(scale=0.5) + (
        "measurement:\n  operator:\n    name: inpainting\n  mask_opt:\n    mask_type: random\n"
        "    # mask_len_range: !!python/tuple [128, 129]  # for box\n"
        "    mask_prob_range: !!python/tuple [0.3, 0.7]  # for random\n    image_size: 256\n\n\n"
        "  noise:\n    name: gaussian\n    sigma: 0.05\n"),
    "phase_retrieval": _DPS_HEAD.format(scale=1.0) + (
        "measurement:\n  operator:\n    name: phase_retrieval\n    oversample: 2.0\n\n"
        "  noise: \n    name: gaussian\n    sigma: 0.05\n"),
    "nonlinear_deblur": _DPS_HEAD.format(scale=0.3) + (
        "measurement:\n  operator:\n    name: nonlinear_blur\n"
        "    opt_yml_path: ./bkse/options/generate_blur/default.yml\n"
        "\n  noise: \n    name: gaussian\n    sigma: 0.05\n"),
}
#: the first release's Gaussian-deblur and phase-retrieval configs (Poisson noise; since replaced)
DPS_FIRST_RELEASE = {
    "gaussian_deblur": DPS_PUBLISHED["gaussian_deblur"].replace("name: gaussian\n    sigma: 0.05",
                                                                "name: poisson\n    rate: 1.0"),
    "phase_retrieval": DPS_PUBLISHED["phase_retrieval"].replace("name: gaussian\n    sigma: 0.05",
                                                                "name: poisson\n    rate: 1.0"),
}

# ---------------------------------------------------------------------------------------------
# DAPS (zhangbingliang2019/DAPS, configs/task/: one group per kind of model)
# ---------------------------------------------------------------------------------------------
_MCMC = ("  mcmc_sampler_config:  \n    num_steps: {n}\n    lr: {lr}\n    tau: 0.01\n    lr_min_ratio: {ratio}\n"
         "{momentum}    mc_algo: {algo}\n    prior_solver: gaussian\n  \n")
_GROUPS = (("pixel", "# pixel space task\n", "langevin"), ("pixel_hmc", "# pixel space task with hmc\n", "hmc"),
           ("ldm", "# latent diffusion model\n", "hmc"), ("sd", "# stable diffusion\n", "hmc"))


def _daps(operator: str, settings: list[tuple[int, str, str, str]], sd_sigma: str = "0.01") -> str:
    """A DAPS configs/task file: ``operator`` (the indented operator block, sigma last) under each group."""
    out = []
    for (group, comment, algo), (n, lr, ratio, momentum) in zip(_GROUPS, settings):
        mom = f"    momentum: {momentum}\n" if momentum else ""
        op = operator if group != "sd" else operator.replace("sigma: 0.05", f"sigma: {sd_sigma}")
        out.append(f"{comment}{group}:\n" + _MCMC.format(n=n, lr=lr, ratio=ratio, momentum=mom, algo=algo)
                   + "  operator:\n" + op + "\n")
    return "".join(out)


DAPS_PUBLISHED = {
    "down_sampling": _daps("    name: down_sampling\n    resolution: 256\n    scale_factor: 4\n    sigma: 0.05\n",
                           [(100, "1e-4", "0.01", ""), (12, "1.04e-4", "0.012", "0.90"),
                            (24, "1.35e-4", "0.023", "0.86"), (30, "1e-4", "1", "0.45")]),
    "gaussian_blur": _daps("    name: gaussian_blur\n    kernel_size: 61\n    intensity: 3.0\n    sigma: 0.05\n",
                           [(100, "1e-4", "0.01", ""), (82, "4.04e-5", "0.011", "0.10"),
                            (35, "2.70e-6", "0.95", "0.95"), (40, "1e-5", "1", "0.9")]),
    "motion_blur": _daps("    name: motion_blur\n    kernel_size: 61\n    intensity: 0.5\n    sigma: 0.05\n",
                         [(100, "5e-5", "0.01", ""), (96, "3.69e-5", "0.01", "0.11"),
                          (49, "2.4e-5 ", "0.041", "0.45"), (30, "2e-5", "1", "0.85")]),
    "inpainting": _daps("    name: inpainting\n    mask_type: box\n    mask_len_range: [128, 129]\n"
                        "    resolution: 256\n    sigma: 0.05\n",
                        [(100, "5e-5", "0.01", ""), (84, "1.15e-5", "0.014", "0.003"),
                         (15, "9.02e-6", "0.13", "0.74"), (58, "1.11e-6", "0.43", "0.92")]),
    "inpainting_rand": _daps("    name: inpainting\n    mask_type: random  \n"
                             "    mask_prob_range: [ 0.70, 0.71 ]  # for random\n"
                             "    resolution: 256\n    sigma: 0.05\n",
                             [(100, "1e-4", "0.01", ""), (11, "3.56e-5", "0.015", "0.80"),
                              (38, "8.40e-6", "0.013", "0.92"), (15, "3e-5", "1", "0.60")]),
    "phase_retrieval": _daps("    name: phase_retrieval\n    oversample: 2.0\n    sigma: 0.05\n",
                             [(100, "5e-5", "0.01", ""), (62, "9.75e-6", "0.019", "0.73"),
                              (65, "2.1e-5", "0.12", "0.41"), (95, "1.10e-4", "0.027", "0.47")]),
    "nonlinear_blur": _daps("    name: nonlinear_blur\n    opt_yml_path: forward_operator/bkse/options/generate_blur/"
                            "default.yml\n    sigma: 0.05\n",
                            [(200, "1e-5", "0.01", ""), (85, "1.20e-5", "0.012", "0.46"),
                             (80, "3.71e-6", "0.024", "0.91"), (60, "1e-5", "1", "0.80")]),
    "hdr": _daps("    name: high_dynamic_range\n    scale: 2\n    sigma: 0.05\n",
                 [(100, "2e-5", "0.01", ""), (100, "2.18e-5", "0.013", "0.23"),
                  (38, "4.52e-06", "0.015", "0.58"), (45, "1.0e-05", "1", "0.7")]),
}
#: the older layout (config/task/*.yaml of the first DAPS release): one group, Langevin estimator
DAPS_OLD_LAYOUT = {
    "down_sampling": "likelihood_estimator_config:\n  name: 'langevin'\n  step: 100\n  lr: 1e-4\n  ode_step: 10\n"
                     "  tau: 0.01\n\noperator:\n  name: down_sampling\n  resolution: 256\n  scale_factor: 4\n"
                     "  sigma: 0.05\n\n",
    "inpainting_rand": "likelihood_estimator_config:\n  name: 'langevin'\n  step: 100\n  lr: 1e-4\n  ode_step: 10\n"
                       "  tau: 0.01\n\noperator:\n  name: inpainting\n  mask_type: random  # box\n"
                       "  # mask_len_range: [128, 129]  # for box\n  mask_prob_range: [ 0.70, 0.71 ]  # for random\n"
                       "  resolution: 256\n  sigma: 0.05\n",
}


def leaf_paths(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out += leaf_paths(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


def listed(tr) -> list[str]:
    """The peer keys a translation has rows for (not the rows about absent keys)."""
    return [r[0] for r in tr.rows if not r[0].startswith("(") and not r[1].startswith("(absent")]


def _builds(recipe: dict, shape=(1, 3, 64, 64)) -> None:
    """The translated recipe parses (prior natural, a test image) and its operator builds and runs."""
    r = parse_recipe({**recipe, "image": "skimage:astronaut", "prior": "natural"})
    op = build_operator(copy.deepcopy(r.operator), shape)
    assert torch.isfinite(op(torch.rand(*shape))).all()


# ---------------------------------------------------------------------------------------------
# DiffPIR
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(DIFFPIR_PUBLISHED))
def test_diffpir_published_configs_are_accepted_key_for_key(name: str) -> None:
    """All three of DiffPIR's configs, both versions, translate: every key is translated or listed
    as read-and-ignored, with one row each (the 2023 files' ``batch_size: 16`` used to be refused as
    "a pnpdiff recipe key in a DiffPIR config")."""
    data = load_yaml(DIFFPIR_PUBLISHED[name])
    tr = translate(data)
    assert tr is not None and tr.kind == "diffpir"
    assert sorted(listed(tr)) == sorted(data), "every key exactly once"
    rows = {r[0]: r for r in tr.rows}
    if "batch_size" in data:
        assert rows["batch_size"][2] == "ignored (bookkeeping)" and "batch_size" not in tr.recipe
    assert tr.recipe["method"] == "diffpir" and tr.recipe["prior"] == "ffhq"
    _builds(tr.recipe)


@pytest.mark.parametrize("task", ["sr", "deblur", "inpaint"])
def test_diffpir_table_says_what_the_script_runs_instead(task: str) -> None:
    """DiffPIR's scripts do not run the lambda_ / zeta written (main_ddpir.py's closing loops):
    super-resolution sweeps 2..12 x lambda_ with zeta 0.25, deblurring runs 7 x lambda_ and 3 x zeta,
    inpainting the values written. pnpdiff runs the values written, and the table says both."""
    data = load_yaml(DIFFPIR_PUBLISHED[f"{task}-current"])
    tr = translate(data)
    rows = {r[0]: r[3] for r in tr.rows}
    lam, zeta = float(data["lambda_"]), float(data["zeta"])
    assert tr.recipe["options"]["lam"] == lam / 4 and tr.recipe["options"]["zeta"] == zeta  # as written
    mults, zeta_mult, zeta_fixed = SCRIPT_SCALING[task]
    if task == "sr":
        assert mults == tuple(range(2, 13)) and zeta_fixed == 0.25
        assert "sweep lambda_ x 2 .. 12 = 2 .. 12 (options.lam=0.5 .. 3)" in rows["lambda_"]
        assert "run zeta 0.25 for this task" in rows["zeta"] and "options.zeta=0.25" in rows["zeta"]
    elif task == "deblur":
        assert mults == (7,) and zeta_mult == 3
        assert "run 7 x lambda_ = 7" in rows["lambda_"] and "options.lam=1.75" in rows["lambda_"]
        assert "run 3 x zeta = 0.3" in rows["zeta"] and "options.zeta=0.3" in rows["zeta"]
    else:
        assert "run lambda_ as written" in rows["lambda_"] and "run zeta as written" in rows["zeta"]
    for key in ("lambda_", "zeta"):
        assert task == "inpaint" or "pnpdiff runs the value written" in rows[key]


def test_diffpir_batch_size_is_not_a_mixed_key_but_pnpdiff_keys_still_are() -> None:
    data = load_yaml(DIFFPIR_PUBLISHED["sr-2023"])
    with pytest.raises(RecipeError, match="^steps: a pnpdiff recipe key in a DiffPIR config"):
        translate({**data, "steps": 5})


# ---------------------------------------------------------------------------------------------
# DPS
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in DPS_PUBLISHED if n != "nonlinear_deblur"])
def test_dps_published_configs_translate(name: str) -> None:
    data = load_yaml(DPS_PUBLISHED[name])
    tr = translate(data)
    assert tr.kind == "dps" and tr.recipe["method"] == "dps"
    assert sorted(listed(tr)) == sorted(leaf_paths(data))
    assert tr.recipe["noise"] == {"sigma_y": 0.025}  # the current configs: Gaussian 0.05 on [-1, 1]
    if name == "phase_retrieval":
        # PhaseRetrieval(oversample: float in [0, 16]) is the operator's whole constructor
        assert tr.recipe["operator"] == {"name": "PhaseRetrieval", "oversample": 2.0}
        from pnpdiff.operators import PhaseRetrieval

        PhaseRetrieval(**{k: v for k, v in tr.recipe["operator"].items() if k != "name"})
        if "PhaseRetrieval" not in RECIPE_OPERATORS:
            pytest.skip("recipes do not build PhaseRetrieval yet")
    _builds(tr.recipe)


def test_dps_phase_retrieval_oversample_beyond_the_operator_is_one_line() -> None:
    data = load_yaml(DPS_PUBLISHED["phase_retrieval"].replace("oversample: 2.0", "oversample: 40.0"))
    with pytest.raises(RecipeError, match=r"^measurement.operator.oversample: expected a number in \[0, 16\]"):
        translate(data)


@pytest.mark.parametrize("name", sorted(DPS_FIRST_RELEASE))
def test_dps_first_release_poisson_configs_translate_to_the_poisson_model(name: str) -> None:
    """DPS's PoissonNoise draws ``Poisson(255 rate x) / (255 rate)`` on [0, 1] images: rate 1 is 255
    photons at white, and the recipe validates with it (model and peak in the one noise validator)."""
    tr = translate(load_yaml(DPS_FIRST_RELEASE[name]))
    assert tr.recipe["noise"] == {"model": "poisson", "peak": 255.0}
    assert any(r[0] == "measurement.noise.rate" and "255" in r[3] for r in tr.rows), tr.rows
    recipe = parse_recipe({**tr.recipe, "image": "skimage:camera", "size": 32})
    assert recipe.noise_model == {"model": "poisson", "peak": 255.0} and recipe.sigma_y is None


def test_dps_nonlinear_deblur_is_refused_naming_the_learned_blur() -> None:
    with pytest.raises(RecipeError, match="^measurement.operator.name: nonlinear_blur needs DPS's learned blur"):
        translate(load_yaml(DPS_PUBLISHED["nonlinear_deblur"]))


# ---------------------------------------------------------------------------------------------
# DAPS
# ---------------------------------------------------------------------------------------------
# (operator spec, size, sigma_y, pnpdiff lr): lr = 2 lr_DAPS / tau^2 for the image-domain operators
# (capped at 1), lr_DAPS / (2 tau^2) for phase retrieval; sigma_y = sigma / 2, or sigma for phase retrieval
DAPS_EXPECTED = {
    "down_sampling": ({"name": "Downsample", "factor": 4, "filter": "bicubic"}, [256, 256], 0.025, 1.0),
    "gaussian_blur": ({"name": "GaussianBlur", "sigma": 3.0, "kernel_size": 61, "boundary": "reflect"}, None,
                      0.025, 1.0),
    "motion_blur": ({"name": "MotionBlur", "size": 61, "intensity": 0.5, "seed": 0, "boundary": "reflect"}, None,
                    0.025, 1.0),
    "inpainting": ({"name": "Inpaint", "mask": {"kind": "box", "box_size": 128, "position": "random", "margin": 32,
                                                "seed": 0}}, 256, 0.025, 1.0),
    "inpainting_rand": ({"name": "Inpaint", "mask": {"kind": "random", "p_missing": 0.705, "seed": 0}}, 256, 0.025,
                        1.0),
    "phase_retrieval": ({"name": "PhaseRetrieval", "oversample": 2.0}, None, 0.05, 0.25),
}


@pytest.mark.parametrize("name", sorted(DAPS_EXPECTED))
def test_daps_published_task_configs_translate_per_operator(name: str) -> None:
    data = load_yaml(DAPS_PUBLISHED[name])
    tr = translate(data)
    assert tr is not None and tr.kind == "daps" and tr.recipe["method"] == "daps"
    spec, size, sigma_y, lr = DAPS_EXPECTED[name]
    assert tr.recipe["operator"] == spec
    assert tr.recipe.get("size") == size
    assert tr.recipe["noise"]["sigma_y"] == pytest.approx(sigma_y, rel=1e-12)
    opts = tr.recipe["options"]
    linear = name != "phase_retrieval"
    assert opts["langevin_steps"] == 100 and opts["lr_min_ratio"] == 0.01
    assert opts["beta_y"] == pytest.approx(0.01 / (2 * math.sqrt(2)) if linear else 0.01 / math.sqrt(2), rel=1e-12)
    assert opts["lr"] == pytest.approx(lr, rel=1e-12)
    # every key of the pixel group has a row; each other group one row
    assert sorted(listed(tr)) == sorted(leaf_paths(data["pixel"], "pixel.") + ["pixel_hmc", "ldm", "sd"])
    rows = {r[0]: r for r in tr.rows}
    for group in ("pixel_hmc", "ldm", "sd"):
        assert rows[group][2] == "ignored" and f"task_group={group}" in rows[group][3]
    if name == "phase_retrieval" and "PhaseRetrieval" not in RECIPE_OPERATORS:
        pytest.skip("recipes do not build PhaseRetrieval yet")
    r = parse_recipe({**tr.recipe, "image": "skimage:astronaut", "prior": "natural"})
    assert r.method == "daps" and r.options == opts
    if name != "phase_retrieval":
        side = 256 if name.startswith("inpainting") else 64  # DAPS's 128-pixel box needs its 256 image
        _builds({**tr.recipe, "size": side}, (1, 3, side, side))


def test_daps_capped_step_is_said_in_the_table() -> None:
    tr = translate(load_yaml(DAPS_PUBLISHED["down_sampling"]))
    (row,) = [r for r in tr.rows if r[0] == "pixel.mcmc_sampler_config.lr"]
    assert row[3].startswith("1, capped: 2 lr / tau^2 = 2 is DAPS's step")
    tr = translate(load_yaml(DAPS_PUBLISHED["motion_blur"]))  # lr 5e-5: exactly 1, not capped
    (row,) = [r for r in tr.rows if r[0] == "pixel.mcmc_sampler_config.lr"]
    assert row[3].startswith("1 (= 2 lr / tau^2")


@pytest.mark.parametrize(("name", "match"), [
    ("nonlinear_blur", "^pixel.operator.name: nonlinear_blur needs the learned blur network"),
    ("hdr", r"^pixel.operator.name: high_dynamic_range \(clip\(scale x, -1, 1\): a hard clip\) has no pnpdiff"),
])
def test_daps_operators_pnpdiff_does_not_have_are_refused(name: str, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        translate(load_yaml(DAPS_PUBLISHED[name]))


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d.pop("pixel"), "^pixel: missing: pnpdiff translates DAPS's pixel-space group"),
    (lambda d: [d.pop(k) for k in ("pixel", "ldm", "sd")], "^pixel_hmc.mcmc_sampler_config.mc_algo: hmc"),
    (lambda d: [d.pop(k) for k in ("pixel", "pixel_hmc", "sd")], "^ldm: DAPS's group for a latent diffusion model"),
    (lambda d: d["pixel"]["mcmc_sampler_config"].update(prior_solver="exact"),
     "^pixel.mcmc_sampler_config.prior_solver: 'exact' is not in pnpdiff's daps"),
    (lambda d: d["pixel"]["mcmc_sampler_config"].update(lr_min_ratio=2),
     r"^pixel.mcmc_sampler_config.lr_min_ratio: expected a number in \(0, 1\]"),
    (lambda d: d["pixel"]["mcmc_sampler_config"].update(steps=3),
     "^pixel.mcmc_sampler_config.steps: unknown DAPS mcmc_sampler_config key"),
    (lambda d: d["pixel"]["operator"].pop("sigma"), "^pixel.operator.sigma: missing"),
    (lambda d: d["pixel"]["operator"].update(factor=2), "^pixel.operator.factor: DAPS's down_sampling operator has"),
    (lambda d: d["pixel"]["operator"].update(resolution=250), "^pixel.operator.resolution: 250 is not a multiple"),
    (lambda d: d["pixel"].pop("mcmc_sampler_config"), "^pixel.mcmc_sampler_config: missing"),
    (lambda d: d.update(steps=10), "^steps: a pnpdiff recipe key in a DAPS task config"),
    (lambda d: d.update(task_group="pixel"), "^task_group: not a DAPS task group"),
])
def test_daps_error_cases(edit, match: str) -> None:
    data = load_yaml(DAPS_PUBLISHED["down_sampling"])
    edit(data)
    with pytest.raises(RecipeError, match=match):
        translate(data)


@pytest.mark.parametrize("name", sorted(DAPS_OLD_LAYOUT))
def test_daps_older_layout_translates_with_its_ode_steps(name: str) -> None:
    data = load_yaml(DAPS_OLD_LAYOUT[name])
    tr = translate(data)
    assert tr.kind == "daps"
    assert tr.recipe["operator"] == DAPS_EXPECTED[name][0]
    assert tr.recipe["options"] == {"langevin_steps": 100, "beta_y": pytest.approx(0.01 / (2 * math.sqrt(2))),
                                    "lr": 1.0, "lr_min_ratio": 0.01, "ode_steps": 10}
    assert sorted(listed(tr)) == sorted(leaf_paths(data))
