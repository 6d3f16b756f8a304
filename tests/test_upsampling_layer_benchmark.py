"""benchmarks/upsampling_layer.py runs end to end on a small shape; its two layers agree."""
import pytest

from benchmarks.upsampling_layer import build_parser, run


def test_reports_both_layers_on_one_function():
    result = run(build_parser().parse_args(
        ["--shape", "2", "4", "4", "5", "--filters", "3", "--calls", "2", "--repeats", "2"]))
    assert result["max_abs_difference"] < 1e-5
    assert len(result["upsampling_then_conv_ms"]) == 2
    assert len(result["nearest_upsampling_conv2d_ms"]) == 2
    assert result["speedup"] > 0
    # Forward 2 * 2 rows * 8 * 8 pixels * 9 taps * 5 in * 3 out; backward twice that.
    assert result["gflops_forward_backward"] == pytest.approx(2 * 2 * 64 * 9 * 5 * 3 * 3 / 1e9,
                                                              rel=1e-3)
    assert {"cpu", "cpu_flags", "load_average", "date"} <= set(result)
