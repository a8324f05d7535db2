"""Björck orthonormalisation and the orthonormal dense layer ``BjorckDense``.

The orthonormal factor of ``W = U S V^T`` is its polar factor ``Q = U V^T``: the closest matrix
with orthonormal columns (rows, if W is wide), and every singular value of ``Q`` is 1. Björck and
Bowie (1971, "An iterative algorithm for computing the best estimate of an orthogonal matrix",
SIAM J. Numer. Anal. 8(2)) compute it with the iteration

    X_{k+1} = X_k p(X_k^T X_k),  p(G) = sum_{j=0}^{order} c_j (I - G)^j,  c_j = binom(2j, j) / 4^j,

the order-``order`` Taylor expansion of ``G^{-1/2}``. It acts on each singular value ``s`` of
``X_k`` separately, through the scalar map ``s -> s p(s^2)``, and converges for every ``s`` in
``(0, sqrt(2)]`` (order 1: ``(0, sqrt(3))``). Anil, Lucas and Grosse (2019) use it, order 1,
to build 1-Lipschitz dense layers.

Plain order-1 steps grow a small singular value only by a factor 1.5 per step, so a badly
conditioned W needs 25+ steps. The default scheme here keeps the cubic step but rescales it:

    X_{k+1} = X_k (1.5 a_k I - 0.5 a_k^3 G_k),   s -> f_a(s) = (3 a s - a^3 s^3) / 2,

with ``a_k^2 = 3 / (l^2 + l u + u^2)`` for an interval ``[l, u]`` holding the singular values
of ``X_k``. ``f_a`` rises to its maximum 1 at ``s = 1/a`` (inside ``[l, u]``) and takes the same
value at ``l`` and ``u``, so it maps ``[l, u]`` onto ``[f_a(l), 1]``: it never overshoots 1 and
grows the smallest singular values by up to ``1.5 sqrt(3) ~ 2.6`` per step (the classical step
is ``a = 1``). This is a minimax-scaled Newton-Schulz step in the spirit of Chen and Chow (2014,
"A stable scaling of Newton-Schulz for improving the sign function computation of a Hermitian
matrix"). The interval comes from the Gram matrix ``G_k`` that the step computes anyway:

* ``u``: min of the previous step's image (1), ``|G_k|_F^{1/2}``, and the trace bound
  ``lambda_max <= m + s sqrt(n-1)`` (Wolkowicz and Styan 1980, "Bounds for eigenvalues using
  traces", Linear Algebra Appl. 29; ``m = tr G / n``, ``s^2 = |G - m I|_F^2 / n``). All are
  provable upper bounds, so ``a_k`` never pushes a singular value past the top of ``f_a``.
* ``l``: a cheap estimate of the smallest singular value (Rayleigh quotient of a few power
  iterations on ``u^2 I - G``, whose eigenvectors are those of every ``G_k``), never below the
  provable Wolkowicz-Styan lower bound ``m - s sqrt(n-1)``. An estimate above the true minimum
  only slows the smallest values down to ``>= 1.5`` growth per step; it cannot break the step.
  It is also never below a floor that starts at ``eps * u`` (machine epsilon) and follows the
  scalar map, so singular values that are exactly zero (a rank-deficient W, which would pin the
  estimate at 0 and make every step send ``u`` to 0) do not stop the others from converging.

The loop stops once the *provable* lower bound, carried through the exact scalar map
(``l_prov <- min(f_a(l_prov), f_a(u))``), is within ``tol`` of 1; all singular values then lie in
``[1 - tol, 1]`` in exact arithmetic (float32 rounding adds about 1e-6). Steps taken: 1 for an
orthogonal W (the default initialisation), 3-5 for weights trained from it with Adam (see
experiments/benchmark.py), 6-8 for a Gaussian matrix, about 13 for condition number 1e3 and 20
for 1e6 (784 x 512, log-spaced spectrum); the default cap of 30 steps is not reached by
full-rank inputs in the tests. A rank-deficient W keeps
its zero singular values (the result is a partial isometry, still norm <= 1) and runs to the cap.

Gradients. The iterations run under ``jax.lax.stop_gradient``; the backward pass uses the
derivative of the polar factor at the converged point,

    dQ = P_Q(dW) / mu,   P_Q(D) = D - Q sym(Q^T D),   mu = tr(Q^T W) / n,

which is exactly the derivative of one more Björck step taken at the orthonormal ``Q`` (a
projection onto the tangent space of the Stiefel manifold), composed with a straight-through
``dX = dW / mu``. It is the exact derivative of the polar factor when all singular values of W
are equal, and otherwise a positive per-direction rescaling of it, hence always a descent
direction. Cost: two (m, n, n) matmuls, no stored iterates. Forward-mode (``jax.jvp``) is not
supported through it (a ``custom_vjp``).
"""

