"""benchmarks/text_binding.py on the shared tiny run: what it reports, and its ranges."""
import json
import re
import shutil

import pytest

from benchmarks.text_binding import main, report
from tf_t2i.errors import UserInputError


def test_report_scores_both_splits_the_probes_and_d(cli_tiny_run, capsys):
    main([cli_tiny_run, "--captions", "200"])
    lines = capsys.readouterr().out.splitlines()
    seen, unseen = (next(line for line in lines if line.startswith(prefix))
                    for prefix in ("seen (train)", "unseen (test)"))
    assert " both " in seen and " both " not in unseen  # an unseen pair is never a train pair
    for line in (seen, unseen):
        numbers = [float(v) for v in re.findall(r"(?:petal|centre|both|swapped) ([0-9.]+)", line)]
        assert numbers and all(0.0 <= v <= 1.0 for v in numbers)
        assert int(re.search(r"n=(\d+)", line).group(1)) > 0
    colours = next(line for line in lines if line.startswith("colour probe"))
    accuracies = [float(v) for v in re.findall(r"(?:petal|centre) ([0-9.]+)", colours)]
    assert len(accuracies) == 2 and all(0.0 <= v <= 1.0 for v in accuracies)
    assert int(re.search(r"n=(\d+)", colours).group(1)) > 0
    probe = next(line for line in lines if line.startswith("background, text probe"))
    assert 0.0 <= float(probe.split()[3]) <= 1.0
    check = next(line for line in lines if line.startswith("background, D checks it"))
    scores = [float(v) for v in re.findall(r"(?:caption|background) ([0-9.]+)", check)]
    assert len(scores) == 3 and all(0.0 < v < 1.0 for v in scores)


def test_a_run_on_another_dataset_is_one_clear_error(cli_tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(cli_tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    config["data"]["format"], config["data"]["path"] = "jsonl", str(tmp_path)
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserInputError, match="needs a run on the built-in synthetic dataset"):
        report(str(run))
