"""One entry point: every evaluation metric of a release, as a JSON-serialisable dict.

`evaluate_release` runs the utility (`utility`), fidelity (`fidelity`) and empirical privacy
(`membership`) metrics with the protocol of docs/evaluation.md, picking the image or tabular
variants by the domain's blocks; `summary_lines` turns the result into a few console lines.

These numbers are computed from the private training records and the private holdout without
any privacy mechanism: they are NOT differentially private. They describe the release to its
owner; publishing them next to the release leaks information the release's guarantee does not
cover.
"""

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from lipdp.evaluation import _validation
from lipdp.evaluation import downstream
from lipdp.evaluation import fidelity
from lipdp.evaluation import membership
from lipdp.evaluation import utility

__all__ = ["evaluate_release", "summary_lines", "FAST_SKIPPED_MODELS", "MAX_MMD_SAMPLES"]

# Downstream models that `fast=True` leaves out of the default set (the slowest to train).
FAST_SKIPPED_MODELS = ("mlp", "cnn")
# MMD needs all pairwise kernel values: each set is subsampled (fixed seed) to at most this.
MAX_MMD_SAMPLES = 2000
# The real-data classifier behind label agreement (and, for images, the Fréchet features).
REFERENCE_CLASSIFIER = {"image": "cnn", "tabular": "hgb"}

_MMD_SYNTHETIC, _MMD_HOLDOUT, _MMD_TRAIN = 30, 31, 32

_ROLES = {
  "synthetic": "the release under evaluation",
  "train": (
    "the real records the generator was trained on (and whose latents were "
    "released): TRTR training set, the classifiers behind label agreement and the "
    "Fréchet features, and the members of the membership attacks"
  ),
  "holdout": (
    "real records the release never used: the test set of TSTR/TRTR, the real "
    "reference sample of every fidelity metric, and the non-members (half of "
    "them) and the attacker's reference data (the other half) of the membership "
    "attacks"
  ),
}
_PRIVACY_NOTE = (
  "Computed from the private training records and the private holdout without any privacy "
  "mechanism: these numbers are not differentially private and are not covered by the "
  "release's guarantee. Do not publish them with the release."
)
_HOLDOUT_CONTRACT = (
  "Assumed, not checked: the holdout was never used to train the generator or to produce the "
  "release. If it was, TSTR and fidelity are optimistic and the membership attacks "
  "understate the leak."
)


def _default_models(kind: str, fast: bool) -> Sequence[str]:
  models = downstream.IMAGE_MODELS if kind == "image" else downstream.TABLE_MODELS
  return tuple(m for m in models if not (fast and m in FAST_SKIPPED_MODELS))


def _mmd_metrics(synthetic, train, holdout, seed) -> Dict[str, float]:
  s = _validation.subsample(synthetic, MAX_MMD_SAMPLES, _validation.rng_for(seed, _MMD_SYNTHETIC))
  h = _validation.subsample(holdout, MAX_MMD_SAMPLES, _validation.rng_for(seed, _MMD_HOLDOUT))
  bandwidth = fidelity.median_heuristic_bandwidth(h)
  out = {"fidelity/mmd": fidelity.mmd_squared(s, h, bandwidth)}
  if train is not None:
    t = _validation.subsample(train, MAX_MMD_SAMPLES, _validation.rng_for(seed, _MMD_TRAIN))
    out["fidelity/mmd_train_vs_holdout"] = fidelity.mmd_squared(t, h, bandwidth)
  out["fidelity/mmd_bandwidth"] = bandwidth
  return out


# Why each metric group is skipped when no training records are given.
_NO_TRAIN = "no training records were given (train=None)"