import dataclasses
import functools
import math
from typing import Any, NamedTuple, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from lipdp.nn.linear_ops import dense, kernel_and_bias

Array = jax.Array

DEFAULT_MAX_ITERS = 30
DEFAULT_TOL = 1e-6
_POWER_STEPS = 3
_HIGHEST = jax.lax.Precision.HIGHEST


class BjorckInfo(NamedTuple):
  """Diagnostics of ``bjorck_orthonormalize``.

  Attributes:
    num_iters: number of orthonormalisation steps taken (int32 scalar).
    lower: lower bound on the singular values of the result. Scaled scheme: the provable bound
      carried through the exact scalar map (exact arithmetic); plain scheme: the Wolkowicz-Styan
      bound measured on the result's Gram matrix (0 when uninformative).
    upper: the matching upper bound.
  """

  num_iters: Array
  lower: Array
  upper: Array


def _compute_dtype(dtype) -> Any:
  return jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32


def _gram(x: Array) -> Array:
  return jnp.matmul(x.T, x, precision=_HIGHEST)


def _eigenvalue_bounds(g: Array) -> tuple[Array, Array]:
  """Provable bounds ``lo <= lambda_min(g)``, ``hi >= lambda_max(g)`` of a symmetric PSD g."""
  n = g.shape[0]
  mean = jnp.trace(g) / n
  # Wolkowicz and Styan (1980): m - s sqrt(n-1) <= lambda_min, lambda_max <= m + s sqrt(n-1),
  # with s^2 = |g - m I|_F^2 / n computed directly (no cancellation near g = I).
  spread = jnp.linalg.norm(g - mean * jnp.eye(n, dtype=g.dtype)) * math.sqrt((n - 1) / n)
  return mean - spread, jnp.minimum(mean + spread, jnp.linalg.norm(g))


