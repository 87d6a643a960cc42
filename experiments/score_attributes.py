r"""Score a data set's images with an MLLM (or the oracle SIMULATION) and map the relations.

    # offline, simulated scores from the synthetic_faces labels (accuracy 0.884):
    python -m experiments.score_attributes --backend oracle --dataset synthetic_faces \
        --data_config small --num_images 1500 --bootstrap 200 --out runs/oracle_small
    # the same SIMULATION with MLLM-like, systematic errors (docs/scorers.md):
    python -m experiments.score_attributes --backend oracle --error_model realistic \
        --num_images 1500 --out runs/oracle_realistic
    # GPT-4o (key from $OPENAI_API_KEY); check the cost first:
    python -m experiments.score_attributes --backend openai --model gpt-4o \
        --out runs/gpt4o --dry_run
    # any OpenAI-compatible server (vLLM, Ollama, LM Studio):
    python -m experiments.score_attributes --backend openai \
        --model Qwen/Qwen2.5-VL-7B-Instruct --base_url http://localhost:8000/v1 --out runs/qwen
    # Gemini (key from $GEMINI_API_KEY):
    python -m experiments.score_attributes --backend gemini --model gemini-2.5-flash --out runs/g

Writes to --out: scores.npy + scores.json, somers_d.npy + somers_d.json + somers_d.png, and,
where the data set has labels, scorer_accuracy.json + somers_d_vs_truth.png (see
`gem_jax.scoring.run_scoring`). Answers go to <out>/score_cache.jsonl as they arrive: rerun
the same command to resume with zero repeated requests. Keys are read from the environment
only and never printed. Flags are spelled with underscores; the hyphenated spellings
(--num-images, --data-config, ...) are accepted too.
"""

from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags

from experiments import cli
from gem_jax.data import DataNotFoundError
from gem_jax.scorers import BACKENDS, ORACLE_ERROR_MODELS, ScorerError
from gem_jax.scoring import ScoringError, ScoringOptions, run_scoring

