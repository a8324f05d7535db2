r"""What the heteroscedastic release costs before its mean moves: a table, no training.

The heteroscedastic release draws each latent from N(mu(x), sigma(x)^2 I) with sigma(x) in
[sigma_min, sigma_max] and log sigma(x) certified `log_sigma_lipschitz`-Lipschitz, so between
neighbouring records sigma may change by a factor up to exp(log_sigma_lipschitz * D). Its RDP
epsilon (`lipdp.privacy.heteroscedastic_epsilon`) therefore has a term from the variances alone,
summed over the latent coordinates, that is there even when the mean's Lipschitz bound L is 0.
This prints that epsilon for several log_sigma_lipschitz and L (docs/results.md):

  python experiments/heteroscedastic_cost.py            # digits: D = 5.83, 32 latents
"""

from absl import app
from absl import flags

from lipdp import privacy

FLAGS = flags.FLAGS
flags.DEFINE_float("diameter", 5.83, "Domain diameter D (digits' default domain: 5.83).")
flags.DEFINE_float("delta", 1e-5, "delta.")
flags.DEFINE_integer("latent_dim", 32, "Latent coordinates released per record.")
flags.DEFINE_float("sigma_min", 0.5, "Smallest sigma(x).")
flags.DEFINE_float("sigma_max", 2.0, "Largest sigma(x).")
flags.DEFINE_list("log_sigma_lipschitz", ["0.1", "0.05", "0.02", "0.01", "0.005", "0.002"], "")
flags.DEFINE_list("lipschitz", ["0", "0.023", "0.1"], "Lipschitz bounds L of the mean.")


def main(argv):
  del argv
  ls = [float(x) for x in FLAGS.lipschitz]
  print(
    "| log_sigma_lipschitz | sigma ratio | "
    + " | ".join(f"epsilon at L = {x:g}" for x in ls)
    + " |"
  )
  print("|---" * (2 + len(ls)) + "|")
  for lsl in (float(x) for x in FLAGS.log_sigma_lipschitz):
    rows = [
      privacy.heteroscedastic_epsilon(
        FLAGS.delta,
        max(lip, 1e-12),  # L = 0 as a limit: the bound needs a positive number
        lsl,
        FLAGS.diameter,
        FLAGS.sigma_min,
        FLAGS.sigma_max,
        FLAGS.latent_dim,
      )
      for lip in ls
    ]
    cells = " | ".join(f"{r.epsilon:.2f}" for r in rows)
    print(f"| {lsl:g} | {rows[0].sigma_ratio:.3f} | {cells} |")


if __name__ == "__main__":
  app.run(main)
