"""What a traced computation's matrix products run at: the precision checks of the clipping tests."""

import jax

HIGHEST = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)


def matmul_precisions(closed_jaxpr) -> list:
  """The precision of every matrix product and convolution in `closed_jaxpr`, sub-jaxprs too."""
  found = []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
        found.append(eqn.params.get("precision"))
      for value in eqn.params.values():
        for sub in value if isinstance(value, (list, tuple)) else (value,):
          if isinstance(sub, jax.extend.core.ClosedJaxpr):
            walk(sub.jaxpr)
          elif isinstance(sub, jax.extend.core.Jaxpr):
            walk(sub)

  walk(closed_jaxpr.jaxpr)
  return found


def products_added_at_the_highest_precision(with_clipping, gradients_alone, *args) -> int:
  """Traces both functions of `args` under JAX's bfloat16 default matmul precision (a stand-in
  for a platform's reduced default, such as TF32 on recent GPUs; the CPU ignores it) and checks
  that every product `with_clipping` has beyond those of `gradients_alone` (the forward and
  backward passes, which keep the default; a layer may run its own products at the highest
  precision) is at the highest precision. Returns how many it added."""
  with jax.default_matmul_precision("bfloat16"):
    clipping = matmul_precisions(jax.make_jaxpr(with_clipping)(*args))
    alone = matmul_precisions(jax.make_jaxpr(gradients_alone)(*args))
  at_default = lambda found: [p for p in found if p != HIGHEST]
  assert at_default(alone), alone  # the stand-in default did reach the passes
  assert len(at_default(clipping)) == len(at_default(alone)), (clipping, alone)
  return len(clipping) - len(alone)
