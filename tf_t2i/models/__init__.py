"""The networks of GAN-INT-CLS: text, image and style encoders, generator and discriminator.

Each model lives in the file named after it and takes plain keyword arguments; `builders.py` turns a
`ModelConfig` into built models.
"""
