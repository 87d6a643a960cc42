"""Replay: a choice that matches no source, or no choice among several, names every source the
cache holds with its line count; the folder entry points do not choose the OpenAI default."""
import numpy as np
import pytest

from experiments.configs import labelled_gem, lsun_gem
from gem_jax.scorers import (
  ReplaySelectionError,
  ScoreCache,
  ScorerError,
  default_model,
  make_scorer,
)
from gem_jax.scorers.images import image_sha256

SOURCES = [("openai", "gpt-4o-mini", "fig3-v1", 3), ("gemini", "gemini-2.5-flash", "fig3-v1", 2),
           ("openai", "gpt-4o-mini", "fig3-v0", 1)]


def write_cache(path, sources=SOURCES):
  """A score cache with `count` lines of each (backend, model, prompt_version, count)."""
  cache = ScoreCache(path)
  for k, (backend, model, prompt, count) in enumerate(sources):
    for i in range(count):
      cache.append(f"{k:02d}{i:062d}", backend, model, prompt, ["x"], [i % 6])
  cache.close()
  return path


HOLDS = ("the file holds:\n"
         "  backend='gemini', model='gemini-2.5-flash', prompt_version='fig3-v1': 2 line(s)\n"
         "  backend='openai', model='gpt-4o-mini', prompt_version='fig3-v0': 1 line(s)\n"
         "  backend='openai', model='gpt-4o-mini', prompt_version='fig3-v1': 3 line(s)\n"
         "choose one with config.gem.scorer.model=<model> (score_attributes: --model; in code "
         "ReplayScorer(path, backend=..., model=..., prompt_version=...))")


def test_a_choice_that_matches_nothing_lists_every_source(tmp_path):
  path = write_cache(tmp_path / "cache.jsonl")
  with pytest.raises(ReplaySelectionError) as info:
    make_scorer("replay", "gpt-4o", replay_path=str(path))
  assert str(info.value) == f"replay scorer: no scores in {path} match model='gpt-4o'; {HOLDS}"
  assert isinstance(info.value, ScorerError)  # the CLI's one-line domain error


def test_several_sources_without_a_choice_list_every_source(tmp_path):
  path = write_cache(tmp_path / "cache.jsonl")
  with pytest.raises(ReplaySelectionError) as info:
    make_scorer("replay", replay_path=str(path))
  assert str(info.value) == f"replay scorer: {path} holds scores of several sources; {HOLDS}"
  with pytest.raises(ReplaySelectionError) as info:
    make_scorer("replay", "gpt-4o-mini", replay_path=str(path))
  assert "holds scores of several sources" in str(info.value)
  scorer = make_scorer("replay", "gemini-2.5-flash", replay_path=str(path))
  assert len(scorer) == 2 and scorer.source_backend == "gemini"


@pytest.mark.parametrize("module", [lsun_gem, labelled_gem])
def test_the_folder_configs_replay_whatever_model_the_cache_holds(tmp_path, module):
  config = module.get_config()
  assert config.gem.scorer.model is None
  assert default_model(config.gem.scorer.backend, config.gem.scorer.model) == "gpt-4o"
  image = np.zeros((4, 4, 3), np.uint8)
  path = tmp_path / "cache.jsonl"
  cache = ScoreCache(path)
  cache.append(image_sha256(image), "openai", "gpt-4o-mini", "fig3-v1", ["x"], [4])
  cache.close()
  scorer = make_scorer("replay", config.gem.scorer.model, replay_path=str(path))
  assert scorer.source_model == "gpt-4o-mini"
  assert scorer.score(image[None], ["x"]).tolist() == [[4]]