def _scaled_newton_schulz(w: Array, max_iters: int, tol: float) -> tuple[Array, BjorckInfo]:
  """Adaptive minimax-scaled cubic Björck steps on a tall ``w`` (see the module docstring)."""
  _, n = w.shape
  dt = w.dtype
  tiny = jnp.asarray(jnp.finfo(dt).tiny, dt) ** 0.25
  norm = jnp.linalg.norm(w)
  x0 = w / jnp.where(norm > 0, norm, 1)
  # A fixed pseudo-random start (a cheap hash, no PRNG to compile) for the power iterations.
  v0 = jnp.sin(jnp.arange(1, n + 1, dtype=dt) * 12.9898) * 43758.5453
  v0 = v0 - jnp.floor(v0) - 0.5
  v0 = v0 / jnp.linalg.norm(v0)
  one = jnp.ones((), dt)
  zero = jnp.zeros((), dt)
  eps = jnp.finfo(dt).eps

  def body(state):
    x, v, k, _, u_prior, l_prov, l_floor = state
    g = _gram(x)
    lo2, hi2 = _eigenvalue_bounds(g)
    u = jnp.maximum(jnp.minimum(u_prior, jnp.sqrt(hi2)), tiny)
    l_prov = jnp.minimum(jnp.maximum(l_prov, jnp.sqrt(jnp.maximum(lo2, 0))), u)
    l_floor = jnp.minimum(jnp.maximum(l_floor, eps * u), u)
    # Power iterations on u^2 I - g towards the bottom eigenvector (shared by every g_k).
    for _ in range(_POWER_STEPS):
      v = u * u * v - jnp.matmul(g, v, precision=_HIGHEST)
      v = v / jnp.maximum(jnp.linalg.norm(v), tiny)
    rayleigh = jnp.dot(v, jnp.matmul(g, v, precision=_HIGHEST), precision=_HIGHEST)
    l = jnp.clip(jnp.sqrt(jnp.clip(rayleigh, 0, u * u)), jnp.maximum(l_prov, l_floor), u)
    a = jnp.sqrt(3 / (l * l + l * u + u * u))
    step = (1.5 * a) * jnp.eye(n, dtype=dt) - (0.5 * a**3) * g
    x = jnp.matmul(x, step, precision=_HIGHEST)
    f = lambda s: 1.5 * a * s - 0.5 * a**3 * s**3
    l_prov = jnp.minimum(f(l_prov), f(u))
    l_floor = jnp.minimum(f(l_floor), f(u))
    done = l_prov >= 1 - tol
    return x, v, k + 1, done, one, l_prov, l_floor

  def cond(state):
    k, done = state[2], state[3]
    return jnp.logical_and(jnp.logical_not(done), k < max_iters)

  init = (
    x0,
    v0,
    jnp.zeros((), jnp.int32),
    jnp.zeros((), bool),
    jnp.asarray(jnp.inf, dt),
    zero,
    zero,
  )
  x, _, k, _, u, l_prov, _ = jax.lax.while_loop(cond, body, init)
  return x, BjorckInfo(k, l_prov, jnp.where(k > 0, u, jnp.inf))


def _taylor_coefficients(order: int) -> list[float]:
  return [math.comb(2 * j, j) / 4**j for j in range(order + 1)]


def _classic_bjorck(w: Array, num_iters: int, order: int) -> tuple[Array, BjorckInfo]:
  """``num_iters`` plain Björck-Bowie steps of the given order on a tall ``w``."""
  _, n = w.shape
  dt = w.dtype
  coeffs = _taylor_coefficients(order)
  eye = jnp.eye(n, dtype=dt)
  _, hi2 = _eigenvalue_bounds(_gram(w))
  # Dividing by a provable upper bound on sigma_max puts every singular value in (0, 1].
  x0 = w / jnp.sqrt(jnp.maximum(hi2, jnp.finfo(dt).tiny))

  def body(_, x):
    q = eye - _gram(x)
    poly = coeffs[-1] * eye
    for c in reversed(coeffs[:-1]):
      poly = c * eye + jnp.matmul(q, poly, precision=_HIGHEST)
    return jnp.matmul(x, poly, precision=_HIGHEST)

  x = jax.lax.fori_loop(0, num_iters, body, x0)
  # Measured (Wolkowicz-Styan) bounds of the result; dead code unless return_info.
  lo2, hi2 = _eigenvalue_bounds(_gram(x))
  info = BjorckInfo(jnp.asarray(num_iters, jnp.int32), jnp.sqrt(jnp.maximum(lo2, 0)), jnp.sqrt(hi2))
  return x, info


@jax.custom_vjp
def _with_polar_gradient(w: Array, q: Array) -> Array:
  """Returns ``q`` (the polar factor of tall ``w``); its VJP is the tangent projection."""
  del w
  return q


def _with_polar_gradient_fwd(w, q):
  n = w.shape[1]
  mu = jnp.sum(q * w) / n  # tr(Q^T W) / n: the mean singular value of W.
  mu = jnp.where(mu > 0, mu, jnp.maximum(jnp.abs(mu), jnp.finfo(w.dtype).tiny))
  return q, (q, mu)


def _with_polar_gradient_bwd(res, ct):
  q, mu = res
  s = jnp.matmul(q.T, ct, precision=_HIGHEST)
  tangent = ct - jnp.matmul(q, 0.5 * (s + s.T), precision=_HIGHEST)
  return tangent / mu, jnp.zeros_like(q)


