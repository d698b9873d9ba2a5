"""Which code base a config belongs to is said only when pnpdiff is sure (issue 26).

Files shaped like other repositories' configs used to be attributed to DPS or DiffPIR: DDNM's
``hq_demo/confs/*.yml`` was "a DPS model config", RED-diff's ``_configs/algo/*.yaml`` (they have
``eta``) went through the DiffPIR translator and were called DiffPIR configs. The fixtures below
have the keys of those files (wyhuai/DDNM, NVlabs/RED-diff, zhangbingliang2019/DAPS); the messages
must name no code base they do not come from, and say what pnpdiff could not place.
"""

from __future__ import annotations

import pytest

from pnpdiff.config.files import load_yaml
from pnpdiff.config.peers import RECIPE_KEYS, detect, translate
from pnpdiff.config.restore import TOP_KEYS
from pnpdiff.errors import RecipeError

# wyhuai/DDNM hq_demo/confs/face256.yml (RePaint's guided-diffusion flags; the data block shortened)
DDNM_HQ_DEMO = """\
attention_resolutions: 32,16,8
class_cond: false
diffusion_steps: 1000
learn_sigma: true
noise_schedule: linear
num_channels: 256
num_head_channels: 64
num_heads: 4
num_res_blocks: 2
resblock_updown: true
use_fp16: false
use_scale_shift_norm: true
classifier_scale: 4.0
lr_kernel_n_std: 2
num_samples: 100
show_progress: true
timestep_respacing: '50'
use_kl: false
predict_xstart: false
rescale_timesteps: false
rescale_learned_sigmas: false
num_heads_upsample: -1
channel_mult: ''
dropout: 0.0
use_checkpoint: false
use_new_attention_order: false
clip_denoised: true
use_ddim: false
latex_name: RePaint
method_name: Repaint
image_size: 256
model_path: ./data/pretrained/celeba256_250000.pt
name: face256
inpa_inj_sched_prev: true
n_jobs: 1
print_estimated_vars: true
inpa_inj_sched_prev_cumnoise: false
schedule_jump_params:
  t_T: 50
  n_sample: 1
  jump_length: 1
  jump_n_sample: 1
data:
  eval:
    paper_face_mask:
      mask_loader: true
      gt_path: ./data/datasets/gts/face
      mask_path: ./data/datasets/gt_keep_masks/face
      image_size: 256
      batch_size: 1
"""
# wyhuai/DDNM configs/celeba_hq.yml
DDNM_MAIN = """\
data:
    dataset: "CelebA_HQ"
    image_size: 256
    channels: 3
model:
    type: "simple"
    ch: 128
    ch_mult: [1, 1, 2, 2, 4, 4]
    num_res_blocks: 2
    attn_resolutions: [16, ]
diffusion:
    beta_schedule: linear
    beta_start: 0.0001
    beta_end: 0.02
    num_diffusion_timesteps: 1000
sampling:
    batch_size: 8
    last_only: True
"""
# NVlabs/RED-diff _configs/algo/reddiff.yaml and dps.yaml
REDDIFF_ALGO = """\
name: "reddiff"
deg: "deno"
awd: True
cond_awd: False
obs_weight: 1.0
grad_term_weight: 0.25
denoise_term_weight: "linear"
sigma_y: 0.0
eta: 0.0
lr: 0.1
sigma_x0: 0.0
"""
REDDIFF_DPS_ALGO = """\
name: "dps"
deg: "deno"
awd: True
cond_awd: False
grad_term_weight: 0.1  #0.1 for in2_20ff, and 1.0 for sr4
sigma_y: 0.0
eta: 0.0
mcg: False
original: True
lr: 0.25
"""
# NVlabs/RED-diff _configs/model/ffhq256_uncond.yaml and _configs/diffusion/linear1000.yaml
REDDIFF_MODEL = """\
_target_: models.guided_diffusion.script_util.create_model
in_channels: 3
out_channels: 3
num_channels: 128
num_heads: 4
num_res_blocks: 1
attention_resolutions: "16"
learn_sigma: True
image_size: 256
ckpt: "ffhq_256"
"""
REDDIFF_DIFFUSION = "beta_schedule: linear\nbeta_start: 0.0001\nbeta_end: 0.02\nnum_diffusion_timesteps: 1000\n"
# zhangbingliang2019/DAPS configs/model/ffhq256ddpm.yaml (shortened) and configs/sampler/edm_daps.yaml
DAPS_MODEL = """\
name: 'ddpm'
model_config:
  image_size: 256
  num_channels: 128
  num_res_blocks: 1
  learn_sigma: True
  attention_resolutions: 16
  model_path: checkpoints/ffhq256.pt
"""
DAPS_SAMPLER = """\
latent: False

annealing_scheduler_config:
  name: 'edm'
  num_steps: 200
  sigma_max: 100
  sigma_min: 0.1
  timestep: 'poly-7'

diffusion_scheduler_config:
  name: 'edm'
  num_steps: 5
  sigma_min: 0.01
  timestep: 'poly-7'
"""
DAPS_OLD_SAMPLER = "latent: False\nnum_steps: 200\nsolver: 'daps'\nsigma_max: 100\nsigma_min: 0.1\nsigma_final: 0\n"


