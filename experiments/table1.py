"""The paper's Tables 1 and 2 on the data at hand: every method x 3 seeds, mean ± std.

    python -m experiments.table1 --config experiments/configs/table1.py:small \
        --workdir runs/table1_small
    python -m experiments.table1 --config ...:small --config.methods=beta_vae,gem  # a subset

Trains (or reads back) each run, evaluates it (FD/KD under the feature extractor named in the
table, MSE, DCI, MIG, SAP, FactorVAE score, relation recovery), times each method's train step
in a fresh process (params, GFLOPs, peak memory, time per epoch), and writes
<workdir>/table1.md, table1.csv and runs.csv. Rerunning picks up where it stopped.
"""
from absl import app, flags
from ml_collections import config_flags

from experiments import cli
from experiments.comparison import run_table

_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("table1"),
                                          "Table config, optionally with ':preset'.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/table1", "Folder of all runs and the tables.")
_BENCHMARK = flags.DEFINE_bool("benchmark", True, "Time each method for the Table 2 columns.")


def main(argv):
  del argv
  cli.setup_logging()
  print(run_table(_CONFIG.value, _WORKDIR.value, benchmark=_BENCHMARK.value))


if __name__ == "__main__":
  app.run(main)