_with_polar_gradient.defvjp(_with_polar_gradient_fwd, _with_polar_gradient_bwd)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _orthonormalize_tall(w, num_iters, order, scaled, tol):
  # Jitted so that eager callers (e.g. an un-jitted ``Module.init``) compile the loop once.
  if scaled:
    return _scaled_newton_schulz(w, num_iters, tol)
  return _classic_bjorck(w, num_iters, order)


def bjorck_orthonormalize(
  w: Array,
  num_iters: int = DEFAULT_MAX_ITERS,
  order: int = 1,
  *,
  scaled: bool = True,
  tol: float = DEFAULT_TOL,
  return_info: bool = False,
):
  """Orthonormalises a matrix: returns (an approximation of) its polar factor ``U V^T``.

  Iterates on the smaller Gram matrix (``W^T W`` for tall W, ``W W^T`` for wide W), in float32
  (float64 for float64 input) with ``Precision.HIGHEST`` matmuls, so that TF32/bf16 matmul
  defaults on accelerators cannot spoil the 1e-6 accuracy. See the module docstring for the
  math, the stopping rule and the gradient.

  Args:
    w: a 2-D matrix.
    num_iters: with ``scaled=True``, the maximum number of steps (the loop stops earlier when
      the provable lower bound reaches ``1 - tol``); with ``scaled=False``, the exact number.
    order: Taylor order of the Björck-Bowie step. The scaled scheme is the order-1 (cubic)
      step; higher orders need ``scaled=False``.
    scaled: use the adaptive minimax-scaled steps (default) or plain Björck-Bowie steps.
    tol: stopping tolerance on the singular values (scaled scheme only).
    return_info: also return a ``BjorckInfo``.

  Returns:
    The orthonormalised matrix (same shape as ``w``, float32 or float64), and the
    ``BjorckInfo`` if ``return_info``.
  """
  if w.ndim != 2:
    raise ValueError(f"bjorck_orthonormalize expects a matrix, got shape {w.shape}.")
  if order < 1:
    raise ValueError(f"order must be >= 1, got {order}.")
  if scaled and order != 1:
    raise ValueError("The scaled scheme uses the order-1 step; pass scaled=False for order > 1.")
  if num_iters < 1:
    raise ValueError(f"num_iters must be >= 1, got {num_iters}.")
  w = jnp.asarray(w)
  w = w.astype(_compute_dtype(w.dtype))
  wide = w.shape[0] < w.shape[1]
  tall = w.T if wide else w
  q, info = _orthonormalize_tall(jax.lax.stop_gradient(tall), num_iters, order, scaled, float(tol))
  q = _with_polar_gradient(tall, q)
  q = q.T if wide else q
  return (q, info) if return_info else q


def orthogonal_init(key: Array, shape, dtype=jnp.float32) -> Array:
  """Orthogonal initialiser computed in float32 (QR has no 16-bit kernels), cast to ``dtype``."""
  return nn.initializers.orthogonal()(key, shape, jnp.float32).astype(dtype)


