"""oneDNN's kernels are turned on for x86-64 before TensorFlow starts, unless the user chose."""
import os
import subprocess
import sys

from tf_t2i.cpu_kernels import ONEDNN_VARIABLE, enable_onednn


def test_x86_64_without_a_choice_gets_onednn():
    environ = {}
    assert enable_onednn(environ, machine="x86_64") is True
    assert environ == {ONEDNN_VARIABLE: "1"}


def test_the_users_choice_wins():
    environ = {ONEDNN_VARIABLE: "0"}
    assert enable_onednn(environ, machine="x86_64") is False
    assert environ == {ONEDNN_VARIABLE: "0"}


def test_other_architectures_keep_tensorflows_default():
    environ = {}
    assert enable_onednn(environ, machine="aarch64") is False
    assert environ == {}


def test_the_command_line_tools_set_it_before_tensorflow_starts():
    environ = {k: v for k, v in os.environ.items() if k != ONEDNN_VARIABLE}
    code = ("import os, sys, platform; import tf_t2i.cli; "
            "print('tensorflow' in sys.modules, os.environ.get('TF_ENABLE_ONEDNN_OPTS'), "
            "platform.machine())")
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "False"
    assert out[1] == ("1" if out[2].lower() in ("x86_64", "amd64") else "None")