@_validation.single_threaded
def evaluate_release(
  domain: Any,
  synthetic: Any,
  train: Any,
  holdout: Any,
  *,
  seed: int = 0,
  models: Optional[Sequence[str]] = None,
  fast: bool = False,
) -> Dict[str, Any]:
  """Utility, fidelity and empirical privacy of a synthetic release.

  Every number is a deterministic function of the inputs and `seed` (which seeds the models,
  the CNN's PRNG key and every subsample or split). The holdout must be real records that the
  release never used. Distances and fidelity are computed on the records as given (they should
  lie in the domain).

  Args:
    domain: the records' domain (ImageDomain or TabularDomain; image metrics iff it has an
      image block).
    synthetic: released records, array (n_s >= 2, domain.dim).
    train: the real records the generator was trained on, (n_t >= 2, domain.dim); or None
      (e.g. for another tool's table): the metrics that need them are skipped (meta/skipped
      says which): TRTR, the majority baseline, label agreement and the reference classifier,
      the Fréchet distance, every '*_train_vs_holdout' floor, and the membership metrics.
    holdout: real records the release never used, (n_h >= 4, domain.dim).
    seed: non-negative integer.
    models: downstream models for TSTR/TRTR; default: images ('logreg', 'mlp', 'cnn'),
      tables ('logreg', 'hgb').
    fast: leave the slow models ('mlp', 'cnn') out of the default TSTR/TRTR set (an explicit
      `models` is used as given). The reference classifier is trained either way, so every
      key of a fast run other than meta/fast and meta/models has the same value as in a full
      run.

  Returns:
    A JSON-serialisable dict (floats, ints, strings, lists, None where a metric does not
    apply). Keys:

    meta/ (what was measured, on what):
      meta/kind ('image' | 'tabular'), meta/seed, meta/fast, meta/models (TSTR/TRTR models),
      meta/reference_classifier ('cnn' for images, 'hgb' for tables: fitted on train, used
      for label agreement and the Fréchet features), meta/num_synthetic, meta/num_train,
      meta/num_holdout, meta/num_classes, meta/label_column, meta/roles (what each set was
      used for), meta/holdout_contract, meta/holdout_duplicates_of_train (holdout records
      identical to a training record; 0 expected), meta/differentially_private (False),
      meta/privacy_note, meta/model_settings (the fixed downstream settings), meta/skipped
      ({metric group: reason}).
    Utility (labelled domains; accuracy / macro-F1 on the real holdout):
      tstr/<model>, tstr/<model>_f1 (trained on synthetic), trtr/<model>, trtr/<model>_f1
      (trained on train), utility/majority_baseline (always the most frequent training label).
    Labels (labelled domains):
      labels/agreement (fraction of synthetic records whose label equals the reference
      classifier's prediction), labels/agreement_real_holdout (the same on the real holdout:
      the reference classifier's accuracy), labels/balance_tv (TV distance of the synthetic
      vs holdout label histograms), labels/balance_tv_train_vs_holdout (the same for train),
      labels/num_synthetic_classes.
    Fidelity (reference sample: the holdout; each '*_train_vs_holdout' key is the value the
    training set itself scores, i.e. a release that copies its training data):
      fidelity/mmd, fidelity/mmd_train_vs_holdout (unbiased MMD^2, Gaussian kernel on whole
      records), fidelity/mmd_bandwidth (median heuristic on the holdout).
      Images (labelled): fidelity/frechet, fidelity/frechet_train_vs_holdout (Fréchet
      distance in the reference CNN's 64 penultimate features; NOT FID).
      Tables: fidelity/tv/<column>, fidelity/wasserstein/<column>,
      fidelity/binned_tv/<column>, fidelity/tv_mean, fidelity/tv_max,
      fidelity/wasserstein_mean, fidelity/wasserstein_max, fidelity/binned_tv_mean,
      fidelity/binned_tv_max,
      fidelity/association_diff_mean, fidelity/association_diff_max,
      fidelity/pearson_diff_mean, fidelity/cramers_v_diff_mean,
      fidelity/correlation_ratio_diff_mean, and fidelity/tv_mean_train_vs_holdout,
      fidelity/wasserstein_mean_train_vs_holdout, fidelity/binned_tv_mean_train_vs_holdout,
      fidelity/association_diff_mean_train_vs_holdout.
    Privacy (empirical; see membership):
      privacy/dcr_train_q05, _q50, _q95 and privacy/dcr_holdout_q05, _q50, _q95 (quantiles of
      the distance to the closest record of equally large train / holdout subsets),
      privacy/dcr_closer_to_train (0.5 = no memorisation signal), privacy/dcr_reference_size,
      privacy/dcr_num_synthetic, privacy/exact_match_train, privacy/exact_match_holdout,
      privacy/mia_distance_auc, privacy/mia_distance_auc_ci ([lower, upper], DeLong),
      privacy/mia_density_auc, privacy/mia_density_auc_ci, privacy/mia_num_members,
      privacy/mia_num_nonmembers, privacy/mia_reference_size, privacy/mia_density_dims,
      privacy/mia_ci_level.

  Raises:
    ValueError: records of the wrong shape, too few records, non-finite values, unknown
      models, or a negative seed.
  """
  kind = downstream.domain_kind(domain)
  _validation.rng_for(seed, 0)  # validates the seed
  s = _validation.as_matrix(synthetic, "synthetic", dim=domain.dim, min_rows=2)
  t = None if train is None else _validation.as_matrix(train, "train", dim=domain.dim, min_rows=2)
  h = _validation.as_matrix(holdout, "holdout", dim=domain.dim, min_rows=4)
  models = downstream.check_models(kind, _default_models(kind, fast) if models is None else models)
  labelled = domain.label_column is not None
  ref_name = REFERENCE_CLASSIFIER[kind]
  skipped: Dict[str, str] = {}
  out: Dict[str, Any] = {
    "meta/kind": kind,
    "meta/seed": int(seed),
    "meta/fast": bool(fast),
    "meta/models": list(models) if labelled else [],
    "meta/reference_classifier": ref_name if labelled else None,
    "meta/num_synthetic": int(s.shape[0]),
    "meta/num_train": None if t is None else int(t.shape[0]),
    "meta/num_holdout": int(h.shape[0]),
    "meta/num_classes": int(domain.num_classes) if labelled else None,
    "meta/label_column": domain.label_column,
    "meta/roles": dict(_ROLES),
    "meta/holdout_contract": _HOLDOUT_CONTRACT,
    "meta/holdout_duplicates_of_train": None
    if t is None
    else int(round(membership.exact_match_fraction(h, t) * h.shape[0])),
    "meta/differentially_private": False,
    "meta/privacy_note": _PRIVACY_NOTE,
    "meta/model_settings": {
      k: v for k, v in downstream.MODEL_SETTINGS.items() if k.startswith(kind + "/")
    },
    "meta/skipped": skipped,
  }

  reference = None
  if labelled and t is None:
    out.update(utility.tstr(domain, s, h, models=models, seed=seed))
    _, ys = downstream.features_and_labels(domain, s, "synthetic")
    _, yh = downstream.features_and_labels(domain, h, "holdout")
    out["labels/balance_tv"] = fidelity.label_balance_tv(ys, yh, int(domain.num_classes))
    out["labels/num_synthetic_classes"] = int(np.unique(ys).size)
    skipped["utility/trtr"] = _NO_TRAIN
    skipped["labels/agreement"] = _NO_TRAIN
  elif labelled:
    reference = downstream.fit_classifier(domain, t, ref_name, seed=seed, name="train")
    out.update(
      utility.tstr_trtr(
        domain, s, t, h, models=models, seed=seed, fitted_on_train={ref_name: reference}
      )
    )
    xs, ys = downstream.features_and_labels(domain, s, "synthetic")
    xt, yt = downstream.features_and_labels(domain, t, "train")
    xh, yh = downstream.features_and_labels(domain, h, "holdout")
    num_classes = int(domain.num_classes)
    out["labels/agreement"] = fidelity.label_agreement(ys, reference.predict(xs))
    out["labels/agreement_real_holdout"] = fidelity.label_agreement(yh, reference.predict(xh))
    out["labels/balance_tv"] = fidelity.label_balance_tv(ys, yh, num_classes)
    out["labels/balance_tv_train_vs_holdout"] = fidelity.label_balance_tv(yt, yh, num_classes)
    out["labels/num_synthetic_classes"] = int(np.unique(ys).size)
  else:
    skipped["utility"] = "the domain has no label column"
    skipped["labels"] = "the domain has no label column"

  if kind == "image":
    if reference is not None and hasattr(reference, "features"):
      fh = reference.features(xh)
      out["fidelity/frechet"] = fidelity.frechet_distance(reference.features(xs), fh)
      out["fidelity/frechet_train_vs_holdout"] = fidelity.frechet_distance(
        reference.features(xt), fh
      )
    else:
      skipped["fidelity/frechet"] = (
        _NO_TRAIN
        if t is None
        else "needs a classifier trained on labelled real data with at least two classes"
      )
  else:
    out.update(fidelity.tabular_fidelity(domain, s, h))
    if t is not None:
      floor = fidelity.tabular_fidelity(domain, t, h)
      for key in ("tv_mean", "wasserstein_mean", "binned_tv_mean", "association_diff_mean"):
        out[f"fidelity/{key}_train_vs_holdout"] = floor[f"fidelity/{key}"]
  out.update(_mmd_metrics(s, t, h, seed))

  if t is None:
    skipped["privacy"] = _NO_TRAIN
    return out
  out.update(membership.distance_to_closest_record(s, t, h, seed=seed))
  out.update(membership.membership_inference(s, t, h, seed=seed))
  return out


