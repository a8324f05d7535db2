"""lipdp.studies: the machinery of the experiments, as data and functions (docs/results.md).

* `points`: a sweep point (method, config variant, overrides, seed) becomes a `lipdp.spec.Spec`,
  runs through `lipdp.runner.run` like every other run, and comes back as a flat row;
* `results`: results files, one JSON line per point, appended with fsync and read back;
* `summaries`: the figures and Markdown tables of docs/results.md from those rows.

experiments/ keeps the thin absl mains (sweep.py, figures.py, baselines.py), the configs and the
sweep definitions; sweep rows describe a study of the mechanism (seeded noise, metrics on the
private holdout), not releases one could publish.
"""