_BACKENDS = list(BACKENDS)


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the flags of this program on `fv` (the global FLAGS by default)."""
  d = dict(flag_values=fv)
  flags.DEFINE_enum(
      "backend",
      None,
      _BACKENDS,
      "Scorer: openai | gemini | oracle (offline SIMULATION) | replay.",
      **d,
  )
  flags.DEFINE_string(
      "model",
      None,
      "Model name (default gpt-4o / gemini-2.5-flash; the " "oracle names itself, leave it out).",
      **d,
  )
  flags.DEFINE_string(
      "base_url",
      None,
      "OpenAI-compatible (or Gemini) server URL, e.g. " "http://localhost:8000/v1.",
      **d,
  )
  flags.DEFINE_string("dataset", "synthetic_faces", "Data set name (gem_jax.data.DATASETS).", **d)
  flags.DEFINE_string(
      "data_config", "default", "Builder config, synthetic_faces: tiny | small | default.", **d
  )
  flags.DEFINE_string(
      "data_dir", None, "tfds data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets).", **d
  )
  flags.DEFINE_string("split", "train", "Split whose first --num_images images are scored.", **d)
  flags.DEFINE_list(
      "attributes", "bangs,bald,gender,beard,blond,makeup", "Comma-separated attribute names.", **d
  )
  flags.DEFINE_integer("num_images", 1500, "How many images (the first of the split).", **d)
  flags.DEFINE_string("out", None, "Output folder.", **d)
  flags.DEFINE_string("cache", None, "Answer cache (default <out>/score_cache.jsonl).", **d)
  flags.DEFINE_bool(
      "dry_run", False, "Print the request count and the estimated token cost; send nothing.", **d
  )
  flags.DEFINE_integer("concurrency", 8, "Requests in flight (openai/gemini).", **d)
  flags.DEFINE_float(
      "requests_per_minute", None, "Rate limit (default: the backend's; 0 = none).", **d
  )
  flags.DEFINE_enum(
      "response_format",
      None,
      ["json_schema", "json_object", "none"],
      "openai: structured-output mode (default json_schema).",
      **d,
  )
  flags.DEFINE_float(
      "accuracy", 0.884, "Oracle: probability of the true level (realistic: the mean over "
      "the attributes).", **d
  )
  flags.DEFINE_enum(
      "error_model",
      "uniform",
      list(ORACLE_ERROR_MODELS),
      "Oracle SIMULATION: wrong levels uniform over the others, +-1 (adjacent), "
      "miscalibrated (calibrated), or MLLM-like (realistic; docs/scorers.md).",
      **d,
  )
  flags.DEFINE_integer("seed", 0, "Oracle noise and bootstrap seed.", **d)
  flags.DEFINE_integer(
      "bootstrap", 0, "Bootstrap resamples for 95% CIs of Somers' D (0 = none).", **d
  )
  flags.DEFINE_string("replay_path", None, "replay: a score cache .jsonl or an .npz.", **d)
  flags.DEFINE_bool("progress", True, "Show the tqdm progress bar.", **d)
  flags.DEFINE_bool("plots", True, "Write the PNG heatmaps.", **d)


def normalize_argv(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> list[str]:
  """--num-images=3 -> --num_images=3 (and --no-dry-run -> --nodry_run) for defined flags."""
  out = [argv[0]] if argv else []
  for arg in list(argv)[1:]:
    if arg == "--":
      out.extend(argv[len(out) :])
      break
    if arg.startswith("--") and "-" in arg[2:].split("=", 1)[0]:
      name, eq, value = arg[2:].partition("=")
      under = name.replace("-", "_")
      if under.startswith("no_") and under[3:] in fv:
        under = "no" + under[3:]
      if under in fv or (under.startswith("no") and under[2:] in fv):
        arg = f"--{under}{eq}{value}"
    out.append(arg)
  return out


def options_from_flags(fv: flags.FlagValues = flags.FLAGS) -> ScoringOptions:
  """The `ScoringOptions` of parsed flags; ScoringError without --backend or --out."""
  if not fv.backend:
    raise ScoringError(
        f"--backend is required: one of {', '.join(_BACKENDS)} "
        "(nothing ever falls back to the oracle)"
    )
  if not fv.out and not fv.dry_run:
    raise ScoringError("--out is required (the folder for scores, the cache and the figures)")
  return ScoringOptions(
      backend=fv.backend,
      out=fv.out or "",
      model=fv.model,
      base_url=fv.base_url,
      dataset=fv.dataset,
      data_config=fv.data_config,
      data_dir=fv.data_dir,
      split=fv.split,
      attributes=list(fv.attributes or []),
      num_images=fv.num_images,
      cache_path=fv.cache,
      dry_run=fv.dry_run,
      concurrency=fv.concurrency,
      requests_per_minute=fv.requests_per_minute,
      response_format=fv.response_format,
      accuracy=fv.accuracy,
      error_model=fv.error_model,
      seed=fv.seed,
      bootstrap=fv.bootstrap,
      replay_path=fv.replay_path,
      progress=fv.progress,
      plots=fv.plots,
  )


def run_cli(argv: Sequence[str], print_fn=print) -> dict:
  """Parse `argv` (argv[0] = program name) with fresh flags and run; raises on errors.

  For tests and notebooks: `run_cli(["score", "--backend=oracle", "--out=/tmp/x"])`.
  """
  fv = flags.FlagValues()
  define_flags(fv)
  fv(normalize_argv(list(argv), fv))
  return run_scoring(options_from_flags(fv), print_fn=print_fn)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.setup_logging()
  try:
    run_scoring(options_from_flags(flags.FLAGS))
  except (ScoringError, ScorerError, DataNotFoundError) as e:
    sys.exit(f"error: {e}")


def _parse(argv: list[str]) -> list[str]:
  return app.parse_flags_with_usage(normalize_argv(argv, flags.FLAGS))


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=_parse)
