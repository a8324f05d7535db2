"""AIM (McKenna, Mullins, Sheldon, Miklau 2022), accounted under replace-one, on mbi.

"AIM: An Adaptive and Iterative Mechanism for Differentially Private Synthetic Data", PVLDB
15(11), 2022; the algorithm of the authors' reference implementation (private-pgm,
mechanisms/aim.py), with the workload of all two-way marginals (weight 1 each) and numeric
columns cut into declared bins (`discretize`). With a zCDP budget rho, d attributes and T rounds:

1. Candidates: the downward closure of the workload (every attribute and every pair), each with
   the weight w_r = sum over workload marginals s of |r intersect s|.
2. Measure every one-way marginal with Gaussian noise sigma, sigma^2 = T / (0.9 rho) here.
3. Repeat: if less than two rounds' budget is left, spend all of it in one last round
   (sigma^2 = 1 / (0.9 remaining), eps^2 = 0.8 remaining). Keep the candidates whose addition
   keeps the model under max_model_size * (share of budget used so far) megabytes (or that the
   model already covers). Select one with the exponential mechanism on the quality
   q_r = w_r (||x_r - xhat_r||_1 - sqrt(2/pi) sigma n_r) (xhat: the current model's marginal,
   n_r cells), measure it with noise sigma, re-estimate the model (warm start), and if the
   model's marginal moved by less than sqrt(2/pi) sigma n_r, halve sigma and double eps
   (annealing).
4. Estimate the final model and sample n synthetic records (post-processing).

Replace-one accounting (the paper states add/remove-one). A histogram has l2 sensitivity
sqrt(2): each Gaussian measurement costs Delta^2 / (2 sigma^2) = 1 / sigma^2 (the paper's
0.5 / sigma^2 with sigma^2 = T / (2 * 0.9 rho)); hence sigma^2 = T / (0.9 rho) keeps the
paper's split (90% of each round's budget to measuring, 10% to selecting). The quality q_r moves
by at most 2 w_r when one record is replaced, so the selection's score sensitivity is
Delta_q = 2 max_r w_r over the candidates offered, and it samples with probability proportional
to exp(eps q / (2 Delta_q)): eps-bounded-range, eps^2 / 8 zCDP (exactly, on the float64
scores, whose rounding raises Delta_q and the temperature together at the same eps:
`_pgm.exponential_select`).

The noise of each round is chosen from earlier outputs (annealing, the last round), so the
guarantee is the budget rho fixed in advance, which the measurements never exceed: zCDP with a
Renyi filter (Feldman and Zrnic 2021), as in the paper's own privacy argument. The report lists
every measurement made (`lipdp.privacy.CentralRelease` with `rho_budget`); verify() checks that
they fit in the budget and recomputes epsilon from it.
"""

import itertools
import math
from typing import Any, Optional

import numpy as np

from lipdp import privacy
from lipdp.baselines import _inference
from lipdp.baselines import _pgm
from lipdp.baselines import base
from lipdp.baselines import discretize

NAME = "aim"
GAUSSIAN_SHARE = 0.9  # of each round's zCDP budget (the paper's alpha)
ROUNDS_PER_ATTRIBUTE = 16  # the paper's default T = 16 d
MAX_MODEL_SIZE_MB = 80.0
ROUND_ITERS = 250  # mirror-descent iterations per round (warm-started)
FINAL_ITERS = 1000
# The last round spends the remaining budget times this, so float rounding never overspends.
_LAST_ROUND_SHARE = 1.0 - 1e-9


def workload_candidates(names) -> dict:
  """{candidate: weight} for the workload of all pairs: the downward closure, AIM's scores."""
  workload = list(itertools.combinations(names, 2))
  candidates = {(a,): 0.0 for a in names}
  candidates.update({p: 0.0 for p in workload})
  for cl in candidates:
    candidates[cl] = float(sum(len(set(cl) & set(s)) for s in workload))
  return candidates


def _round_noise(rho_round: float):
  """(sigma, eps) that spend rho_round: 1/sigma^2 = 0.9 rho_round, eps^2/8 = 0.1 rho_round."""
  sigma = math.sqrt(1.0 / (GAUSSIAN_SHARE * rho_round))
  eps = math.sqrt(8.0 * (1.0 - GAUSSIAN_SHARE) * rho_round)
  return sigma, eps


def _round_cost(sigma: float, eps: float) -> float:
  return 1.0 / sigma**2 + eps**2 / 8.0


