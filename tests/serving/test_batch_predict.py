"""`resnet-automl predict ... --out FILE`: folders and lists of paths to a CSV or JSON Lines file,
streamed in batches, files that do not decode listed with the reason, memory flat."""
from __future__ import annotations

import csv
import json
import resource
from pathlib import Path

import pytest
from conftest import write_image

import resnet_automl
from resnet_automl.cli.main import main
from resnet_automl.serving.inference.batch_predict import iter_image_paths, predict_to_file


def _photo_folder(root: Path, count: int) -> Path:
    for i in range(count):
        write_image(root / f"part{i % 3}" / f"img_{i:05d}.png", ((i * 37) % 256, 90, 200), size=24, seed=i)
    return root


@pytest.fixture
def folder_with_bad_files(tmp_path):
    root = _photo_folder(tmp_path / "photos", 20)
    write_image(root / "good.jpg", (200, 30, 30))
    data = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "part1" / "notes.jpg").write_text("a text file renamed to .jpg")
    (root / "readme.md").write_text("not an image suffix: not listed")
    return root


def test_a_folder_to_csv_lists_the_files_that_do_not_decode(trained_run, folder_with_bad_files, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    argv = ["predict", trained_run.paths["run_dir"], str(folder_with_bad_files), "--out", str(out), "--top-k", "2",
            "--batch-size", "8"]
    assert main(argv) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 23  # 20 + good + truncated + notes; readme.md is not an image
    errors = {Path(row["path"]).name: row["error"] for row in rows if row["error"]}
    assert set(errors) == {"truncated.jpg", "notes.jpg"}
    assert all("not a decodable" in reason for reason in errors.values())
    good = [row for row in rows if not row["error"]]
    assert all(row["label"] in trained_run.class_names and len(row["top_labels"].split("|")) == 2 for row in good)
    assert all(abs(float(row["score"]) - float(row["top_scores"].split("|")[0])) < 1e-9 for row in good)
    assert "21 images predicted; 2 skipped" in capsys.readouterr().out


def test_a_list_of_paths_to_json_lines(trained_run, tmp_path):
    root = _photo_folder(tmp_path / "photos", 5)
    listing = tmp_path / "list.txt"
    listing.write_text("# new photos\nphotos/part0/img_00000.png\n\n" + str(root / "part1" / "img_00001.png") + "\n")
    out = tmp_path / "out.jsonl"
    summary = predict_to_file(resnet_automl.load_model(trained_run.paths["run_dir"]), [listing, root / "part2"], out,
                              top_k=3)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary.predicted == len(rows) == 3 and summary.skipped == 0
    assert [Path(row["path"]).name for row in rows] == ["img_00000.png", "img_00001.png", "img_00002.png"]
    assert all(len(row["labels"]) == 3 and sorted(row["scores"], reverse=True) == row["scores"] for row in rows)


def test_inputs_are_listed_in_a_stable_order(tmp_path):
    root = _photo_folder(tmp_path / "photos", 6)
    first = [p.relative_to(root).as_posix() for p in iter_image_paths([root])]
    assert first == sorted(first) and len(first) == 6


@pytest.mark.parametrize("make_argv,message", [
    (lambda run, tmp: ["predict", run, str(tmp), "--out", str(tmp / "no" / "such" / "p.csv")], "not writable"),
    (lambda run, tmp: ["predict", run, str(tmp), "--out", str(tmp / "p.xlsx")], "must end in .csv or .jsonl"),
    (lambda run, tmp: ["predict", run, str(tmp / "missing"), "--out", str(tmp / "p.csv")], "does not exist"),
])
def test_bad_arguments_exit_2_with_the_fix(trained_run, tmp_path, capsys, make_argv, message):
    assert main(make_argv(trained_run.paths["run_dir"], tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob(".tmp-*"))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.slow
def test_memory_stays_flat_from_1000_to_5000_images(trained_run, tmp_path):
    predictor = resnet_automl.load_model(trained_run.paths["run_dir"])
    root = _photo_folder(tmp_path / "photos", 5000)
    small = tmp_path / "small.txt"
    small.write_text("\n".join(str(p) for p in list(iter_image_paths([root]))[:1000]))
    predict_to_file(predictor, [small], tmp_path / "warm.csv")  # the first batches allocate what stays
    assert predict_to_file(predictor, [small], tmp_path / "1000.csv").predicted == 1000
    after_1000 = _peak_rss_mb()
    assert predict_to_file(predictor, [root], tmp_path / "5000.csv").predicted == 5000
    after_5000 = _peak_rss_mb()
    print(f"peak RSS after 1,000 images {after_1000:.0f} MB, after 5,000 {after_5000:.0f} MB")
    assert after_5000 - after_1000 < 50


def test_no_csv_cell_starts_with_a_formula_character_and_json_lines_keep_the_labels(tmp_path):
    import io

    from resnet_automl.runtime.files import FORMULA_PREFIXES, spreadsheet_safe
    from resnet_automl.serving.inference.batch_predict import _Writer

    hostile = ['=HYPERLINK("http://example.invalid","x")', "+1", "-2", "@SUM(A1)", "\tcat", "\rdog"]
    for kind in ("csv", "jsonl"):
        handle = io.StringIO()
        writer = _Writer(handle, kind)
        writer.write(Path("=cmd.png"), hostile, [0.5] * len(hostile))
        writer.write(Path("b.png"), None, None, "-could not decode")
        if kind == "csv":
            rows = list(csv.reader(io.StringIO(handle.getvalue())))
            assert all(not cell.startswith(FORMULA_PREFIXES) for row in rows for cell in row), rows
            assert rows[1][1] == "'" + hostile[0] and rows[1][0] == "'=cmd.png" and rows[2][-1] == "'-could not decode"
        else:
            assert json.loads(handle.getvalue().splitlines()[0])["labels"] == hostile  # JSONL: the raw values
    assert spreadsheet_safe("cat") == "cat" and spreadsheet_safe("") == ""