def test_the_fallback_recipe_keys_are_the_recipe_schema_s() -> None:
    """config.peers and config.restore read the one key list of config.keys (no copy to drift)."""
    assert RECIPE_KEYS is TOP_KEYS


@pytest.mark.parametrize(("text", "words"), [
    (DDNM_HQ_DEMO, ["a diffusion model's settings", "model_path", "could not place"]),
    (DAPS_MODEL, ["a diffusion model's settings", "model_path", "could not place"]),
    (REDDIFF_MODEL, ["a diffusion model's settings", "num_channels", "could not place"]),
    (DDNM_MAIN, ["could not place", "data, model, diffusion, sampling"]),
    (REDDIFF_ALGO, ["could not place", "name, deg, awd"]),
    (REDDIFF_DPS_ALGO, ["could not place", "name, deg, awd"]),
    (REDDIFF_DIFFUSION, ["could not place", "beta_schedule"]),
], ids=["ddnm-hq-demo", "daps-model", "reddiff-model", "ddnm-main", "reddiff-algo", "reddiff-dps-algo",
        "reddiff-diffusion"])
def test_configs_of_other_code_bases_are_not_attributed_to_a_peer(text: str, words: list[str]) -> None:
    with pytest.raises(RecipeError) as err:
        translate(load_yaml(text))
    message = str(err.value)
    for w in words:
        assert w in message, message
    # it names no code base: neither DPS nor DiffPIR nor DAPS as the file's origin
    assert "DPS model config" not in message and "DiffPIR config key" not in message
    assert "this is a" not in message
    assert "\n" not in message


def test_the_could_not_place_message_lists_the_recipe_keys_and_the_formats() -> None:
    with pytest.raises(RecipeError) as err:
        translate(load_yaml(REDDIFF_ALGO), source="algo/reddiff.yaml")
    message = str(err.value)
    assert message.startswith("algo/reddiff.yaml: pnpdiff could not place this file: it is not a pnpdiff recipe")
    assert "image, observed" in message and "docs/peer_configs.md" in message


@pytest.mark.parametrize(("text", "match"), [
    (DAPS_SAMPLER, "this is a DAPS sampler config .*not a task.*configs/task/"),
    (DAPS_OLD_SAMPLER, "this is a DAPS sampler config"),
])
def test_daps_sampler_configs_point_to_the_task_config(text: str, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        translate(load_yaml(text))


def test_a_generic_key_alone_no_longer_makes_a_diffpir_config() -> None:
    """``eta`` (RED-diff, DDNM) or ``beta_start`` alone do not place a file as DiffPIR's: a pnpdiff
    recipe with a stray ``eta`` gets the recipe's own "unknown key" message, not "a pnpdiff recipe key
    in a DiffPIR config"."""
    assert detect({"image": "a.png", "operator": "Identity", "eta": 0.0}) is None
    assert detect({"image": "a.png", "operator": "Identity", "beta_start": 0.0001}) is None
    assert detect({"noise_level_img": 12.75, "iter_num": 20, "sf": 4}) == "diffpir"


def test_detect_places_each_peer_format() -> None:
    from test_peers_published import DAPS_OLD_LAYOUT, DAPS_PUBLISHED, DIFFPIR_PUBLISHED, DPS_PUBLISHED

    assert {detect(load_yaml(t)) for t in DPS_PUBLISHED.values()} == {"dps"}
    assert {detect(load_yaml(t)) for t in DIFFPIR_PUBLISHED.values()} == {"diffpir"}
    assert {detect(load_yaml(t)) for t in (*DAPS_PUBLISHED.values(), *DAPS_OLD_LAYOUT.values())} == {"daps"}


def test_a_pnpdiff_recipe_with_a_daps_operator_name_is_left_to_the_recipe_schema() -> None:
    """A pnpdiff recipe that writes a DAPS operator name by mistake is no DAPS config: the schema
    says "unknown operator"."""
    assert detect({"image": "a.png", "operator": {"name": "gaussian_blur", "sigma": 2.0}}) is None


def test_recipe_keys_can_be_passed_in() -> None:
    data = {"noise_level_img": 12.75, "iter_num": 20, "sf": 4, "tile": 256}
    with pytest.raises(RecipeError, match="^tile: not a DiffPIR config key"):
        translate(data)
    with pytest.raises(RecipeError, match="^tile: a pnpdiff recipe key in a DiffPIR config"):
        translate(data, recipe_keys=(*RECIPE_KEYS, "tile"))