def _fmt(value: Any, spec: str = ".3f") -> str:
  return "n/a" if value is None else format(value, spec)


def _ci(value: Any) -> str:
  return "" if value is None else f" [{value[0]:.2f}, {value[1]:.2f}]"


def summary_lines(metrics: Dict[str, Any]) -> List[str]:
  """5-10 short console lines from an `evaluate_release` result (missing keys are skipped)."""
  m = metrics
  against = (
    f"{m.get('meta/num_holdout')} holdout records"
    if m.get("meta/num_train") is None
    else f"{m.get('meta/num_train')} training / {m.get('meta/num_holdout')} holdout records"
  )
  lines = [
    f"Evaluation of {m.get('meta/num_synthetic')} synthetic records against {against} "
    "(not differentially private: do not publish)."
  ]
  models = [k[len("tstr/") :] for k in m if k.startswith("tstr/") and not k.endswith("_f1")]
  if models and all(f"trtr/{name}" in m for name in models):
    parts = ", ".join(
      f"{name} {m[f'tstr/{name}']:.3f} vs {m[f'trtr/{name}']:.3f}" for name in models
    )
    lines.append(
      f"Utility, holdout accuracy TSTR vs TRTR: {parts} (majority class "
      f"{_fmt(m.get('utility/majority_baseline'))})."
    )
  elif models:
    parts = ", ".join(f"{name} {m[f'tstr/{name}']:.3f}" for name in models)
    lines.append(f"Utility, holdout accuracy TSTR: {parts} (no training records: no TRTR).")
  if "labels/agreement" in m:
    lines.append(
      f"Labels: agreement with a real-data {m.get('meta/reference_classifier')} "
      f"{_fmt(m['labels/agreement'])} (on real holdout "
      f"{_fmt(m.get('labels/agreement_real_holdout'))}); label balance TV "
      f"{_fmt(m.get('labels/balance_tv'))} (train "
      f"{_fmt(m.get('labels/balance_tv_train_vs_holdout'))})."
    )
  if "fidelity/frechet" in m:
    lines.append(
      f"Fidelity: Fréchet distance in CNN features (not FID) "
      f"{_fmt(m['fidelity/frechet'], '.3g')} (training set itself "
      f"{_fmt(m.get('fidelity/frechet_train_vs_holdout'), '.3g')})."
    )
  if "fidelity/tv_mean" in m or "fidelity/wasserstein_mean" in m:
    lines.append(
      f"Fidelity: mean TV {_fmt(m.get('fidelity/tv_mean'))}, mean W1 "
      f"{_fmt(m.get('fidelity/wasserstein_mean'))}, mean binned TV "
      f"{_fmt(m.get('fidelity/binned_tv_mean'))}, mean association diff "
      f"{_fmt(m.get('fidelity/association_diff_mean'))} (training set itself "
      f"{_fmt(m.get('fidelity/tv_mean_train_vs_holdout'))}, "
      f"{_fmt(m.get('fidelity/wasserstein_mean_train_vs_holdout'))}, "
      f"{_fmt(m.get('fidelity/binned_tv_mean_train_vs_holdout'))}, "
      f"{_fmt(m.get('fidelity/association_diff_mean_train_vs_holdout'))})."
    )
  if "fidelity/mmd" in m:
    lines.append(
      f"Fidelity: MMD^2 {_fmt(m['fidelity/mmd'], '.4f')} (training set itself "
      f"{_fmt(m.get('fidelity/mmd_train_vs_holdout'), '.4f')})."
    )
  if "privacy/dcr_closer_to_train" in m:
    lines.append(
      f"DCR median to train {_fmt(m.get('privacy/dcr_train_q50'))}, to holdout "
      f"{_fmt(m.get('privacy/dcr_holdout_q50'))}; closer to train "
      f"{_fmt(m['privacy/dcr_closer_to_train'])} (0.5 = no signal); exact copies of training "
      f"records {_fmt(m.get('privacy/exact_match_train'))}."
    )
  if "privacy/mia_distance_auc" in m:
    lines.append(
      f"Membership inference AUC (0.5 = chance): distance "
      f"{_fmt(m['privacy/mia_distance_auc'])}{_ci(m.get('privacy/mia_distance_auc_ci'))}, "
      f"density {_fmt(m.get('privacy/mia_density_auc'))}"
      f"{_ci(m.get('privacy/mia_density_auc_ci'))}."
    )
  if m.get("meta/skipped"):
    lines.append("Skipped: " + "; ".join(f"{k} ({v})" for k, v in m["meta/skipped"].items()))
  return lines
