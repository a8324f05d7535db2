"""MST (McKenna, Miklau, Sheldon 2021), accounted under replace-one, on mbi (Private-PGM).

"Winning the NIST Contest: A scalable and general approach to differentially private synthetic
data", Journal of Privacy and Confidentiality 11(3), 2021; the algorithm of the authors'
reference implementation (private-pgm, mechanisms/mst.py). With a zCDP budget rho and d
attributes (numeric columns cut into declared bins, `discretize`):

1. Measure every one-way marginal with Gaussian noise (budget rho / 3).
2. Compress each attribute's domain: values whose noisy count is below 3 sigma_1 merge into one
   value (post-processing of step 1).
3. Select a maximum spanning tree of attribute pairs (budget rho / 3): estimate a model from
   step 1, weigh each pair (a, b) by ||x_ab - xhat_ab||_1 (true minus estimated marginal), and
   add d - 1 edges one at a time with the exponential mechanism over the pairs that join two
   components (Kruskal order).
4. Measure the d - 1 selected two-way marginals with Gaussian noise (budget rho / 3).
5. Estimate a graphical model from all measurements (mirror descent; the number of records n is
   public under replace-one and fixes the total) and sample n synthetic records; undo the
   compression uniformly. Post-processing.

Replace-one accounting (the paper states add/remove-one). A histogram has l2 sensitivity
sqrt(2), not 1, and the score ||x_ab - xhat_ab||_1 moves by at most 2, not 1 (xhat is fixed by
step 1, itself private). So, with Delta_2 = sqrt(2) and Delta_q = 2:

* step 1: d Gaussian histograms with sigma_1: rho_1 = d Delta_2^2 / (2 sigma_1^2) = d / sigma_1^2
  = rho / 3, so sigma_1 = sqrt(3 d / rho) (the paper's add/remove sigma is sqrt(3 d / (2 rho)));
* step 3: d - 1 exponential mechanisms, each eps_s-bounded-range with
  eps_s^2 / 8 = rho / (3 (d - 1)), sampled with probability proportional to
  exp(eps_s q / (2 Delta_q)) = exp(q / T), T = 2 Delta_q / eps_s (exactly, on the float64
  scores, whose rounding raises Delta_q and T together by a relative 1e-8 or so at the same
  eps_s: `_pgm.exponential_select`; the plan's `select_temperature` is T before that);
* step 4: d - 1 Gaussian histograms with sigma_2 = sqrt(3 (d - 1) / rho).

The total is rho-zCDP, converted to (epsilon, delta) by Canonne, Kamath and Steinke 2020
(`lipdp.privacy.zcdp`). The calibration runs backwards: rho = zcdp_rho(epsilon, delta), the
largest rho whose conversion meets the target. Every noise scale is fixed before the data is
read, so the realised sum is the guarantee. The report lists the measurements
(`lipdp.privacy.CentralRelease`) and recomputes epsilon from them.
"""

import itertools
from typing import Any, Mapping, Optional

import numpy as np

from lipdp import privacy
from lipdp.baselines import _inference
from lipdp.baselines import _pgm
from lipdp.baselines import base
from lipdp.baselines import discretize

NAME = "mst"
# Estimation iterations of mirror descent (step 3's model, and the final model).
SELECT_ITERS = 1000
FINAL_ITERS = 2500
# Step 2: a value stays in the domain when its noisy one-way count is at least this many sigma.
COMPRESSION_SIGMAS = 3.0


def budget(rho: float, num_attributes: int) -> dict:
  """MST's replace-one noise for a zCDP budget rho (module docstring)."""
  d = int(num_attributes)
  if d < 2:
    raise ValueError(f"MST needs at least two attributes, got {d}")
  eps_select = np.sqrt(8.0 * rho / (3.0 * (d - 1)))
  return {
    "sigma_oneway": float(np.sqrt(3.0 * d / rho)),
    "sigma_pairs": float(np.sqrt(3.0 * (d - 1) / rho)),
    "select_epsilon": float(eps_select),
    "select_temperature": float(2.0 * _pgm.HISTOGRAM_L1_SENSITIVITY / eps_select),
  }


def _compression(y_oneway: Mapping[str, np.ndarray], sigma: float) -> dict:
  """{attribute: mapping} merging values whose noisy count is below 3 sigma (MST step 2)."""
  mapping = {}
  for attr, y in y_oneway.items():
    keep = y >= COMPRESSION_SIGMAS * sigma
    if keep.all():
      continue
    m = np.full(y.size, int(keep.sum()), dtype=np.int64)
    m[keep] = np.arange(int(keep.sum()))
    mapping[attr] = m
  return mapping


