"""Datasets, caption encoding and the tf.data input pipeline."""
