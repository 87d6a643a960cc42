"""Training: the TrainState, the generic pmapped step, the loop, checkpoints and metric files.

`train_and_evaluate(config, workdir)` trains config.train.num_steps steps of any objective.
"""
from gem_jax.train.checkpoints import CheckpointError
from gem_jax.train.distributed import DistributedError
from gem_jax.train.loop import (
                                NonFiniteLossError,
                                RunExistsError,
                                checkpoint_meta,
                                resolve_config,
                                train_and_evaluate,
)
from gem_jax.train.run_lock import RunLockedError, run_lock
from gem_jax.train.state import TrainState, create_train_state, make_graph_state
from gem_jax.train.step import StepConfig, make_pmapped_step, replicate, unreplicate

__all__ = ["train_and_evaluate", "NonFiniteLossError", "RunExistsError", "CheckpointError",
           "DistributedError", "RunLockedError", "run_lock",
           "checkpoint_meta", "resolve_config", "TrainState", "create_train_state",
           "make_graph_state", "StepConfig", "make_pmapped_step", "replicate", "unreplicate"]
