"""lipdp's default settings: one place for the fields and defaults every entry point starts from.

`base_config()` is the configuration `lipdp.pipeline.run` reads, with the defaults of the main
job (scikit-learn's digits, per-record epsilon 1, conditional scope). The experiments' configs
(experiments/configs/default.py, with its variants) and the console script (`lipdp synthesize`,
lipdp/cli/config.py) both start from it and change only what differs, so a default is stated
once. Why each model default was chosen: docs/results.md (the knob study on digits).
"""

import ml_collections

placeholder = ml_collections.config_dict.placeholder


def base_config() -> ml_collections.ConfigDict:
  """A fresh configuration with every field at its default (see the comments for each)."""
  c = ml_collections.ConfigDict()

  # Data: a name understood by lipdp.data.load_dataset ('digits', 'breast_cancer',
  # 'mnist_idx', 'tfds:mnist', 'csv:PATH', 'npz:PATH'). radius: the declared l2 radius of the
  # image part (None: the dataset's declared default). Never derived from the private data.
  c.dataset = "digits"
  c.data_dir = placeholder(str)
  c.radius = placeholder(float)
  # Images with labels: the declared weight w of the label block (w * one-hot); the label then
  # weighs more in the encoder's input and the diameter is sqrt(2 R^2 + 2 w^2).
  c.label_weight = 1.0
  # The JSON schema of a 'csv:PATH' or 'npz:PATH' table (bounds and categories declared in
  # advance; docs/data.md), e.g. --config.schema=experiments/schemas/bank_marketing.json.
  c.schema = placeholder(str)
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
  # 'mst', 'aim', 'private_measure' or 'dp_merf' run that differentially private baseline of
  # lipdp.baselines instead (scope 'dp-measurements', central epsilon = `epsilon`; MST's and
  # AIM's numeric columns in the schema's declared bins, else `baseline_bins` equal-width bins
  # over the declared bounds; docs/baselines.md).
  c.baseline_bins = placeholder(int)
  # DP-MERF's settings (method 'dp_merf', lipdp/baselines/dp_merf.py). Unset (None) takes the
  # module's default, given here; only the feature map touches the private data, the rest is
  # post-processing of its one release (no privacy cost).
  c.dp_merf = ml_collections.ConfigDict()
  c.dp_merf.num_features = placeholder(int)  # 2m random Fourier features (default 10,000)
  # Kernel length scale l (default: the RMS distance of two uniform records of the declared
  # domain, never a statistic of the data).
  c.dp_merf.bandwidth = placeholder(float)
  c.dp_merf.num_steps = placeholder(int)  # generator steps (default 2,000)
  c.dp_merf.batch_size = placeholder(int)  # generated records per step (default 500)
  c.dp_merf.learning_rate = placeholder(float)  # Adam, decayed 0.9 per 120 steps (default 1e-3)
  c.dp_merf.code_dim = placeholder(int)  # the generator's code z (default 10)
  c.dp_merf.hidden = placeholder(tuple)  # its two hidden layers (default (256, 512))
  # 'sample' (default) draws each categorical value from the generator's softmax; 'argmax'.
  c.dp_merf.categorical = placeholder(str)
  # One end-to-end budget (scope 'dp-sgd'): the release gets release_share * total_epsilon as its
  # own epsilon and DP-SGD's noise multiplier is calibrated so the composition meets the total
  # (train.dp_noise_multiplier and epsilon are then ignored).
  c.total_epsilon = placeholder(float)
  c.release_share = 0.5
  # What the release's own epsilon is: 'per-record', or 'shuffled' (the central epsilon of the
  # shuffled release; scopes 'public' and 'dp-sgd' only, where the weights are covered).
  c.calibration = "per-record"
  # Scope of the model weights: 'conditional' (trained on the private records without DP, as in
  # the original method), 'dp-sgd' (trained with DP-SGD, composed by PLD accounting) or 'public'
  # (trained on `public_dataset`, a separately declared public data set in the same domain, e.g.
  # 'npz:/path/public.npz' with `public_options`; never on a split of the private data).
  c.scope = "conditional"
  c.public_dataset = placeholder(str)
  c.public_options = ml_collections.ConfigDict()
  # A work directory holds one release. Releasing again from the same private records composes
  # with the first release; replacing it is only sound if the first one was never published.
  c.replace_release = False
  # The release is a shuffled multiset without record identifiers: report the central epsilon
  # amplified by shuffling next to the per-record one.
  c.shuffled_release = True
  # Noise seed: None draws secret noise from OS entropy. Setting it makes the noise reproducible
  # and so not private against whoever knows it (recorded in the report).
  c.noise_seed = placeholder(int)

  c.model = ml_collections.ConfigDict()
  # Model settings chosen on digits, the public proxy (docs/results.md, the knob study): the
  # style latent is what matters (without it the decoder returns the posterior mean, a grey
  # average digit: TSTR 0.67 instead of 0.90 at per-record epsilon 1); half the default radius
  # cost 0.05 TSTR; latent size, label weight (1, 3, 5) and beta moved TSTR less than a seed's
  # spread.
  c.model.latent_dim = 32
  c.model.encoder_hidden = (256, 128)
  # 'bjorck', 'spectral' or 'aol'; 'plain' (an unconstrained MLP, not certifiable) only for
  # method 'prior', which never releases a latent.
  c.model.encoder_dense = "bjorck"
  c.model.activation = "maxmin"  # or 'groupsort', 'fullsort'
  # Encoder noise during training and, after recalibration on the certified L, at release.
  # The Lipschitz target is then the largest L that (epsilon, delta) allows at this sigma
  # (only sigma / (L * D) matters). Set lipschitz_target instead to fix L and calibrate sigma.
  c.model.sigma = 1.0
  c.model.lipschitz_target = placeholder(float)
  c.model.decoder = "mlp"  # or 'conv' for image domains, or 'lipschitz_mlp'
  c.model.decoder_lipschitz = 10.0  # target of the 'lipschitz_mlp' decoder only
  c.model.decoder_dense = "bjorck"  # layer type of the 'lipschitz_mlp' decoder only
  c.model.decoder_hidden = (256, 512)  # the 'conv' decoder uses the first as its width
  c.model.decoder_channels = 32  # feature maps of the 'conv' decoder
  c.model.image_likelihood = "bernoulli"
  # Numeric columns' likelihood in the decoder: B equal-width bins on the declared bounds (a
  # piecewise-constant density that can hold a spike and a tail), or 0 for a Gaussian of fixed
  # scale on [0, 1] (lipdp.models.likelihood).
  c.model.numeric_bins = 32
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
  # Weight of the label's cross-entropy in the ELBO (data sets with a label only). Under DP-SGD a
  # label term of weight 1 next to hundreds of pixel terms is drowned by the noise, and the
  # decoded label stops agreeing with the decoded image. None: image pixels / 16, at least 1
  # (4 on digits, 49 on MNIST, 1 for tables; chosen on digits, lipdp.pipeline.
  # default_label_loss_weight). A training choice: no privacy cost.
  c.train.label_loss_weight = placeholder(float)
  # Exponential moving average of the weights, with this decay (0 = off): the released model is
  # the average of the iterates, which averages out much of DP-SGD's noise (post-processing;
  # De et al. 2022).
  c.train.average_decay = 0.0
  c.train.seed = placeholder(int)
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  # DP-SGD (scope 'dp-sgd' only).
  c.train.dp_noise_multiplier = 1.0
  c.train.dp_clip_norm = 1.0
  c.train.dp_sampling_rate = 0.01
  # How per-example gradients are clipped: 'ghost' (per-example norms from each layer's inputs
  # and output gradients, no per-example gradients: several times faster, large batches cheap;
  # refuses a model with layers it does not recognise) or 'vmap' (per-example gradients).
  # The same result to float rounding; docs/performance.md.
  c.train.dp_clipping = "ghost"

  # How a released latent becomes a record (post-processing): 'sample' draws it from the
  # decoder's likelihood (a category from its softmax, a number from its bins), 'mean' takes
  # the likelihood's mean, whose projection keeps each category's mode and shrinks numbers
  # towards their centre; 'auto' samples tables and takes the mean of images (pixel
  # intensities and the most probable label, which then agrees with the pixels).
  c.decoding = "auto"

  c.num_figure_samples = 32

  # Utility, fidelity and empirical privacy on the private holdout (lipdp.evaluation), written to
  # workdir/evaluation.json. Not differentially private: never publish it with the release.
  c.evaluation = ml_collections.ConfigDict()
  c.evaluation.enabled = True
  c.evaluation.fast = False  # True skips the MLP and CNN downstream models
  c.evaluation.seed = 0
  # Method 'lipdp' only: also evaluate records decoded from prior latents by the same weights
  # (under "prior_sampling/" in evaluation.json): what the per-record release adds.
  c.evaluation.compare_prior = False
  return c
