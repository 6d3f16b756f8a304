"""benchmarks/ablation.py without training: its seeds, run folders and summary table."""
import os

import pytest

from benchmarks import ablation


def result(variant, seed, seen_pair, minutes=10.0):
    values = dict.fromkeys(ablation.COLUMNS, 0.5)
    values.update(minutes=minutes, seen_pair=seen_pair)
    return {"variant": variant, "seed": seed, **values}


def test_seed_summary_gives_mean_sd_and_worst_per_variant():
    results = [result("base", 0, 0.74, minutes=9.0), result("base", 1, 0.25, minutes=11.0),
               result("base", 2, 0.40), result("bn", 0, 0.36), result("bn", 1, 0.54)]
    lines = ablation.seed_summary(results).splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in lines[2:]}
    column = ablation.COLUMNS.index("seen_pair")
    minutes = ablation.COLUMNS.index("minutes")
    # base: mean (0.74 + 0.25 + 0.40) / 3 = 0.463; sd sqrt(((0.277)^2 + (0.213)^2 + (0.063)^2) / 2)
    # = 0.251; worst 0.25. Minutes: mean 10.0, sd 1.0, worst (the longest) 11.0.
    assert rows["base (0,1,2) mean (sd)"][column] == "0.463 (0.251)"
    assert rows["base (0,1,2) worst"][column] == "0.250"
    assert rows["base (0,1,2) mean (sd)"][minutes] == "10.0 (1.0)"
    assert rows["base (0,1,2) worst"][minutes] == "11.0"
    # bn: mean 0.45, sd 0.127, worst 0.36.
    assert rows["bn (0,1) mean (sd)"][column] == "0.450 (0.127)"
    assert rows["bn (0,1) worst"][column] == "0.360"
    assert len(lines) == 2 + 4


def test_table_names_the_seed_only_when_the_seeds_differ():
    assert "| base |" in ablation.table([result("base", 3, 0.5)])
    assert "| base, seed 1 |" in ablation.table([result("base", 0, 0.5), result("base", 1, 0.5)])


@pytest.mark.parametrize("text", ["", "0,x", "1,1", ","])
def test_bad_seeds_are_one_clear_error(text):
    with pytest.raises(SystemExit, match="--seeds .*distinct integers"):
        ablation.parse_seeds(text)


def test_seeds_train_each_variant_once_per_seed_in_its_own_folder(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_ablate(args, name, overrides, seed, run_dir):
        calls.append((name, overrides, seed, run_dir))
        return result(name, seed, 0.1 * (seed + 1))

    monkeypatch.setattr(ablation, "ablate", fake_ablate)
    ablation.main(["--out", str(tmp_path), "--seeds", "0,2", "--variant", "base",
                   "--variant", "bn: model.text_batch_norm=true"])
    assert calls == [
        ("base", [], 0, os.path.join(str(tmp_path), "base", "seed-0")),
        ("base", [], 2, os.path.join(str(tmp_path), "base", "seed-2")),
        ("bn", ["model.text_batch_norm=true"], 0, os.path.join(str(tmp_path), "bn", "seed-0")),
        ("bn", ["model.text_batch_norm=true"], 2, os.path.join(str(tmp_path), "bn", "seed-2"))]
    out = capsys.readouterr().out
    assert "| base (0,2) mean (sd) |" in out and "| bn (0,2) worst |" in out

    calls.clear()
    ablation.main(["--out", str(tmp_path), "--variant", "base", "--seed", "3"])
    assert calls == [("base", [], 3, os.path.join(str(tmp_path), "base"))]
    assert "mean (sd)" not in capsys.readouterr().out
