"""Flax modules of GEM: the β-VAE branch, the DisGraph and the discriminators.

Modules only: no configs, no optimisers (those are read and built in `gem_jax.train.state`).
"""
from gem_jax.models.discriminators import JointDiscriminator, ZDiscriminator
from gem_jax.models.disgraph import DisGraph, GraphLearner, WeightedGCNLayer
from gem_jax.models.layers import DownConv, UpBlock, num_halvings
from gem_jax.models.paper import PaperDecoder, PaperEncoder, PaperJointDiscriminator
from gem_jax.models.vae import VAE, Decoder, Encoder, fold_into_decoder, relate

__all__ = ["VAE", "Encoder", "Decoder", "relate", "fold_into_decoder", "DisGraph", "GraphLearner",
           "WeightedGCNLayer", "JointDiscriminator", "ZDiscriminator", "DownConv", "UpBlock",
           "num_halvings", "PaperEncoder", "PaperDecoder", "PaperJointDiscriminator"]
