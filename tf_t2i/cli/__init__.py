"""Command-line tools: thin layers that parse flags, call the package and print clear errors."""
import os

from tf_t2i.cpu_kernels import enable_onednn

# TensorFlow's C++ start-up notices (oneDNN, CPU features) bury the tools' own output; users can
# still raise the level by setting the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Before TensorFlow starts: its oneDNN kernels on every x86-64 CPU (tf_t2i.cpu_kernels).
enable_onednn()
