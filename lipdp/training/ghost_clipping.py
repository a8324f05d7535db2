"""Ghost clipping: DP-SGD's per-example gradient norms and clipped sum without per-example
gradients (Goodfellow 2015; Li, Tramèr, Liang and Hashimoto 2022, "Large language models can be
strong differentially private learners", ICLR; Bu, Wang, Zha and Karypis 2023, "Differentially
private optimization on large model at small cost", ICML: book-keeping and the mixed rule).

`clipped_gradient_sum(loss_fn, C)` has the interface and the result (to float rounding) of
`lipdp.training.dpsgd.clipped_gradient_sum`: the sum over a microbatch of each example's gradient
scaled by min(1, C' / |grad_i|). What it never forms is the (batch, parameters) array of per-example
gradients.

Activations and output gradients. Example i's loss l_i is computed exactly as on the vmap path,
`loss_fn(params, state, record_i[None], key_i)` with key_i = `jax.random.split(rng, b)[i]`,
vmapped over (record, key), so each example draws the same reparameterisation noise. Inside it, a
flax method interceptor (`nn.intercept_methods`) replaces each recognised layer's `__call__`
by the same layer applied to its own parameters passed in separately, and adds a zero
"perturbation" z to its output; the layer's input is recorded (a_i), and one backward pass of
sum_i l_i with respect to the perturbations (not the parameters) gives g_i = dl_i / dy_i, the
gradient at each layer's output.

Per-layer rules. Every recognised layer computes y = op(x, K_eff) + b with K_eff = f(K) a
function of its raw kernel only (and of read-only state), so example i's gradient of (K, b) is
(J_f^T M_i, sum_p g_p) with M_i the gradient of the effective kernel:

- dense (`flax.linen.Dense`; `BjorckDense(retracted=True)`, K_eff = s K): with one position,
  M_i = a_i g_i^T and |M_i| = |a_i| |g_i|, so |grad K|^2 = s^2 |a_i|^2 |g_i|^2; with T positions
  (leading axes of the input), |sum_p a_p g_p^T|^2 = sum_{p,p'} <a_p, a_p'> <g_p, g_p'> (the
  ghost rule, T^2 (d_in + d_out) work) or the materialised M_i (T d_in d_out), whichever is
  cheaper (Bu et al. 2023's mixed rule);
- everything else (`flax.linen.Conv`, `ConvTranspose`, `AOLDense`, `AOLConv`, `SpectralDense`,
  `SpectralConv`, `BjorckDense` iterating, and a dense layer with s > 2^30): the layer's own
  per-example parameter gradient, materialised for that layer only (a vmap of its VJP at
  (a_i, g_i)). `SpectralDense` had a closed form from dot products of length d_in and d_out
  (Li et al. 2022's ghost rule through J_f^T = alpha I + beta_i grad_sigma); a chain of four
  data-dependent factors whose partial products may flush ("Flushes", below) has no simple
  bound, so it is materialised, as the vmap path does for every layer. For convolutions this is the
  cheaper side of the mixed rule: the ghost rule needs the T x k^2 c_in patch matrix, which XLA
  forms with an identity-filter convolution (T (k^2 c_in)^2 work), against T k^2 c_in c_out for the
  kernel gradient itself; and for every convolution of lipdp's models T >= k^2 c_in c_out / (k^2
  c_in + c_out) as well (e.g. 196 positions against 29 for the decoder's 3x3, 32 -> 32).

Book-keeping. With c_i = min(1, C' / |grad_i|) (0 for padding and non-finite examples), the
clipped sum is the gradient of sum_i c_i l_i, computed from the recorded a and g with no second
pass: s a^T (c g) for a dense kernel, sum_i c_i (per-example gradient) for materialised layers,
sum_i c_i g_i for biases.

Coverage (a violation would silently under-count a norm, so each is a refusal with the
parameter's name, `GhostClippingError`): every parameter leaf belongs to exactly one recognised
layer (an unknown module type with parameters is refused), each recognised layer is called once
per example, and no parameter is used outside its layer's call: with the recognised layers fed
their parameters separately, the per-example loss must not depend on the parameter tree given
to `loss_fn` at all, which `jax.interpreters.partial_eval.dce_jaxpr` decides on the traced
program (a dependence on the program, not on values). `self_check` then compares the ghost norms
with the vmap path's on fixed pseudo-random records (never the private data);
`lipdp.training.steps.DPSGDStep` runs it before its first ghost step and refuses on a mismatch.

Rounding (float32, u = 2^-24, gamma_n = n u / (1 - n u); Higham 2002, Lemma 3.1 and 3.3). For
each example and layer the code computes an estimate N of the squared norm and an upper bound
U >= |V / c|^2, where V is the float vector that layer contributes to the clipped sum when the
example is alone (the one the sensitivity is about; the other rows add exact zeros):

- sums of non-negative terms (the dense rule with one position, materialised gradients, the
  squared norms inside the other rules) are blocked as in
  `lipdp.training.per_example.per_example_norms`, so each has relative error at most gamma_D, D
  its number of terms; V adds at most 4 roundings per entry (c g, a (c g), the scale, a sum of two
  terms). Then U = N (1 + e) with e = gamma_{2D+64} (D the layer's longest reduction);
- the ghost rule with T > 1 positions subtracts, so its error is bounded by the absolute values
  of the terms, not by N: with A their sum (s^2 (sum_p |a_p||g_p|)^2 + (sum_p |g_p|)^2, which
  bound every rounding of N and of V by Cauchy-Schwarz), U = N + e A;
- the clipped vector's exact norm is then |V| <= c (sum_layers (U + F))^(1/2), F below, and
  with the top-level sum over the layers (gamma_L, L layers), the square root and the division
  (2 u), c = min(1, C (1 - m) / sqrt(sum (U + F))) with m = gamma_{L+8} gives |V| <= C exactly.

Flushes. XLA on a CPU flushes float32 results below lambda = 2^-126 to zero, an absolute error
no relative margin covers: a computed sum of n products loses at most `_flushed(n)`, about
n lambda (n < 2^23: every gamma_n here needs n u < 1/2, and a longer reduction is refused,
`GhostClippingError`; past it a review found the bound negative and an example unclipped at
6 C). Where the flushed quantity is not multiplied by anything larger than 1 (the
materialised gradient's own squares; c <= 1), the loss stays below 1.1e-7 C for up to 1e12
terms at C >= `lipdp.training.MIN_CLIP_NORM`, inside the margin's slack. The dense rules square
inputs and output gradients apart and multiply them: with inputs of norm 3e17 and output
gradients whose squares all flushed, an independent review measured an estimate of 0 for a
true norm of 3e4 C. So each adds F, an upper bound of what flushes may have hidden from U:
s^2 (na f_g + ng f_a + f_a f_g) (+ f_g with a bias) for the dense rule, with f_a and f_g the
flushed masses of |a|^2 and |g|^2 and lambda ng for (s^2 na) flushing before ng multiplies it;
s^2 (f_g (sum_t |a_t|)^2 + f_a (sum_t |g_t|)^2 + ...) for the ghost rule on T positions, whose
Gram entries each lose at most f_a or f_g, with |a_t| and |g_t| bounded from above, their own
flushed mass included (so neither sum of norms can flush). Each product in F is of
data-dependent factors that cannot flush and constants, and F's few products lose at most a
few absolute s^2 lambda (s <= 2^30: below 1e-19, against a slack of about 5e-19 C^2 at
C = 1e-6). Flushes inside V itself only shrink an entry of the one-position dense rule and of
materialised gradients (each entry one product); the ghost rule on T positions sums T products
per entry, so c g_t flushing while c g_t' does not can leave a term that cancelled exactly
(a review's case: 1.00036 C at s = 2^30): its target is lowered by the slack
lambda (s sqrt(d_out) sum_t |a_t| + 2 s T sqrt(d_in d_out) + T sqrt(d_out)), and an example
whose slack reaches the target is dropped. F is added after the sum over the layers' U; for
ordinary inputs F and the slack are some 1e-36 of U and C and move no value, but on one CPU
device XLA compiles the step around the extra terms differently, so float DP-SGD runs there
move in their last bits against earlier code versions (5 of 399 and 7 of 719 parameters, by at
most 4e-9, after three steps of two toy models; on two devices, and on the vmap path, the
parameters were bit-identical).

In float32 for lipdp's models e is about 1.3e-4 and m about 1e-6: the clipped norms sit within
~1e-4 of C, like the vmap path's. The sum over examples is rounded as on the vmap path.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.interpreters import partial_eval as pe

from lipdp.nn.aol import AOLConv, AOLDense
from lipdp.nn.bjorck import BjorckDense
from lipdp.nn.spectral import SpectralConv, SpectralDense
from lipdp import rounding
from lipdp.training import per_example
from lipdp.training import sharding

Array = jax.Array
_UNIT = rounding.FLOAT32_UNIT


class GhostClippingError(ValueError):
  """The ghost path cannot account for some parameter exactly; use clipping='vmap'."""


def _gamma(n: int) -> float:
  """gamma_n for float32; a reduction too long for it (n u >= 1/2, n >= 2^23) is refused: past
  it the bound turns meaningless, and at n u > 1 negative (found by a review)."""
  try:
    return rounding.gamma(n, _UNIT)
  except ValueError:
    raise GhostClippingError(
      f"a reduction of {n} terms is too long for float32's rounding bound (n u < 1/2 needed); "
      "use clipping='vmap'"
    ) from None


# XLA on a CPU flushes float32 results below lambda = 2^-126 to zero (module docstring, "Flushes").
_SMALLEST_NORMAL = rounding.SMALLEST_NORMAL[_UNIT]
# The dense rules' scale s multiplies a flushed product (< lambda) by s^2: for s <= 2^30 that is
# below 2^-66, far inside the clipping margin's slack at C >= MIN_CLIP_NORM; a larger s is
# materialised.
_MAX_DENSE_SCALE = 2.0**30


def _flushed(operations: int) -> float:
  """What a computed sum of products loses to flushes, at most: each of its `operations`
  results loses at most lambda when flushed, and later roundings (at most `operations` + 8 of
  them) scale each loss by at most 1 + gamma."""
  return operations * _SMALLEST_NORMAL * (1.0 + _gamma(operations + 8))


def _key(path: tuple) -> str:
  return "/".join(path) if path else "<root>"


# --- Which layers, and how ----------------------------------------------------------------------

_DENSE, _GRAM, _MATERIALISE = "dense", "gram", "materialise"
_RECOGNISED = (
  nn.Dense,
  nn.Conv,
  nn.ConvTranspose,
  BjorckDense,
  SpectralDense,
  SpectralConv,
  AOLDense,
  AOLConv,
)


def _is_float32(dtype) -> bool:
  return dtype is None or jnp.dtype(dtype) == jnp.float32


def _kernel_scale(module: nn.Module) -> Optional[float]:
  """s with K_eff = s K for the dense rule, or None if the layer is not of that form."""
  if type(module) is nn.Dense:  # pylint: disable=unidiomatic-typecheck
    plain = (
      module.dot_general is None
      and module.dot_general_cls is None
      and module.promote_dtype is nn.dtypes.promote_dtype
    )
    return 1.0 if plain else None
  if type(module) is BjorckDense and module.retracted:  # pylint: disable=unidiomatic-typecheck
    return float(np.float32(module.lipschitz))  # the forward pass multiplies by float32(L)
  return None


class _Layer(NamedTuple):
  """One recognised layer call found by the discovery pass (static)."""

  path: tuple
  module: nn.Module  # unbound copy
  kwargs: tuple  # the call's keyword arguments, as sorted items
  rule: str
  scale: float  # the dense rules' s
  param_names: tuple
  state: tuple  # names of the layer's non-parameter collections
  in_shape: tuple  # one example's (with the leading axis of record[None])
  out_shape: tuple

  @property
  def key(self) -> str:
    return _key(self.path)

  @property
  def name(self) -> str:
    return f"{self.key!r} ({type(self.module).__name__})"


def _choose_rule(module: nn.Module, in_shape: tuple, out_shape: tuple) -> tuple[str, float]:
  positions = math.prod(in_shape[:-1])
  scale = _kernel_scale(module)
  if scale is not None and scale <= _MAX_DENSE_SCALE:
    if positions == 1:
      return _DENSE, scale
    d_in, d_out = in_shape[-1], out_shape[-1]
    # Ghost rule T^2 (d_in + d_out) against materialising T d_in d_out (Bu et al. 2023).
    if positions * (d_in + d_out) < d_in * d_out:
      return _GRAM, scale
    return _MATERIALISE, scale
  return _MATERIALISE, 1.0


def _describe(module, kwargs, x, y, params, state) -> _Layer:
  path = tuple(module.path)
  what = f"{_key(path)!r} ({type(module).__name__})"
  names = tuple(sorted(params))
  if "kernel" not in names or not set(names) <= {"kernel", "bias"}:
    raise GhostClippingError(f"layer {what} has parameters {names}; expected kernel and bias")
  if any(isinstance(params[n], dict) or params[n].dtype != jnp.float32 for n in names):
    raise GhostClippingError(f"layer {what}: ghost clipping needs float32 array parameters")
  if not _is_float32(getattr(module, "dtype", None)) or y.dtype != jnp.float32:
    raise GhostClippingError(f"layer {what}: ghost clipping needs layers computing in float32")
  unbound, _ = module.unbind()
  rule, scale = _choose_rule(module, tuple(x.shape), tuple(y.shape))
  return _Layer(
    path=path,
    module=unbound,
    kwargs=tuple(sorted(kwargs.items())),
    rule=rule,
    scale=scale,
    param_names=names,
    state=tuple(sorted(state)),
    in_shape=tuple(x.shape),
    out_shape=tuple(y.shape),
  )


# --- The interceptor ------------------------------------------------------------------------------


class _Tape:
  """Method interceptor for one example's forward pass.

  Discovery (`ghost=None`): runs each recognised layer on its own parameters and describes it.
  Ghost mode: runs it on `ghost[key]` (its parameters, passed separately) and adds
  `perturbations[key]` to its output. Both record the layer's input.
  """

  def __init__(self, ghost=None, perturbations=None):
    self.discover = ghost is None
    self.ghost, self.perturbations = ghost, perturbations
    self.layers: list[_Layer] = []
    self.inputs: dict[str, Array] = {}
    self.seen: dict[tuple, str] = {}  # every other module called: path -> type name
    self._depth = 0

  def __call__(self, next_fun, args, kwargs, context):
    module = context.module
    if self._depth or context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    path = tuple(module.path)
    if type(module) not in _RECOGNISED:
      self.seen.setdefault(path, type(module).__name__)
      return next_fun(*args, **kwargs)
    key = _key(path)
    if key in self.inputs:
      raise GhostClippingError(
        f"layer {key!r} ({type(module).__name__}) is called more than once per example: its "
        "per-example gradient is a sum over the calls, which the ghost rules do not cover"
      )
    if len(args) != 1 or not hasattr(args[0], "shape"):
      raise GhostClippingError(f"layer {key!r} must be called with one array argument")
    x = args[0]
    unbound, variables = module.unbind()
    variables = dict(variables)
    params = dict(variables.pop("params", {}))
    own = params if self.discover else self.ghost[key]
    self._depth += 1
    try:
      y = unbound.apply({"params": own, **variables}, x, **kwargs)
    finally:
      self._depth -= 1
    if self.discover:
      self.layers.append(_describe(module, kwargs, x, y, params, variables))
    else:
      y = y + self.perturbations[key]
    self.inputs[key] = x
    return y


def _example_loss(loss_fn, params, model_state, ghost, perturbations, record, key):
  """Example loss in ghost mode: (loss, {layer: input})."""
  tape = _Tape(ghost, perturbations)
  with nn.intercept_methods(tape):
    losses, _, _ = loss_fn(params, model_state, record[None], key, False)
  if set(tape.inputs) != set(perturbations):
    missing = sorted(set(perturbations) - set(tape.inputs))
    raise GhostClippingError(f"layers {missing} were not called in the ghost pass")
  return losses[0], tape.inputs


# --- The plan: discovery and the coverage checks -----------------------------------------------


def _path_names(path) -> tuple:
  return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def _lookup(tree, path):
  for name in path:
    tree = tree[name]
  return tree


def _abstract(tree):
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), x.dtype), tree)


@dataclasses.dataclass(frozen=True)
class Plan:
  """The recognised layers of a loss, in call order, each with its rule."""

  layers: tuple

  def ghost_params(self, params) -> dict:
    """{layer key: its parameters}, what the recognised layers are fed in ghost mode."""
    return {l.key: self.layer_params(params, l) for l in self.layers}

  def layer_params(self, params, layer: _Layer) -> dict:
    return {n: _lookup(params, layer.path + (n,)) for n in layer.param_names}

  def layer_state(self, model_state, layer: _Layer) -> dict:
    return {c: _lookup(model_state[c], layer.path) for c in layer.state}

  def describe(self) -> list[str]:
    return [f"{l.key}: {type(l.module).__name__}, {l.rule}" for l in self.layers]


def build_plan(loss_fn: per_example.LossFn, params, model_state, record, key) -> Plan:
  """Finds the recognised layers of `loss_fn` and checks that they cover every parameter.

  Raises `GhostClippingError`, naming the parameter, if a parameter leaf belongs to no
  recognised layer (an unknown layer type), a layer is called twice, or a parameter is used
  outside its layer's call. Works on abstract values (shapes only).
  """
  tapes = []

  def discover(params, model_state, record, key):
    tape = _Tape()
    with nn.intercept_methods(tape):
      losses, _, _ = loss_fn(params, model_state, record[None], key, False)
    tapes.append(tape)
    return losses

  args = _abstract((params, model_state, record, key))
  out = jax.eval_shape(discover, *args)
  if tuple(out.shape) != (1,):
    raise GhostClippingError(f"loss_fn must return one loss per record, got shape {out.shape}")
  tape = tapes[0]
  plan = Plan(tuple(tape.layers))
  _check_coverage(plan, params, tape.seen)
  for layer in plan.layers:
    for c in layer.state:
      try:
        _lookup(model_state[c], layer.path)
      except (KeyError, TypeError) as e:
        raise GhostClippingError(
          f"layer {layer.name}: its {c!r} collection is not at its path in model_state"
        ) from e
  _check_no_outside_use(loss_fn, plan, *args)
  return plan


def _check_coverage(plan: Plan, params, seen: dict) -> None:
  leaves = {_path_names(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
  covered = {l.path + (n,) for l in plan.layers for n in l.param_names}
  for path in sorted(leaves - covered):
    owners = [p for p in seen if path[: len(p)] == p]
    owner = max(owners, key=len) if owners else None
    where = f" (inside {seen[owner]} at {_key(owner)!r})" if owner is not None else ""
    raise GhostClippingError(
      f"parameter {_key(path)!r}{where} is not used by a layer ghost clipping recognises "
      f"({', '.join(t.__name__ for t in _RECOGNISED)}): its per-example norm would be missed"
    )
  for path in sorted(covered - leaves):
    raise GhostClippingError(f"layer parameter {_key(path)!r} is not in the parameter tree")


def _check_no_outside_use(loss_fn, plan: Plan, params, model_state, record, key) -> None:
  """Refuses if the loss depends on a parameter other than through its layer's call."""
  ghost = plan.ghost_params(params)
  zeros = {l.key: jax.ShapeDtypeStruct(l.out_shape, jnp.float32) for l in plan.layers}

  def loss(params, model_state, ghost, zeros, record, key):
    return _example_loss(loss_fn, params, model_state, ghost, zeros, record, key)[0]

  closed = jax.make_jaxpr(loss)(params, model_state, ghost, zeros, record, key)
  _, used = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
  paths = [_path_names(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  for path, is_used in zip(paths, used[: len(paths)]):
    if is_used:
      raise GhostClippingError(
        f"parameter {_key(path)!r} is used outside its layer's __call__ (e.g. read by another "
        "module): its per-example gradient has terms the ghost rules do not see"
      )


# --- Per-layer rules ----------------------------------------------------------------------------


class _Terms(NamedTuple):
  estimate: Array  # (b,) computed squared norm
  bound: Array  # (b,) U >= |V / c|^2 but for flushes (module docstring)
  flushed: Array  # (b,) or (): what flushes may hide from U ("Flushes" in the module docstring)
  accumulate: Callable[[Array, Array], dict]  # (weights (b,), keep (b,)) -> parameter sums
  # (b,): how much flushes inside V itself may add to |V| (the Gram rule), or None (nothing)
  slack: Optional[Array] = None


def _rows(x: Array, keep: Array) -> Array:
  return jnp.where(keep.reshape((-1,) + (1,) * (x.ndim - 1)), x, 0.0)


def _squares(x: Array) -> tuple[Array, int]:
  """Blocked per-row sum of squares and its number of terms (gamma index)."""
  squares, blocks = per_example.blocked_sum_of_squares(x)
  return squares, min(per_example.NORM_BLOCK, max(1, math.prod(x.shape[1:]))) + blocks + 1


def _dense_terms(layer: _Layer, p, a, g) -> _Terms:
  b = a.shape[0]
  a, g = a.reshape(b, -1), g.reshape(b, -1)
  s = layer.scale
  na, da = _squares(a)
  ng, dg = _squares(g)
  estimate = (s * s) * na * ng
  if "bias" in p:
    estimate = estimate + ng
  margin = 1.0 + _gamma(2 * max(da, dg) + 64)
  # Flushes ("Flushes" in the module docstring): |a|^2 <= na + flush_a and |g|^2 <= ng + flush_g
  # (to rounding), so s^2 |a|^2 |g|^2 adds at most s^2 (na flush_g + ng flush_a + flush_a
  # flush_g); and should (s^2 na) flush before ng multiplies it, the product loses lambda ng.
  # Kept apart from the estimate's bound, to which it adds nothing unless something flushed.
  flush_a, flush_g = _flushed(2 * a.shape[1]), _flushed(2 * g.shape[1])
  flushed = (s * s) * (na * flush_g + ng * flush_a + flush_a * flush_g)
  if "bias" in p:
    flushed = flushed + flush_g
  flushed = flushed * margin + _SMALLEST_NORMAL * (ng + flush_g)

  def accumulate(weights, keep):
    wg = _rows(g, keep) * weights[:, None]
    out = {"kernel": (s * jnp.matmul(_rows(a, keep).T, wg)).reshape(p["kernel"].shape)}
    if "bias" in p:
      out["bias"] = jnp.sum(wg, axis=0)
    return out

  return _Terms(estimate, estimate * margin, flushed, accumulate)


def _gram_terms(layer: _Layer, p, a, g) -> _Terms:
  b = a.shape[0]
  a, g = a.reshape(b, -1, a.shape[-1]), g.reshape(b, -1, g.shape[-1])
  positions = a.shape[1]
  s = layer.scale
  d_in, d_out = a.shape[-1], g.shape[-1]
  gram_a = jnp.einsum("bti,bsi->bts", a, a)
  gram_g = jnp.einsum("bto,bso->bts", g, g)
  estimate = (s * s) * jnp.sum(gram_a * gram_g, axis=(1, 2))
  # Upper bounds of each position's |a_t| and |g_t|, flushed mass included ("Flushes").
  flush_a, flush_g = _flushed(2 * d_in), _flushed(2 * d_out)
  norms_a = jnp.sqrt(jnp.sum(jnp.square(a), axis=-1) + flush_a)
  norms_g = jnp.sqrt(jnp.sum(jnp.square(g), axis=-1) + flush_g)
  absolute = (s * s) * jnp.square(jnp.sum(norms_a * norms_g, 1))
  # Each Gram entry loses at most flush_a (resp. flush_g) to flushes, against |<a_t, a_s>| <=
  # |a_t| |a_s|; the products and their sum lose at most _flushed(2 T^2) more.
  sum_a, sum_g = jnp.sum(norms_a, axis=1), jnp.sum(norms_g, axis=1)
  flushed = (s * s) * (
    (sum_a * sum_a) * flush_g
    + (sum_g * sum_g) * flush_a
    + (positions * positions * flush_a * flush_g + _flushed(2 * positions * positions))
  )
  d = positions * positions + max(d_in, d_out)
  if "bias" in p:
    bias_sq, dbias = _squares(jnp.sum(g, axis=1))
    estimate = estimate + bias_sq
    absolute = absolute + jnp.square(jnp.sum(norms_g, axis=1))
    flushed = flushed + _flushed(2 * (positions + 1) * d_out)
    d = max(d, dbias + positions)
  bound = estimate + _gamma(2 * d + 64) * absolute
  flushed = flushed + _SMALLEST_NORMAL
  # Flushes inside V: c g_t may flush to zero, and so may the products a_t (c g_t) and their
  # sums; across positions the lost terms need not cancel as the exact ones do (a review's
  # case: 1.00036 C at s = 2^30), so V may exceed c sqrt(U + F) by at most
  # lambda (s sqrt(d_out) sum_t |a_t| + 2 s T sqrt(d_in d_out) + T sqrt(d_out)) (the bias's).
  # Data-dependent factor first, lambda last, so that no partial product flushes early.
  slack = (
    (sum_a * (s * math.sqrt(d_out)) + (2 * s * positions * math.sqrt(d_in * d_out)))
    + positions * math.sqrt(d_out)
  ) * (1.0 + _gamma(16))
  slack = slack * _SMALLEST_NORMAL

  def accumulate(weights, keep):
    wg = _rows(g, keep) * weights[:, None, None]
    kernel = s * jnp.einsum("bti,bto->io", _rows(a, keep), wg)
    out = {"kernel": kernel.reshape(p["kernel"].shape)}
    if "bias" in p:
      out["bias"] = jnp.sum(wg, axis=(0, 1))
    return out

  return _Terms(estimate, bound, flushed, accumulate, slack)


def _materialised_terms(layer: _Layer, p, state, a, g) -> _Terms:
  kwargs = dict(layer.kwargs)

  def example_grad(x, gy):
    _, vjp = jax.vjp(lambda q: layer.module.apply({"params": q, **state}, x, **kwargs), p)
    return vjp(gy)[0]

  grads = jax.vmap(example_grad)(a, g)
  estimate, blocks = per_example.blocked_sum_of_squares(grads)
  size = max(math.prod(x.shape[1:]) for x in jax.tree_util.tree_leaves(grads))
  terms = min(per_example.NORM_BLOCK, size) + blocks + 1
  bound = estimate * (1.0 + _gamma(2 * terms + 64))

  def accumulate(weights, keep):
    return jax.tree_util.tree_map(lambda x: jnp.tensordot(weights, _rows(x, keep), axes=1), grads)

  # The gradient's own squares: what they lose to flushes is not multiplied by anything larger
  # (c <= 1), so it stays inside the margin's slack, as on the vmap path (MIN_CLIP_NORM).
  return _Terms(estimate, bound, jnp.zeros(()), accumulate)


def _layer_terms(plan: Plan, layer: _Layer, params, model_state, a, g) -> _Terms:
  p = plan.layer_params(params, layer)
  if layer.rule == _DENSE:
    return _dense_terms(layer, p, a, g)
  if layer.rule == _GRAM:
    return _gram_terms(layer, p, a, g)
  return _materialised_terms(layer, p, plan.layer_state(model_state, layer), a, g)


# --- The clipped sum ----------------------------------------------------------------------------


def _bound(terms: dict) -> Array:
  """sum_layers (U + F), the flushed masses F summed apart and added last (module docstring)."""
  return sum(t.bound for t in terms.values()) + sum(t.flushed for t in terms.values())


def top_margin(num_layers: int) -> float:
  """m of `C' = C (1 - m)`: the sum over layers, the square root and the division."""
  return _gamma(num_layers + 8)


def _ghost_pass(loss_fn, plan: Plan, params, model_state, chunk, keys):
  """Per-example losses, layer inputs a and output gradients g (each (b, *example shape))."""
  ghost = plan.ghost_params(params)
  batch = chunk.shape[0]
  zeros = {l.key: jnp.zeros((batch,) + l.out_shape, jnp.float32) for l in plan.layers}

  def losses_and_inputs(perturbations):
    one = lambda z, record, key: _example_loss(loss_fn, params, model_state, ghost, z, record, key)
    return jax.vmap(one)(perturbations, chunk, keys)

  losses, vjp, inputs = jax.vjp(losses_and_inputs, zeros, has_aux=True)
  (grads,) = vjp(jnp.ones_like(losses))  # l_i depends on z_i only: row i is dl_i / dy_i
  return losses, inputs, grads


def _all_terms(loss_fn, params, model_state, chunk, rng, gram=True):
  keys = per_example.row_keys(rng, chunk.shape[0])
  plan = build_plan(loss_fn, params, model_state, chunk[0], keys[0])
  if not gram:  # several positions materialised (`clipped_gradient_sum`)
    plan = Plan(tuple(l._replace(rule=_MATERIALISE) if l.rule == _GRAM else l for l in plan.layers))
  losses, inputs, grads = _ghost_pass(loss_fn, plan, params, model_state, chunk, keys)
  # The norms' bounds and the clipped sum (each `accumulate`) at the highest matmul precision:
  # their rounding analysis is float32's, and a platform's reduced default (TF32 on recent
  # GPUs) would round by more than the margin. The pass that computes a and g may run at the
  # default: the bound and the sum are both computed from the same a and g.
  with jax.default_matmul_precision("highest"):
    terms = {
      l.key: _layer_terms(plan, l, params, model_state, inputs[l.key], grads[l.key])
      for l in plan.layers
    }
  return plan, losses, terms


def per_example_norms(loss_fn, params, model_state, chunk, rng, gram=True) -> tuple[Array, Array]:
  """Ghost estimates of the per-example gradient norms, and the rounding-safe upper bounds
  the clipping uses (sqrt of sum_layers U, module docstring). Keys as `clipped_gradient_sum`."""
  _, _, terms = _all_terms(loss_fn, params, model_state, chunk, rng, gram)
  estimate = sum(t.estimate for t in terms.values())
  return jnp.sqrt(jnp.maximum(estimate, 0.0)), jnp.sqrt(_bound(terms))


def clipped_gradient_sum(
  loss_fn: per_example.LossFn, clip_norm: float, count_centre: float = 0.5, gram: bool = True
):
  """`lipdp.training.dpsgd.clipped_gradient_sum` by ghost norms and book-keeping (module docstring).

  `gram=False` materialises the layers with several positions instead of the Gram rule, so that
  every term of the batch's sum is a row's, of norm at most C (bounded float sums,
  `lipdp.training.fixed_point`: the Gram rule's terms across positions are not bounded by C).

  Builds `f(params, model_state, chunk, mask, rng, clip_norm=None, groups=None) -> (sum of
  clipped grads, stats)`, with the vmap path's keys, masking, non-finite handling, statistics,
  run-time clip norm and per-group clip norms. Raises `GhostClippingError` when traced if some
  parameter is not covered exactly by a recognised layer.
  """
  with_norms = clipped_gradient_sum_and_norms(loss_fn, clip_norm, count_centre, gram)

  def clipped_sum(params, model_state, chunk, mask, rng, clip_norm=None, groups=None):
    summed, stats, _ = with_norms(params, model_state, chunk, mask, rng, clip_norm, groups)
    return summed, stats

  return clipped_sum


def clipped_gradient_sum_and_norms(
  loss_fn: per_example.LossFn, clip_norm: float, count_centre: float = 0.5, gram: bool = True
):
  """`clipped_gradient_sum`, also returning the per-example norms (for tests and diagnostics;
  private like the statistics): {'estimate', 'bound'} as in `per_example_norms`, and 'layers',
  each layer's estimated squared norm."""
  built_with = clip_norm

  def clipped_sum(params, model_state, chunk, mask, rng, clip_norm=None, groups=None):
    clip_norm, num_groups = per_example.row_clip_norms(
      built_with if clip_norm is None else clip_norm, groups
    )
    plan, losses, terms = _all_terms(loss_fn, params, model_state, chunk, rng, gram)
    estimate = sum(t.estimate for t in terms.values())
    bound = _bound(terms)
    target = clip_norm * (1.0 - top_margin(len(plan.layers)))
    slack = [t.slack for t in terms.values() if t.slack is not None]
    if slack:  # Gram layers only; elsewhere the target is the one before (module docstring)
      target = jnp.maximum(target - sum(slack), 0.0)  # slack >= target: the example is dropped
    finite = jnp.isfinite(bound) & jnp.isfinite(estimate)
    keep = finite & (mask != 0)
    scale = jnp.minimum(1.0, target / jnp.maximum(jnp.sqrt(bound), 1e-30))
    weights = jnp.where(keep, scale * mask, 0.0)
    sums = {}
    with jax.default_matmul_precision("highest"):  # as the terms (`_all_terms`)
      for layer in plan.layers:
        for name, value in terms[layer.key].accumulate(weights, keep).items():
          sums[layer.path + (name,)] = value
    summed = jax.tree_util.tree_map_with_path(lambda p, _: sums[_path_names(p)], params)
    norms = jnp.sqrt(jnp.maximum(estimate, 0.0))
    stats = per_example.clipping_stats(
      losses, norms, finite, mask, clip_norm, count_centre, groups, num_groups
    )
    layers = {k: t.estimate for k, t in terms.items()}
    return summed, stats, {"estimate": norms, "bound": jnp.sqrt(bound), "layers": layers}

  return clipped_sum


# --- The self-check -----------------------------------------------------------------------------

_CHECK_SEED = 0x6E05  # fixed: the check's records never depend on the data
_PASSED: set = set()  # signatures of the layer sets that passed, in this process


def _signature(plan: Plan, params, model_state, record_shape) -> tuple:
  shapes = lambda t: tuple(
    (_path_names(p), tuple(np.shape(x))) for p, x in jax.tree_util.tree_flatten_with_path(t)[0]
  )
  layers = tuple(
    (l.key, repr(l.module), l.kwargs, l.rule, l.scale, l.in_shape) for l in plan.layers
  )
  return layers, shapes(params), shapes(model_state), tuple(record_shape)


def _vmap_and_ghost_norms(loss_fn, params, model_state, records, key, gram=True):
  """The self-check's two sides: the vmap path's per-example norms, and the ghost estimates
  and bounds (`per_example_norms`). Both at the highest matmul precision: the check is of the
  rules, and a platform's reduced default (TF32) in the reference's backward pass alone would
  differ by more than its tolerance from the ghost terms, which always run at the highest."""

  def example_loss(params, record, key):
    return loss_fn(params, model_state, record[None], key, False)[0][0]

  with jax.default_matmul_precision("highest"):
    keys = jax.random.split(key, records.shape[0])
    grads = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))(params, records, keys)
    reference = per_example.per_example_norms(grads)[0]
    return reference, per_example_norms(loss_fn, params, model_state, records, key, gram)


