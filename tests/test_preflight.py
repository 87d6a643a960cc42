"""preflight: the data set is found and large enough, and GEM's scorer has its key and an
endpoint that answers, before any preparation, training or scoring."""
import socket

import numpy as np
import pytest
from fake_gemini_server import GeminiFakeServer
from fake_servers import OpenAIFakeServer, Reply
from PIL import Image
from scorer_helpers import GEMINI_KEY, OPENAI_KEY, fake_env
from test_celeba import write_fake_celeba
from test_config_checks import make_config

from experiments.configs import celeba_gem, lsun_gem
from gem_jax.config_checks import ConfigError
from gem_jax.data import DataNotFoundError, DataSurvey, get_dataset
from gem_jax.data.celeba_builder import celeba_builder
from gem_jax.preflight import check_data, preflight
from gem_jax.scorers import ScorerAuthError, ScorerRequestError, list_models, make_scorer

TINY = "data: train 512, test 128 images (synthetic_faces/tiny)"
NO_OPENAI_KEY = ("openai scorer: no API key. Set the environment variable OPENAI_API_KEY (keys "
                 "are read only from the environment), or use backend='oracle' explicitly for "
                 "an offline SIMULATION.")


def write_images(folder, n):
  """n small PNGs (20x20, one grey level each) in `folder`."""
  folder.mkdir(parents=True)
  for i in range(n):
    Image.fromarray(np.full((20, 20, 3), i, np.uint8)).save(folder / f"{i:03d}.png")
  return folder


def folder_config(tmp_path, num_images, **overrides):
  """lsun_gem's tiny config on a fresh folder of `num_images` PNGs (tfds data_dir in tmp)."""
  config = make_config("tiny", lsun_gem, **overrides)
  config.data.image_dir = str(write_images(tmp_path / "images", num_images))
  config.data.data_dir = str(tmp_path / "tfds")
  return config


def tiny(tmp_path, tokens="tiny", **overrides):
  """synthetic_faces/tiny in a tfds data_dir that is never prepared by these tests."""
  return make_config(tokens, data__data_dir=str(tmp_path / "tfds"), **overrides)


def closed_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_a_small_image_folder_is_refused_before_preparation(tmp_path):
  config = folder_config(tmp_path, 16)
  folder = config.data.image_dir
  with pytest.raises(ConfigError) as info:
    check_data(config)
  assert str(info.value) == (
      "2 problems with the config:\n"
      "  config.gem.num_scored_images=128: must be at most the 15 images of the 'train' split "
      f"(image folder {folder}, 16 files)\n"
      "  config.data.eval_split='test': must hold >= 8 images (the sample grids'); it holds 1 "
      f"(image folder {folder}, 16 files)")
  assert not (tmp_path / "tfds").exists()


def test_a_large_enough_image_folder_passes_uncounted_by_preparation(tmp_path):
  config = folder_config(tmp_path, 160, gem__scorer__backend="replay",
                         gem__scorer__replay_path=str(tmp_path / "images" / "000.png"))
  assert preflight(config, tmp_path / "run") == [
      f"data: train 152, test 8 images (image folder {config.data.image_dir}, 160 files)",
      "scorer: replay (recorded scores; no network)"]
  assert not (tmp_path / "tfds").exists() and not (tmp_path / "run").exists()


def test_an_absent_image_folder_is_the_builders_message(tmp_path):
  config = make_config("tiny", lsun_gem, data__image_dir=str(tmp_path / "none"))
  with pytest.raises(DataNotFoundError, match="^image folder .*none does not exist; point "
                     "config.data.image_dir at a folder of images.$"):
    check_data(config)


def test_absent_celeba_is_the_builders_message(tmp_path):
  config = celeba_gem.get_config("oracle")
  config.data.celeba_dir, config.data.data_dir = str(tmp_path), str(tmp_path / "tfds")
  with pytest.raises(DataNotFoundError, match="^CelebA not found: missing img_align_celeba, "):
    check_data(config)


def test_celeba_is_counted_from_its_partition_list_then_from_the_prepared_copy(tmp_path):
  root = tmp_path / "celeba"
  write_fake_celeba(root)  # 3 train, 2 validation, 1 test
  config = celeba_gem.get_config("oracle")
  config.data.celeba_dir, config.data.data_dir = str(root), str(tmp_path / "tfds")
  sizes = {"train": 3, "validation": 2, "test": 1}
  survey = get_dataset(config.data).survey(config.data)
  assert survey == DataSurvey(sizes, 64, f"CelebA in {root} (not prepared yet)")
  with pytest.raises(ConfigError) as info:
    check_data(config)
  where = "of the 'train' split (CelebA in " + str(root) + " (not prepared yet))"
  assert info.value.problems == [
      f"config.train.batch_size=32: must be at most the 3 images {where}",
      f"config.gem.warmup_batch_size=64: must be at most the 3 images {where}",
      f"config.gem.num_scored_images=1500: must be at most the 3 images {where}",
      "config.data.eval_split='validation': must hold >= 8 images (the sample grids'); it holds "
      f"2 (CelebA in {root} (not prepared yet))"]
  builder = celeba_builder(config.data)
  assert get_dataset(config.data).survey(config.data) == DataSurvey(
      sizes, 64, f"celeba_local/crop64 in {builder.data_dir}")