class BjorckDense(nn.Module):
  """Dense layer ``y = x K + b`` with ``K = lipschitz * bjorck_orthonormalize(W)``.

  Every singular value of K is ``lipschitz`` (to ~1e-6 after the default iterations), so the
  layer is ``lipschitz``-Lipschitz in l2 and, for ``features <= in_features``, has Jacobian rows
  orthonormal up to that factor (gradient-norm preserving; Anil et al. 2019). The certificate
  does not take this on trust: it reads ``effective_kernel()``, the exact kernel the forward
  pass multiplies by, and takes its SVD.

  Attributes:
    features: output width.
    lipschitz: scale of the orthonormal kernel (the layer's Lipschitz constant).
    num_iters: maximum (scaled) or exact (``scaled=False``) number of Björck steps.
    order: Taylor order of the step (see ``bjorck_orthonormalize``).
    scaled: adaptive minimax-scaled steps (default) or plain Björck-Bowie steps.
    tol: stopping tolerance on the singular values.
    use_bias: whether to add a bias (translation does not change the Lipschitz constant).
    dtype: computation dtype (``None``: promote the input and the kernel).
    param_dtype: dtype of the parameters.
    precision: precision of the forward matmul ``x K``.
    kernel_init: initialiser of the unconstrained weight W (orthogonal by default, which
      needs a single Björck step; 3-5 steps after Adam training in experiments/benchmark.py).
    bias_init: initialiser of the bias.
    retracted: multiply by ``lipschitz * W`` directly, with no Björck iteration in the forward or
      backward pass (a plain matmul). For training with an optimiser that keeps W on the Stiefel
      manifold (``lipdp.training.optim.bjorck_retraction``); nothing in the layer then enforces the
      constant, which is ``lipschitz * |W|_2`` for whatever W is, and the certificate reads exactly
      that (``effective_kernel()``).
  """

  features: int
  lipschitz: float = 1.0
  num_iters: int = DEFAULT_MAX_ITERS
  order: int = 1
  scaled: bool = True
  tol: float = DEFAULT_TOL
  use_bias: bool = True
  dtype: Optional[Any] = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = orthogonal_init
  bias_init: Any = nn.initializers.zeros_init()
  retracted: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel, bias = kernel_and_bias(self, (jnp.shape(x)[-1], self.features))
    if self.retracted:
      return dense(x, self._scaled(kernel), bias, dtype=self.dtype, precision=self.precision)
    q = bjorck_orthonormalize(kernel, self.num_iters, self.order, scaled=self.scaled, tol=self.tol)
    if self.is_mutable_collection(POLAR_COLLECTION):
      # The polar factor of W, for `retract_to_polar` (a training-time warm start).
      self.put_variable(
        POLAR_COLLECTION, "kernel", jax.lax.stop_gradient(q).astype(self.param_dtype)
      )
    return dense(x, self._scaled(q), bias, dtype=self.dtype, precision=self.precision)

  def effective_kernel(self) -> Array:
    """The kernel the forward pass uses: ``lipschitz * bjorck_orthonormalize(W)``, or
    ``lipschitz * W`` when ``retracted``."""
    kernel = self.get_variable("params", "kernel")
    return self._scaled(kernel) if self.retracted else self._effective(kernel)

  def _effective(self, kernel: Array) -> Array:
    return self._scaled(
      bjorck_orthonormalize(kernel, self.num_iters, self.order, scaled=self.scaled, tol=self.tol)
    )

  def _scaled(self, q: Array) -> Array:
    k = self.lipschitz * q
    return k.astype(self.dtype) if self.dtype is not None else k


POLAR_COLLECTION = "bjorck_polar"


def retract_to_polar(params: Any, polar: Any) -> Any:
  """Replaces each Björck kernel W in `params` by its polar factor Q (from `POLAR_COLLECTION`).

  The layer computes the same function from Q as from W (the orthonormalisation only depends on
  W's polar factor, which is Q itself), so this changes no output; it keeps the raw weights
  orthonormal between optimiser steps, so the next forward pass starts next to convergence and
  needs 1-2 Björck steps instead of the 3-5 that weights drifted by Adam need (a retraction,
  as in Riemannian optimisation on the Stiefel manifold). Apply the optimiser's update to the
  result: `optax.apply_updates(retract_to_polar(params, polar), updates)`.
  """
  flat_params = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  for path, q in flax.traverse_util.flatten_dict(flax.core.unfreeze(polar)).items():
    if path not in flat_params or flat_params[path].shape != q.shape:
      raise ValueError(f"polar factor {'/'.join(path)} has no matching kernel in params")
    flat_params[path] = q
  return flax.traverse_util.unflatten_dict(flat_params)


# --- Training with a retraction instead of per-step iterations -----------------------------------
#
# At batch sizes where a Björck step (two (m, n, n) matmuls) costs as much as the layer's whole
# forward and backward pass, iterating in every forward pass dominates training. Instead the layer
# can run `retracted` (a plain matmul by lipschitz * W) while the optimiser keeps W on the Stiefel
# manifold (`lipdp.training.optim.bjorck_retraction`, built from `retract_to_stiefel`), and one
# exact `orthonormalize_kernels` after training makes W orthonormal to the Björck tolerance. The
# guarantee never rests on the retraction: the certificate reads the weights.

