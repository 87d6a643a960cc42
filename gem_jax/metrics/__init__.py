"""Evaluation metrics: disentanglement (DCI, MIG, SAP, FactorVAE score), relation recovery,
and FD/KD under a pluggable feature extractor (see docs/metrics.md)."""
from gem_jax.metrics.disentanglement import dci, factor_vae_score, mig, sap
from gem_jax.metrics.fid import frechet_distance, kernel_inception_distance
from gem_jax.metrics.graph_recovery import relation_recovery

__all__ = ["dci", "factor_vae_score", "frechet_distance", "kernel_inception_distance", "mig",
           "relation_recovery", "sap"]
