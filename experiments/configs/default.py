"""Default configuration of the main job: Lipschitz VAE on scikit-learn's digits, epsilon = 1.

Configs are code (big_vision style): `get_config(arg)` takes an optional variant name,
e.g. `--config=experiments/configs/default.py:mnist_idx` or `:smoke` for a seconds-long run.
Any field can be overridden on the command line, e.g. `--config.epsilon=4`.
"""

import os

import ml_collections

# Data shipped beside the project (not with it): found through this environment variable.
_DATA_DIR_ENV = "LIPDP_DATA_DIR"
_SCHEMAS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()

  # Data: a name understood by lipdp.data.load_dataset ('digits', 'breast_cancer',
  # 'mnist_idx', 'tfds:mnist', 'csv:PATH', 'npz:PATH'). radius: the declared l2 radius of the
  # image part (None: the dataset's declared default). Never derived from the private data.
  c.dataset = "digits"
  c.data_dir = ml_collections.config_dict.placeholder(str)
  c.radius = ml_collections.config_dict.placeholder(float)
  # Images with labels: the declared weight w of the label block (w * one-hot); the label then
  # weighs more in the encoder's input and the diameter is sqrt(2 R^2 + 2 w^2).
  c.label_weight = 1.0
  # The JSON schema of a 'csv:PATH' or 'npz:PATH' table (bounds and categories declared in
  # advance; docs/data.md), e.g. --config.schema=experiments/schemas/bank_marketing.json.
  c.schema = ml_collections.config_dict.placeholder(str)
  # Other options of the data set's loader (see lipdp.data.load_dataset), e.g. for CSV files
  # data_options.schema (the 'bank' variant's way of giving the schema), delimiter, encoding,
  # strict (refuse numbers outside the declared bounds instead of clipping them).
  c.data_options = ml_collections.ConfigDict()
  c.holdout_fraction = 0.2
  c.split_seed = 0

  # Privacy of the per-record release: (epsilon, delta) for each record's k latents.
  c.epsilon = 1.0
  c.delta = 1e-5
  c.k = 1
  # How records are released: 'lipdp' (each record's k noisy latents, decoded) or 'prior'
  # (latents drawn from the prior: the DP-SGD VAE baseline, scope 'dp-sgd' or 'public').
  c.method = "lipdp"
  # One end-to-end budget (scope 'dp-sgd'): the release gets release_share * total_epsilon as its
  # own epsilon and DP-SGD's noise multiplier is calibrated so the composition meets the total
  # (train.dp_noise_multiplier and epsilon are then ignored).
  c.total_epsilon = ml_collections.config_dict.placeholder(float)
  c.release_share = 0.5
  # What the release's own epsilon is: 'per-record', or 'shuffled' (the central epsilon of the
  # shuffled release; scopes 'public' and 'dp-sgd' only, where the weights are covered).
  c.calibration = "per-record"
  # Scope of the model weights: 'conditional' (trained on the private records without DP, as in
  # the original method), 'dp-sgd' (trained with DP-SGD, composed by PLD accounting) or 'public'
  # (trained on `public_dataset`, a separately declared public data set in the same domain, e.g.
  # 'npz:/path/public.npz' with `public_options`; never on a split of the private data).
  c.scope = "conditional"
  c.public_dataset = ml_collections.config_dict.placeholder(str)
  c.public_options = ml_collections.ConfigDict()
  # A work directory holds one release. Releasing again from the same private records composes
  # with the first release; replacing it is only sound if the first one was never published.
  c.replace_release = False
  # The release is a shuffled multiset without record identifiers: report the central epsilon
  # amplified by shuffling next to the per-record one.
  c.shuffled_release = True
  # Noise seed: None draws secret noise from OS entropy. Setting it makes the noise reproducible
  # and so not private against whoever knows it (recorded in the report).
  c.noise_seed = ml_collections.config_dict.placeholder(int)

  c.model = ml_collections.ConfigDict()
  # Model settings chosen on digits, the public proxy (docs/results.md, the knob study): the
  # style latent is what matters (without it the decoder returns the posterior mean, a grey
  # average digit: TSTR 0.67 instead of 0.90 at per-record epsilon 1); half the default radius
  # cost 0.05 TSTR; latent size, label weight (1, 3, 5) and beta moved TSTR less than a seed's
  # spread.
  c.model.latent_dim = 32
  c.model.encoder_hidden = (256, 128)
  c.model.encoder_dense = "bjorck"  # or 'spectral'
  c.model.activation = "maxmin"  # or 'groupsort', 'fullsort'
  # Encoder noise during training and, after recalibration on the certified L, at release.
  # The Lipschitz target is then the largest L that (epsilon, delta) allows at this sigma
  # (only sigma / (L * D) matters). Set lipschitz_target instead to fix L and calibrate sigma.
  c.model.sigma = 1.0
  c.model.lipschitz_target = ml_collections.config_dict.placeholder(float)
  c.model.decoder = "mlp"  # or 'conv' for image domains, or 'lipschitz_mlp'
  c.model.decoder_lipschitz = 10.0  # target of the 'lipschitz_mlp' decoder only
  c.model.decoder_dense = "bjorck"  # layer type of the 'lipschitz_mlp' decoder only
  c.model.decoder_hidden = (256, 512)  # the 'conv' decoder uses the first as its width
  c.model.decoder_channels = 32  # feature maps of the 'conv' decoder
  c.model.image_likelihood = "bernoulli"
  # Style latent: the decoder also reads u ~ N(0, I) (dimension style_dim, 0 = off), encoded from
  # x by an unconstrained network during training and drawn from its prior at synthesis.
  c.model.style_dim = 8
  c.model.style_hidden = (256,)
  # Heteroscedastic noise: sigma(x) in [sigma_min, sigma_max], log sigma(x) certified
  # log_sigma_lipschitz-Lipschitz. The release epsilon is then computed by RDP, not calibrated.
  c.model.heteroscedastic = False
  c.model.sigma_min = 0.5
  c.model.sigma_max = 2.0
  c.model.log_sigma_lipschitz = 0.1

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 2000
  c.train.batch_size = 128
  c.train.learning_rate = 1e-3
  c.train.beta = 1.0
  c.train.seed = ml_collections.config_dict.placeholder(int)
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  # DP-SGD (scope 'dp-sgd' only).
  c.train.dp_noise_multiplier = 1.0
  c.train.dp_clip_norm = 1.0
  c.train.dp_sampling_rate = 0.01

  c.num_figure_samples = 32

  # Utility, fidelity and empirical privacy on the private holdout (lipdp.evaluation), written to
  # workdir/evaluation.json. Not differentially private: never publish it with the release.
  c.evaluation = ml_collections.ConfigDict()
  c.evaluation.enabled = True
  c.evaluation.fast = False  # True skips the MLP and CNN downstream models
  c.evaluation.seed = 0

  if arg == "smoke":
    c.train.num_steps = 50
    c.train.log_every = 10
    c.train.checkpoint_every = 50
    c.model.encoder_hidden = (64,)
    c.model.decoder_hidden = (64,)
    c.evaluation.fast = True
  elif arg == "quick":
    # Digits for sweeps (the public proxy the defaults are chosen on; docs/results.md).
    c.train.num_steps = 500
    c.train.dp_sampling_rate = 0.09  # about 130 of the 1,438 training records per step
  elif arg == "bank":
    # UCI bank-marketing (45,211 records, 17 mixed columns) from $LIPDP_DATA_DIR/bank-marketing
    # with the declared schema experiments/schemas/bank_marketing.json; 80/20 split.
    c.dataset = "csv:" + os.path.join(
      os.environ.get(_DATA_DIR_ENV, ""), "bank-marketing", "bank-full.csv.gz"
    )
    c.data_options.schema = os.path.join(_SCHEMAS, "bank_marketing.json")
    c.train.num_steps = 2000
    c.train.batch_size = 256
    c.train.dp_sampling_rate = 0.01  # about 360 of the 36,169 training records per step
  elif arg == "breast_cancer":
    # scikit-learn's Wisconsin breast-cancer table (569 records, 30 numeric columns and the
    # label; bounds from the data set's published statistics, docs/data.md); 80/20 split.
    c.dataset = "breast_cancer"
    c.train.num_steps = 500
    c.train.batch_size = 64
    c.train.dp_sampling_rate = 0.15  # about 68 of the 455 training records per step
  elif arg in ("mnist_idx", "mnist"):
    # mnist_idx: the 10,000 IDX test images split 8,000 / 2,000 (seed 0); mnist: TFDS, 60,000.
    c.dataset = "mnist_idx" if arg == "mnist_idx" else "tfds:mnist"
    c.model.decoder = "conv"
    c.train.num_steps = 3000
  elif arg:
    raise ValueError(
      f"unknown config variant {arg!r}; use '', 'smoke', 'quick', 'bank', 'breast_cancer', 'mnist_idx' or 'mnist'"
    )
  return c