@pytest.mark.parametrize("overrides,message", [
    (dict(gem__num_scored_images=1000), "config.gem.num_scored_images=1000: must be at most "
     "the 512 images of the 'train' split (synthetic_faces/tiny)"),
    (dict(train__batch_size=1024, gem__warmup_batch_size=600), "2 problems with the config:\n"
     "  config.train.batch_size=1024: must be at most the 512 images of the 'train' split "
     "(synthetic_faces/tiny)\n  config.gem.warmup_batch_size=600: must be at most the 512 "
     "images of the 'train' split (synthetic_faces/tiny)"),
    (dict(data__eval_split="validation"), "config.data.eval_split='validation': no such split; "
     "the data set has train 512, test 128 images (synthetic_faces/tiny)"),
    (dict(model__image_size=128), "config.model.image_size=128: must be the data set's image "
     "size, 64 (synthetic_faces/tiny)"),
    (dict(data__config="huge"), "config.data.config='huge': unknown synthetic_faces config; "
     "expected one of default, small, tiny"),
])
def test_what_the_data_set_cannot_give_is_named(tmp_path, overrides, message):
  with pytest.raises(ConfigError) as info:
    check_data(tiny(tmp_path, **overrides))
  assert str(info.value) == message


def test_missing_openai_key_stops_the_preflight(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  monkeypatch.delenv("OPENAI_API_KEY")
  with pytest.raises(ScorerAuthError) as info:
    preflight(tiny(tmp_path, gem__scorer__backend="openai"), tmp_path / "run")
  assert str(info.value) == NO_OPENAI_KEY


def test_missing_gemini_key_names_its_variable(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  monkeypatch.delenv("GEMINI_API_KEY")
  with pytest.raises(ScorerAuthError, match="^gemini scorer: no API key. Set the environment "
                     "variable GEMINI_API_KEY "):
    preflight(tiny(tmp_path, gem__scorer__backend="gemini"), tmp_path / "run")


def test_a_reachable_openai_server_passes_with_one_models_request(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  with OpenAIFakeServer(api_key=OPENAI_KEY) as srv:
    url = srv.base_url
    config = tiny(tmp_path, gem__scorer__backend="openai", gem__scorer__base_url=url)
    lines = preflight(config, tmp_path / "run")
  assert lines == [TINY, f"scorer: openai:gpt-4o at {url} answered and lists 'gpt-4o'"]
  assert [(r.method, r.path) for r in srv.requests] == [("GET", "/v1/models")]
  assert not (tmp_path / "run").exists()


def test_a_reachable_gemini_server_passes_with_one_models_request(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  with GeminiFakeServer(api_key=GEMINI_KEY) as srv:
    url = srv.base_url
    config = tiny(tmp_path, gem__scorer__backend="gemini", gem__scorer__base_url=url)
    lines = preflight(config, tmp_path / "run")
  assert lines[1] == (f"scorer: gemini:gemini-2.5-flash at {url} answered and lists "
                      "'gemini-2.5-flash'")
  assert [(r.method, r.path) for r in srv.requests] == [("GET", "/v1/models?pageSize=100")]


def test_a_model_the_server_does_not_list_is_a_warning_line(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  with OpenAIFakeServer(models=["llava:latest"]) as srv:
    url = srv.base_url
    config = tiny(tmp_path, gem__scorer__backend="openai", gem__scorer__base_url=url)
    lines = preflight(config, tmp_path / "run")
  assert lines[1] == (f"scorer: openai:gpt-4o at {url} answered; its models list does "
                      "not name 'gpt-4o' (it names llava:latest): scoring may fail")


def test_an_unreachable_base_url_fails_naming_it(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  url = f"http://127.0.0.1:{closed_port()}/v1"
  with pytest.raises(ScorerRequestError) as info:
    preflight(tiny(tmp_path, gem__scorer__backend="openai", gem__scorer__base_url=url),
              tmp_path / "run")
  assert str(info.value) == (f"openai scorer: {url} did not answer a models-list request "
                             "(connection error: Connection error.). Check base_url and that "
                             "the server is running.")


def test_a_wrong_key_fails_naming_its_variable(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  with OpenAIFakeServer(api_key="sk-another-key") as srv:
    config = tiny(tmp_path, gem__scorer__backend="openai", gem__scorer__base_url=srv.base_url)
    with pytest.raises(ScorerAuthError) as info:
      preflight(config, tmp_path / "run")
  assert str(info.value) == (
      "openai scorer: HTTP 401 from the server for model 'gpt-4o': the API key in the "
      "environment variable OPENAI_API_KEY is absent, invalid or not allowed to use this model. "
      "Set OPENAI_API_KEY to a valid key. Server said: Error code: 401 - Incorrect API key "
      "provided.")


def test_a_server_without_models_list_still_answers_but_a_500_fails(monkeypatch):
  fake_env(monkeypatch)
  with OpenAIFakeServer(script=[Reply.error(404), Reply.error(500, "overloaded")]) as srv:
    url = srv.base_url
    scorer = make_scorer("openai", base_url=srv.base_url, progress=False)
    assert list_models(scorer) is None
    with pytest.raises(ScorerRequestError) as info:
      list_models(scorer)
  assert str(info.value) == (f"openai scorer: {url} answered a models-list request "
                             "with HTTP 500 (Error code: 500 - overloaded). Check base_url and "
                             "that the server is running.")
  assert srv.num_requests == 2  # never retried


def test_a_dry_run_sends_nothing_and_estimates_the_cost(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  monkeypatch.delenv("OPENAI_API_KEY")
  lines = preflight(tiny(tmp_path, gem__scorer__backend="openai"), tmp_path / "run",
                    dry_run=True)
  assert lines == [
      TINY,
      "scorer: openai:gpt-4o: 128 requests, ~40,448 input + ~2,688 output tokens, estimated cost "
      "~$0.13 (an estimate; re-asks/retries not included); answers already in the run's cache "
      "are not sent again",
      f"scorer: a real run would stop here: {NO_OPENAI_KEY}"]
  with OpenAIFakeServer() as srv:
    config = tiny(tmp_path, gem__scorer__backend="openai", gem__scorer__base_url=srv.base_url)
    lines = preflight(config, tmp_path / "run", dry_run=True)
  assert "estimated cost unknown (model not in the price table)" in lines[1]
  assert srv.num_requests == 0


def test_saved_scores_need_no_scorer(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  monkeypatch.delenv("OPENAI_API_KEY")
  (tmp_path / "run" / "scores").mkdir(parents=True)
  np.save(tmp_path / "run" / "scores" / "scores.npy", np.zeros((64, 6), np.int32))
  lines = preflight(tiny(tmp_path, gem__scorer__backend="openai"), tmp_path / "run")
  assert lines[1] == (f"scorer: not needed, the scores in {tmp_path}/run/scores/scores.npy are "
                      "reused")
  # Scores of an incomplete scoring stage are not reused: the scorer is checked again.
  (tmp_path / "run" / "scores" / "stage.json").write_text('{"complete": false}')
  with pytest.raises(ScorerAuthError, match="OPENAI_API_KEY"):
    preflight(tiny(tmp_path, gem__scorer__backend="openai"), tmp_path / "run")


def test_a_run_without_scoring_does_not_check_the_scorer(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  monkeypatch.delenv("OPENAI_API_KEY")
  config = tiny(tmp_path, "tiny,beta_vae", gem__scorer__backend="openai")
  assert preflight(config, tmp_path / "run") == [TINY]


def test_the_oracle_needs_labels_for_every_attribute(tmp_path):
  config = folder_config(tmp_path, 160, gem__scorer__backend="oracle", gem__scorer__model=None)
  with pytest.raises(ConfigError) as info:
    preflight(config, tmp_path / "run")
  assert str(info.value) == ("config.gem.scorer.backend='oracle': the oracle SIMULATION reads "
                             "the data set's labels and image_folder has none; use openai, "
                             "gemini or replay")
  with pytest.raises(ConfigError) as info:
    preflight(tiny(tmp_path, gem__attributes="bangs,hat"), tmp_path / "run")
  assert str(info.value) == (
      "config.gem.attributes='bangs,hat': unknown attribute 'hat' for synthetic_faces: the "
      "oracle can only score the data set's labels. Valid names: bangs, bald, gender, beard, "
      "blond, makeup")


def test_replay_needs_its_file(tmp_path):
  missing = str(tmp_path / "none.jsonl")
  config = tiny(tmp_path, gem__scorer__backend="replay", gem__scorer__replay_path=missing)
  with pytest.raises(ConfigError) as info:
    preflight(config, tmp_path / "run")
  assert str(info.value) == f"config.gem.scorer.replay_path='{missing}': no such file"