def fit(
  train: Any,
  domain: Any,
  *,
  epsilon: float,
  delta: float,
  seed: Optional[int] = None,
  bins: Any = None,
  num_samples: Optional[int] = None,
  select_iters: int = SELECT_ITERS,
  final_iters: int = FINAL_ITERS,
  notes=(),
) -> base.BaselineRelease:
  """MST synthetic records in the domain, with their replace-one privacy report.

  Args:
    train: the private records (n, domain.dim), in the (tabular) domain.
    domain: a `lipdp.data.TabularDomain`.
    epsilon: the target epsilon (> 0).
    delta: the target delta in (0, 1).
    seed: None draws the noise from OS entropy; an integer makes it reproducible (and says so
      in the report).
    bins: declared bins of the numeric columns ({column: count or edges in declared units},
      or a schema file with "bins" entries; `discretize`); default equal-width
      `discretize.DEFAULT_NUMERIC_BINS`.
    num_samples: synthetic records to release (default n).
    select_iters, final_iters: mirror-descent iterations (post-processing).
    notes: remarks carried into the report (e.g. the data set's caveats).

  Returns:
    A `BaselineRelease` whose report recomputes epsilon from the measurements.
  """
  base.check_budget(epsilon, delta, NAME)
  x = base.check_records(train, domain)
  n = x.shape[0]
  num_samples = n if num_samples is None else int(num_samples)
  edges = discretize.numeric_edges(domain, bins)
  sizes = discretize.attribute_sizes(domain, edges)
  discretize.check_discrete_domain(sizes, NAME)
  mbi = _pgm.import_mbi()
  attrs = discretize.to_attributes(x, domain, edges)
  rng = base.noise_rng(seed)
  # Shaved by 1e-12 so that float rounding in the sum of the three thirds never overspends.
  rho = privacy.zcdp_rho(epsilon, delta) * (1.0 - 1e-12)
  plan = budget(rho, len(sizes))
  names = list(sizes)

  # 1. One-way marginals.
  y1 = {
    a: _pgm.gaussian_measure(_pgm.marginal(attrs, sizes, (a,)), plan["sigma_oneway"], rng)
    for a in names
  }
  made = [_pgm.gaussian_histograms(plan["sigma_oneway"], len(names))]

  # 2. Compression (post-processing of y1).
  mapping = _compression(y1, plan["sigma_oneway"])
  full_domain = _pgm.mbi_domain(mbi, sizes)
  csizes = {a: int(mapping[a].max() + 1) if a in mapping else sizes[a] for a in names}
  cdomain = _pgm.mbi_domain(mbi, csizes)
  cattrs = {a: mapping[a][attrs[a]] if a in mapping else attrs[a] for a in names}
  oneway = [
    _pgm.measurement(mbi, y1[a], (a,), plan["sigma_oneway"]).compress(
      {a: mapping[a]} if a in mapping else {}, full_domain
    )
    for a in names
  ]

  # 3. Spanning tree by the exponential mechanism.
  model = _pgm.estimate(mbi, cdomain, oneway, n, select_iters)
  estimated = _inference.ModelMarginals(model, mbi)
  pairs = list(itertools.combinations(names, 2))
  weights, rounding = {}, 0.0
  for p in pairs:
    xhat = estimated.marginal(p)
    weights[p] = float(np.abs(_pgm.marginal(cattrs, csizes, p) - xhat).sum())
    rounding = max(rounding, _pgm.score_rounding_bound(n, xhat))
  component = {a: a for a in names}

  def find(a):
    while component[a] != a:
      component[a] = component[component[a]]
      a = component[a]
    return a

  tree = []
  for _ in range(len(names) - 1):
    candidates = [p for p in pairs if find(p[0]) != find(p[1])]
    scores = np.array([weights[p] for p in candidates])
    index, selection = _pgm.exponential_select(
      scores, plan["select_temperature"], _pgm.HISTOGRAM_L1_SENSITIVITY, rounding, rng
    )
    chosen = candidates[index]
    component[find(chosen[0])] = find(chosen[1])
    tree.append(chosen)
    made.append(selection)  # the d - 1 identical selections merge into one group

  # 4. Two-way marginals of the tree.
  twoway = [
    _pgm.measurement(
      mbi,
      _pgm.gaussian_measure(_pgm.marginal(cattrs, csizes, p), plan["sigma_pairs"], rng),
      p,
      plan["sigma_pairs"],
    )
    for p in tree
  ]
  made.append(_pgm.gaussian_histograms(plan["sigma_pairs"], len(tree)))

  # 5. Estimation and sampling (post-processing).
  model = _pgm.estimate(mbi, cdomain, oneway + twoway, n, final_iters, warm_start=model)
  post = base.post_processing_rng(rng, seed)
  synthetic = _pgm.sample(model, num_samples, post)
  synthetic = _pgm.decompress(mbi, synthetic, sizes, mapping, post)
  records = discretize.from_attributes(synthetic, domain, edges, post)

  event = privacy.CentralRelease(
    NAME, _pgm.group(made), num_samples, exact_noise=True, exact_selections=True
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
      f"MST: target epsilon {epsilon:g}, zCDP rho {rho:.6g} "
      "(rho/3 one-way, rho/3 selection, rho/3 pairs)",
    ),
  )
  base.check_spent(report, epsilon, NAME)
  info = {
    "rho": rho,
    **plan,
    "tree": [list(p) for p in tree],
    "compressed_attributes": sorted(mapping),
    "bins": discretize.describe_edges(domain, edges),
  }
  return base.BaselineRelease(NAME, records, report, True, info)
