"""Reed's 64x64 GAN-INT-CLS in PyTorch, the reference `benchmarks/reference_pytorch_step.py` times.

Importing any module here needs torch, which tf_t2i does not depend on.
"""