# One Björck step is used when every singular value of W is within about this much of 1 (the
# cubic step converges for s in (0, sqrt(3)); the margin absorbs the estimate's error).
_NEAR_STIEFEL = 0.6
_DRIFT_POWER_STEPS = 4


def _tall(w: Array) -> tuple[Array, bool]:
  wide = w.shape[0] < w.shape[1]
  return (w.T if wide else w), wide


def _drift_estimate(g: Array) -> Array:
  """Estimate of max |lambda(G) - 1| = max |s^2 - 1| by power iteration on G - I.

  Not a bound (power iteration approaches from below); it only chooses between a cheap and a
  thorough retraction, and nothing downstream relies on it (the certificate reads the weights).
  """
  n = g.shape[0]
  e = g - jnp.eye(n, dtype=g.dtype)
  v = jnp.sin(jnp.arange(1, n + 1, dtype=g.dtype) * 12.9898) * 43758.5453
  v = v - jnp.floor(v) - 0.5
  for _ in range(_DRIFT_POWER_STEPS):
    v = jnp.matmul(e, v, precision=_HIGHEST)
    v = v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(g.dtype).tiny)
  return jnp.linalg.norm(jnp.matmul(e, v, precision=_HIGHEST))


def retract_to_stiefel(w: Array) -> Array:
  """Pulls a matrix that is close to orthonormal back onto the Stiefel manifold.

  With ``X`` the tall side of ``w`` and ``G = X^T X``: when every singular value ``s`` of ``X``
  is near 1 (``|s^2 - 1| <= 0.6``, estimated by power iteration on ``G - I``), one cubic Björck
  step ``X (3 I - G) / 2`` maps it to ``s (3 - s^2) / 2``, which for ``s = 1 + e`` is
  ``1 - 3 e^2 / 2 - e^3 / 2``: the distance to the manifold is squared (Björck and Bowie 1971;
  Higham 2008, "Functions of Matrices", eq. 8.20). That is the regime a few optimiser steps
  away from an orthonormal W. Otherwise (a non-orthogonal initialisation, a huge learning
  rate) it runs the full ``bjorck_orthonormalize`` (a ``lax.cond``: only one branch runs).
  Both keep W's singular vectors, so the polar factor, and hence the function of a layer that
  orthonormalises its kernel itself, does not change. Cost: two ``(m, n, n)`` matmuls at
  ``Precision.HIGHEST`` (TF32 would undo the accuracy on accelerators).
  """
  if w.ndim != 2:
    raise ValueError(f"retract_to_stiefel expects a matrix, got shape {w.shape}.")
  dtype = w.dtype
  x, wide = _tall(w.astype(_compute_dtype(dtype)))
  g = _gram(x)
  eye = jnp.eye(g.shape[0], dtype=g.dtype)

  def one_step(x):
    return jnp.matmul(x, 1.5 * eye - 0.5 * g, precision=_HIGHEST)

  def exact(x):
    return _orthonormalize_tall(x, DEFAULT_MAX_ITERS, 1, True, DEFAULT_TOL)[0]

  x = jax.lax.cond(_drift_estimate(g) <= _NEAR_STIEFEL, one_step, exact, x)
  return (x.T if wide else x).astype(dtype)


