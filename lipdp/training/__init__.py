"""Training, plain or DP-SGD: data-parallel, resumable, at device speed (docs/performance.md).

The public surface, what code outside this package uses (`from lipdp import training`):

* `train(model, records, blocks, config, workdir=...)`: trains a `lipdp.models.vae.LipschitzVAE`
  and returns a `TrainResult`; `fit(loss_fn, init_variables, records, config)` is the same loop
  for any per-record loss (`LossFn`);
* `TrainConfig`, the settings, and `DPSGDConfig` (`TrainConfig.dp`), DP-SGD's; `CLIPPING_METHODS`
  names the ways of computing the clipped sum ('vmap', 'ghost'), `LEARNING_RATE_DECAYS` the
  learning-rate schedules; `TrainState` is the state the result holds (parameters, model state,
  optimiser state, step).

The modules, for tests, benchmarks and each other:

    loop.py            `train`, `fit`: seeds, checkpoints, the metrics file, the step loop
    steps.py           the jitted steps (plain, DP-SGD) and their host inputs; `TrainState`
    dpsgd.py           DP-SGD: per-example clipping, the float64 noise, adaptive clipping,
                       `DPSGDConfig`
    ghost_clipping.py  DP-SGD's clipped sum without per-example gradients
    fixed_point.py     DP-SGD's clipped sum and noise added exactly on an integer grid
    per_example.py     the per-example loss signature; norms with a proven rounding margin;
                       each record's exact gradient norm (`gradient_norms`, a diagnostic)
    batching.py        which records a step reads (shuffled, Poisson), prefetched on a thread
    optim.py           Björck kernels kept on the Stiefel manifold; parameter averaging
    sharding.py        the 1-D device mesh and what is placed on it

Nothing here imports the run (`lipdp.runner`), the settings (`lipdp.spec`) or the methods.
"""

from lipdp.training.dpsgd import (
  CLIPPING_METHODS,
  MIN_CLIP_NORM,
  SUM_ARITHMETICS,
  DPSGDConfig,
  count_centre,
  count_noise_fits,
  count_sensitivity,
)
from lipdp.training.per_example import LossFn
from lipdp.training.loop import (
  LEARNING_RATE_DECAYS,
  TrainConfig,
  TrainResult,
  fit,
  train,
  valid_noise_samples,
)
from lipdp.training.steps import TrainState

__all__ = [
  "CLIPPING_METHODS",
  "DPSGDConfig",
  "LEARNING_RATE_DECAYS",
  "LossFn",
  "MIN_CLIP_NORM",
  "SUM_ARITHMETICS",
  "TrainConfig",
  "TrainResult",
  "TrainState",
  "count_centre",
  "count_noise_fits",
  "count_sensitivity",
  "fit",
  "train",
  "valid_noise_samples",
]