def fit(
  train: Any,
  domain: Any,
  *,
  epsilon: float,
  delta: float,
  seed: Optional[int] = None,
  bins: Any = None,
  rounds: Optional[int] = None,
  max_model_size: float = MAX_MODEL_SIZE_MB,
  round_iters: int = ROUND_ITERS,
  final_iters: int = FINAL_ITERS,
  num_samples: Optional[int] = None,
  notes=(),
) -> base.BaselineRelease:
  """AIM synthetic records in the domain, with their replace-one privacy report.

  Args:
    train: the private records (n, domain.dim), in the (tabular) domain.
    domain: a `lipdp.data.TabularDomain`.
    epsilon: the target epsilon (> 0).
    delta: the target delta in (0, 1).
    seed: None draws the noise from OS entropy; an integer makes it reproducible (and says so
      in the report).
    bins: declared bins of the numeric columns ({column: count or edges}, or a schema file with
      "bins" entries; `discretize`).
    rounds: T, the planned number of rounds (default 16 d, the paper's); fewer rounds give
      each measurement more budget. Must exceed 0.9 d, or the one-way measurements alone would
      spend the budget.
    max_model_size: the model-size cap in megabytes (the paper's 80).
    round_iters, final_iters: mirror-descent iterations (post-processing).
    num_samples: synthetic records to release (default n).
    notes: remarks carried into the report.

  Returns:
    A `BaselineRelease` whose report recomputes epsilon from its zCDP budget.
  """
  base.check_budget(epsilon, delta, NAME)
  x = base.check_records(train, domain)
  n = x.shape[0]
  num_samples = n if num_samples is None else int(num_samples)
  edges = discretize.numeric_edges(domain, bins)
  sizes = discretize.attribute_sizes(domain, edges)
  discretize.check_discrete_domain(sizes, NAME)
  names = list(sizes)
  d = len(names)
  rounds = ROUNDS_PER_ATTRIBUTE * d if rounds is None else int(rounds)
  if not rounds > GAUSSIAN_SHARE * d:
    raise ValueError(
      f"AIM: rounds={rounds} is infeasible for {d} attributes: the one-way "
      f"measurements alone cost {GAUSSIAN_SHARE} d / rounds of the budget; "
      f"give rounds > {GAUSSIAN_SHARE * d:g}"
    )
  mbi = _pgm.import_mbi()
  attrs = discretize.to_attributes(x, domain, edges)
  rng = base.noise_rng(seed)
  rho = privacy.zcdp_rho(epsilon, delta)
  mdomain = _pgm.mbi_domain(mbi, sizes)
  candidates = workload_candidates(names)
  answers = {cl: _pgm.marginal(attrs, sizes, cl) for cl in candidates}

  sigma, eps = _round_noise(rho / rounds)
  measurements = [
    _pgm.measurement(mbi, _pgm.gaussian_measure(answers[(a,)], sigma, rng), (a,), sigma)
    for a in names
  ]
  made = [_pgm.gaussian_histograms(sigma, d)]
  spent = [m.rho for m in made]
  model = _pgm.estimate(mbi, mdomain, measurements, n, round_iters)
  selected, annealed = [], 0
  terminate = False
  while not terminate:
    used = math.fsum(spent)
    if rho - used < 2.0 * _round_cost(sigma, eps):
      sigma, eps = _round_noise((rho - used) * _LAST_ROUND_SHARE)
      terminate = True
    size_limit = max_model_size * (used + _round_cost(sigma, eps)) / rho
    covered = {
      tuple(sorted(c))
      for cl in model.cliques
      for k in range(1, len(cl) + 1)
      for c in itertools.combinations(cl, k)
    }
    offered = [
      cl
      for cl in candidates
      if tuple(sorted(cl)) in covered
      or mbi.junction_tree.hypothetical_model_size(mdomain, list(model.cliques) + [cl])
      <= size_limit
    ]
    estimated = _inference.ModelMarginals(model, mbi)
    xhat = {cl: estimated.marginal(cl) for cl in offered}
    bias = math.sqrt(2.0 / math.pi) * sigma
    # The expected error of a measurement of each clique: the score's offset, and the very
    # number the score's rounding bound is given.
    offset = {cl: bias * answers[cl].size for cl in offered}
    quality = np.array(
      [candidates[cl] * (np.abs(answers[cl] - xhat[cl]).sum() - offset[cl]) for cl in offered]
    )
    rounding = max(
      _pgm.score_rounding_bound(n, xhat[cl], candidates[cl], offset[cl]) for cl in offered
    )
    score_sensitivity = 2.0 * max(candidates[cl] for cl in offered)
    temperature = 2.0 * score_sensitivity / eps
    index, selection = _pgm.exponential_select(
      quality, temperature, score_sensitivity, rounding, rng
    )
    cl = offered[index]
    made.append(selection)
    y = _pgm.gaussian_measure(answers[cl], sigma, rng)
    made.append(_pgm.gaussian_histograms(sigma, 1))
    spent.extend(m.rho for m in made[-2:])
    measurements.append(_pgm.measurement(mbi, y, cl, sigma))
    selected.append(list(cl))
    model = _pgm.estimate(mbi, mdomain, measurements, n, round_iters, warm_start=model)
    moved = np.abs(_inference.ModelMarginals(model, mbi).marginal(cl) - xhat[cl]).sum()
    if not terminate and moved <= offset[cl]:
      sigma, eps = sigma / 2.0, eps * 2.0
      annealed += 1

  model = _pgm.estimate(mbi, mdomain, measurements, n, final_iters, warm_start=model)
  post = base.post_processing_rng(rng, seed)
  records = discretize.from_attributes(_pgm.sample(model, num_samples, post), domain, edges, post)
  event = privacy.CentralRelease(
    NAME,
    _pgm.group(made),
    num_samples,
    rho_budget=rho,
    exact_noise=True,
    exact_selections=True,
  )
  report = base.central_report(
    event,
    domain=base.table_description(domain, edges),
    domain_description=domain.describe(),
    delta=delta,
    num_records=n,
    seed=seed,
    extra_versions=_pgm.versions(),
    notes=tuple(notes)
    + (
      f"AIM: target epsilon {epsilon:g}, zCDP budget rho {rho:.6g}, "
      f"{rounds} planned rounds, {len(selected)} made, "
      f"{annealed} annealing steps; workload: all pairs",
    ),
  )
  base.check_spent(report, epsilon, NAME)
  info = {
    "rho": rho,
    "planned_rounds": rounds,
    "rounds": len(selected),
    "annealed": annealed,
    "selected": selected,
    "bins": discretize.describe_edges(domain, edges),
  }
  return base.BaselineRelease(NAME, records, report, True, info)
