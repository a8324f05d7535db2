"""lipdp: differentially private synthetic data from Lipschitz-constrained VAEs.

The encoder's own Gaussian noise is the privacy mechanism: with a certified Lipschitz bound L
on the encoder mean and records in a bounded domain of l2 diameter D, each released latent is a
Gaussian mechanism of l2 sensitivity L * D; the decoder is post-processing. README.md
states the method, what the guarantee covers, and the privacy rules the code keeps.
"""

__version__ = "0.1.0"