def self_check(
  loss_fn: per_example.LossFn,
  params: Any,
  model_state: Any,
  record_shape: tuple,
  num_records: int = 3,
  rtol: float = 1e-4,
  gram: bool = True,
) -> Plan:
  """Compares the ghost norms with the vmap path's on fixed pseudo-random records, with the
  rules the step uses (`gram=False`: layers with several positions materialised, as
  `clipped_gradient_sum(..., gram=False)`).

  The records are uniform in [0, 1] from a fixed seed and the keys fixed: nothing here reads
  the private data. Raises `GhostClippingError` if an estimate differs by more than `rtol`
  (relative; they agree to ~1e-6 when the rules are right) or a clipping bound is below the
  vmap norm. The rules depend on the layers' types, settings and shapes only, so a set of
  layers that passed is not checked again in the same process. Returns the plan.
  """
  # Host copies (this host's first replica): the check runs on one local device, on every host.
  params, model_state = sharding.host_value(params), sharding.host_value(model_state)
  rng = np.random.default_rng(_CHECK_SEED)
  records = rng.uniform(0, 1, (num_records,) + tuple(record_shape)).astype(np.float32)
  key = jax.random.key(_CHECK_SEED)
  plan = build_plan(loss_fn, params, model_state, records[0], key)
  signature = _signature(plan, params, model_state, record_shape) + (gram,)
  if signature in _PASSED:
    return plan

  both = jax.jit(functools.partial(_vmap_and_ghost_norms, loss_fn, key=key, gram=gram))
  reference, (estimate, bound) = both(params, model_state, records)
  reference, estimate, bound = (np.asarray(x, np.float64) for x in (reference, estimate, bound))
  tiny = 1e-6 * max(1.0, float(np.max(reference)))
  if not (
    np.all(np.abs(estimate - reference) <= rtol * reference + tiny)
    and np.all(bound >= reference * (1 - 1e-6))
  ):
    raise GhostClippingError(
      "ghost norms differ from the vmap norms on the self-check records "
      f"(layers: {'; '.join(plan.describe())}): ghost {estimate.tolist()}, bound "
      f"{bound.tolist()}, vmap {reference.tolist()}; use clipping='vmap'"
    )
  _PASSED.add(signature)
  return plan


__all__ = [
  "GhostClippingError",
  "Plan",
  "build_plan",
  "clipped_gradient_sum",
  "clipped_gradient_sum_and_norms",
  "per_example_norms",
  "self_check",
  "top_margin",
]