def tangent_projection(w: Array, g: Array) -> Array:
  """Projects ``g`` onto the tangent space of the Stiefel manifold at ``w``.

  For ``W`` with orthonormal columns, ``P_W(G) = G - W sym(W^T G)``, ``sym(A) = (A + A^T) / 2``
  (Edelman, Arias and Smith 1998, "The geometry of algorithms with orthogonality constraints",
  SIAM J. Matrix Anal. Appl. 20(2), eq. 2.4 with the Euclidean metric); rows for a wide W. It
  is the Riemannian gradient of a loss whose Euclidean gradient is G: feeding it, rather than G,
  to Adam keeps the normal directions, which the retraction discards anyway, out of Adam's
  moment estimates. It is also what differentiating through the polar factor at an orthonormal
  W gives (the ``custom_vjp`` of ``bjorck_orthonormalize``, up to ``mu = 1``). Cost: two
  ``(m, n, n)`` matmuls.
  """
  x, wide = _tall(w.astype(_compute_dtype(w.dtype)))
  d = (g.T if wide else g).astype(x.dtype)
  s = jnp.matmul(x.T, d, precision=_HIGHEST)
  d = d - jnp.matmul(x, 0.5 * (s + s.T), precision=_HIGHEST)
  return (d.T if wide else d).astype(g.dtype)


def bjorck_kernel_paths(model: nn.Module, *init_args, **init_kwargs) -> frozenset:
  """Paths (tuples of names, ending in ``'kernel'``) of every ``BjorckDense`` kernel of ``model``.

  Found by tracing ``model.init(*init_args, **init_kwargs)`` abstractly (``jax.eval_shape``, no
  computation) with a method interceptor, so layers nested anywhere, also inside compact
  methods of other modules, are found.
  """
  paths = set()

  def interceptor(next_fun, args, kwargs, context):
    exact_type = type(context.module) is BjorckDense  # pylint: disable=unidiomatic-typecheck
    if exact_type and context.method_name == "__call__":
      paths.add(tuple(context.module.path) + ("kernel",))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    jax.eval_shape(model.init, *init_args, **init_kwargs)
  return frozenset(paths)


def _path_names(path) -> tuple:
  return tuple(getattr(k, "key", getattr(k, "name", k)) for k in path)


def map_kernels(fn, paths: frozenset, tree: Any, *rest: Any) -> Any:
  """``fn(leaf, *rest_leaves)`` on the leaves of ``tree`` at ``paths``; others unchanged."""
  return jax.tree_util.tree_map_with_path(
    lambda path, leaf, *others: fn(leaf, *others) if _path_names(path) in paths else leaf,
    tree,
    *rest,
  )


def orthonormalize_kernels(params: Any, paths: frozenset) -> Any:
  """Replaces each kernel at ``paths`` by ``bjorck_orthonormalize(W)`` (to ``DEFAULT_TOL``).

  The exact normalisation after training with a retraction: W is then orthonormal to about
  1e-6, so a ``retracted`` layer computes ``lipschitz`` times an orthonormal map, and an
  iterating layer computes the same function as before (the polar factor does not change) with
  a single Björck step.
  """
  return map_kernels(lambda w: bjorck_orthonormalize(w).astype(w.dtype), paths, params)


def with_retracted_bjorck(module: nn.Module) -> nn.Module:
  """A copy of ``module`` whose ``BjorckDense`` attributes (nested in fields, lists, tuples and
  dicts of submodules) have ``retracted=True``: same parameters, plain-matmul forward passes.

  Layers created inside a compact method of another module are not fields and stay as they
  are; they still compute exactly (and, kept orthonormal by the retraction, need one Björck
  step each).
  """
  if type(module) is BjorckDense:  # pylint: disable=unidiomatic-typecheck
    return module.clone(retracted=True)

  def convert(value):
    if isinstance(value, nn.Module):
      return with_retracted_bjorck(value)
    if isinstance(value, (list, tuple)):
      converted = [convert(v) for v in value]
      if all(a is b for a, b in zip(converted, value)):
        return value
      return type(value)(converted) if isinstance(value, list) else tuple(converted)
    if isinstance(value, dict):
      converted = {k: convert(v) for k, v in value.items()}
      return value if all(converted[k] is value[k] for k in value) else converted
    return value

  changes = {}
  for field in dataclasses.fields(module):
    if field.name in ("parent", "name"):
      continue
    value = getattr(module, field.name)
    converted = convert(value)
    if converted is not value:
      changes[field.name] = converted
  return module.clone(**changes) if changes else module
