"""tf-t2i: Generative Adversarial Text to Image Synthesis (Reed et al., ICML 2016) in TF2 / Keras 3."""

__version__ = "0.1.0"
