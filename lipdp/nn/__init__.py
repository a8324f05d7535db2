"""lipdp.nn: Lipschitz layers and the certified bound of their composition.

The privacy guarantee rests on ``certified_lipschitz_bound``: an upper bound on the l2 -> l2
Lipschitz constant of a ``LipschitzSequential`` computed from its actual weights. See
docs/nn.md for what each layer guarantees and how the certificate bounds it.
"""

from lipdp.nn.activations import FullSort, GroupSort, MaxMin
from lipdp.nn.aol import AOLConv, AOLDense, aol_conv_scale, aol_dense_scale
from lipdp.nn.attack import empirical_lipschitz_lower_bound
from lipdp.nn.bjorck import (
  DEFAULT_MAX_ITERS,
  DEFAULT_TOL,
  BjorckDense,
  POLAR_COLLECTION,
  BjorckInfo,
  bjorck_orthonormalize,
  retract_to_polar,
)
from lipdp.nn.builders import lipschitz_convnet, lipschitz_mlp, make_activation
from lipdp.nn.certify import (
  FLOAT_SAFETY_MARGIN,
  CertifiedChain,
  CertifiedOperator,
  LayerBound,
  certified_chain,
  certified_lipschitz_bound,
  chain_bound,
  conv_operator_norm_bound,
  evaluate_certified,
  layer_lipschitz_bounds,
  rounding_error_bound,
  rounding_slack,
)
from lipdp.nn.linear_ops import ConvPadding, conv, dense, resolve_padding
from lipdp.nn.reference import exact_operator_norm, linear_map_matrix
from lipdp.nn.sequential import Flatten, LipschitzSequential
from lipdp.nn.spectral import STATE_COLLECTION, SpectralConv, SpectralDense

__all__ = [
  "AOLConv",
  "AOLDense",
  "BjorckDense",
  "BjorckInfo",
  "CertifiedChain",
  "CertifiedOperator",
  "ConvPadding",
  "DEFAULT_MAX_ITERS",
  "DEFAULT_TOL",
  "FLOAT_SAFETY_MARGIN",
  "Flatten",
  "FullSort",
  "GroupSort",
  "LayerBound",
  "rounding_error_bound",
  "rounding_slack",
  "LipschitzSequential",
  "MaxMin",
  "STATE_COLLECTION",
  "SpectralConv",
  "SpectralDense",
  "aol_conv_scale",
  "aol_dense_scale",
  "bjorck_orthonormalize",
  "certified_chain",
  "certified_lipschitz_bound",
  "conv",
  "conv_operator_norm_bound",
  "dense",
  "empirical_lipschitz_lower_bound",
  "evaluate_certified",
  "exact_operator_norm",
  "layer_lipschitz_bounds",
  "linear_map_matrix",
  "lipschitz_convnet",
  "lipschitz_mlp",
  "make_activation",
  "resolve_padding",
]
