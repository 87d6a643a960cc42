"""The baselines of the paper's Table 1, sharing GEM's encoder, decoder and train loop.

    python -m experiments.baselines --method factor_vae --dataset synthetic_faces
    python -m experiments.baselines --method beta_tcvae --preset demo --config.train.num_steps=500
    python -m experiments.baselines --method dear --workdir runs/baselines/dear --resume

--method: vae (beta = 1), beta_vae, beta_tcvae, factor_vae, dear (DEAR-style SCM prior, weakly
supervised by the data set's labels). The run config is experiments/configs/<dataset's
config>.py with the method's token and --preset's ('' = the paper's settings, demo, cpu30,
tiny); every field can be overridden as --config.<field>=<value>. Default workdir:
runs/baselines/<method> (CelebA: runs/baselines/celeba/<method>).
"""
from __future__ import annotations

import argparse
import sys

from absl import app, flags
from ml_collections import config_flags

from experiments import cli
from experiments.configs import synthetic_gem

# The methods that train in one run (GEM's variants run the pipeline: experiments.synthetic_gem).
METHOD_TOKENS = {m: t for m, t in synthetic_gem.METHOD_TOKENS.items()
                 if m not in ("gem", "gem_single")}
CONFIG_FILES = {"synthetic_faces": "synthetic_gem", "celeba": "celeba_gem"}


def config_arg(method: str, dataset: str = "synthetic_faces", preset: str = "") -> str:
  """'<config file>:<tokens>' of a method on a data set."""
  if method not in METHOD_TOKENS:
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHOD_TOKENS)}")
  if dataset not in CONFIG_FILES:
    raise ValueError(f"data set {dataset!r} is not supported yet by experiments.baselines; "
                     f"choose from {', '.join(CONFIG_FILES)}")
  tokens = ",".join(t for t in (METHOD_TOKENS[method], preset) if t)
  return f"{cli.config_path(CONFIG_FILES[dataset])}:{tokens}"


def default_workdir(method: str, dataset: str) -> str:
  if dataset == "synthetic_faces":
    return f"runs/baselines/{method}"
  return f"runs/baselines/{dataset}/{method}"


def _selection(argv: list[str]) -> argparse.Namespace:
  """--method, --dataset and --preset, read before the config flag is defined from them."""
  parser = argparse.ArgumentParser(prog="python -m experiments.baselines", add_help=False)
  parser.add_argument("--method", choices=sorted(METHOD_TOKENS), required=True)
  parser.add_argument("--dataset", choices=sorted(CONFIG_FILES), default="synthetic_faces")
  parser.add_argument("--preset", default="")
  if any(a == "--config" or a.startswith("--config=") for a in argv):
    parser.error("the config comes from --method, --dataset and --preset; override single "
                 "fields with --config.<field>=<value>")
  if any(a in ("-h", "--help", "--helpshort", "--helpfull") for a in argv):
    return argparse.Namespace(method="vae", dataset="synthetic_faces", preset="")
  return parser.parse_known_args(argv)[0]


def main(argv: list[str] | None = None) -> None:
  argv = list(sys.argv if argv is None else argv)
  chosen = _selection(argv[1:])
  flags.DEFINE_enum("method", None, sorted(METHOD_TOKENS), "Baseline to train.")
  flags.DEFINE_enum("dataset", "synthetic_faces", sorted(CONFIG_FILES), "Data set.")
  flags.DEFINE_string("preset", "", "Size preset token: '', demo, cpu30 or tiny.")
  workdir = flags.DEFINE_string("workdir", None, "Run folder (default: runs/baselines/...).")
  resume = flags.DEFINE_bool("resume", False, "Continue from the last checkpoint in workdir.")
  dry_run, verbose = cli.define_run_flags()
  config = config_flags.DEFINE_config_file(
      "config", config_arg(chosen.method, chosen.dataset, chosen.preset),
      "Set by --method/--dataset/--preset; override fields with --config.<field>=<value>.")

  def run(_):
    cli.setup_logging()
    cli.run_experiment(config.value,
                       workdir.value or default_workdir(chosen.method, chosen.dataset),
                       resume.value, dry_run.value, verbose.value)

  app.run(run, argv=argv)


if __name__ == "__main__":
  main()
