"""Every file read back from a run folder (or a model folder) is validated: a damaged one stops with
`RunStateError` (exit 2) naming the file, what is wrong and what to do; never a traceback."""
from __future__ import annotations

import json

import pytest
from conftest import make_class_folders

from resnet_automl.errors import RunStateError

#: (content, the problem the message names): truncated, empty, and the wrong JSON type.
DAMAGE = [('{"data": "photos", "stages_d', "it is not valid JSON"), ("", "it is empty"),
          ("[1, 2, 3]", "it holds a JSON list")]


@pytest.mark.parametrize("content,problem", DAMAGE)
def test_a_damaged_run_record(tmp_path, content, problem):
    from resnet_automl.runtime.run_record import RunRecord

    (tmp_path / "run.json").write_text(content)
    path = tmp_path / "run.json"
    with pytest.raises(RunStateError, match=rf"run record '{path}' is damaged: {problem}.*--overwrite"):
        RunRecord.open(tmp_path)


def test_a_run_record_key_of_the_wrong_type_is_named(tmp_path):
    from resnet_automl.runtime.run_record import RunRecord

    (tmp_path / "run.json").write_text(json.dumps({"stages_done": "search", "image_size": 64}))
    with pytest.raises(RunStateError, match=r"its key 'stages_done' holds \"search\" where list belongs"):
        RunRecord.open(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"image_size": True}))
    with pytest.raises(RunStateError, match="'image_size' holds true where int belongs"):
        RunRecord.open(tmp_path)


def test_a_run_record_round_trips_and_keeps_unknown_keys(tmp_path):
    from resnet_automl.runtime.run_record import RunRecord

    (tmp_path / "run.json").write_text(json.dumps({"image_size": 64, "from_a_newer_version": [1]}))
    record = RunRecord.open(tmp_path)
    record.mark_done("search", trials=[{"trial_id": "0"}])
    again = RunRecord.open(tmp_path)
    assert again.image_size == 64 and again.stages_done == ["search"] and again.trials == [{"trial_id": "0"}]
    assert json.loads((tmp_path / "run.json").read_text())["from_a_newer_version"] == [1]
    with pytest.raises(TypeError, match="no key"):
        record.update(imagesize=3)  # a typo in the package fails loudly


@pytest.mark.parametrize("content,problem", [*DAMAGE, ('{"cpu|resnet18": 3}', "an entry is not an object")])
def test_a_damaged_probe_cache(tmp_path, content, problem):
    from resnet_automl.planning.probe import ProbeCache

    (tmp_path / "probe.json").write_text(content)
    path = tmp_path / "probe.json"
    with pytest.raises(RunStateError, match=rf"probe cache '{path}' is damaged: {problem}.*Delete it"):
        ProbeCache(path)


@pytest.mark.parametrize("content,problem", [*DAMAGE, ('{"cat": "high"}', "each label needs a number")])
def test_damaged_decision_thresholds(tmp_path, content, problem):
    from resnet_automl.serving.savedmodel.layout import read_thresholds

    (tmp_path / "thresholds.json").write_text(content)
    path = tmp_path / "thresholds.json"
    with pytest.raises(RunStateError, match=rf"thresholds '{path}' (is|are) damaged: {problem}"):
        read_thresholds(tmp_path, "thresholds.json")
    assert read_thresholds(tmp_path, "absent.json") is None  # a single-label model has none


@pytest.mark.parametrize("text,problem", [('{"backbone": "resn', "not valid JSON"), ("[]", "a JSON list")])
def test_a_damaged_weights_description(tmp_path, text, problem):
    import h5py

    from resnet_automl.weights.io import METADATA_ATTRIBUTE, read_metadata

    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs[METADATA_ATTRIBUTE] = text
    with pytest.raises(RunStateError, match=rf"weights file '{path}' is damaged: {problem}"):
        read_metadata(path)


@pytest.mark.parametrize("content,problem", DAMAGE)
def test_a_damaged_keras_tuner_file(tmp_path, content, problem):
    from resnet_automl.search.tuner import check_project

    project = tmp_path / "tuner"
    (project / "trial_0").mkdir(parents=True)
    (project / "oracle.json").write_text("{}")
    (project / "trial_0" / "trial.json").write_text(content)
    with pytest.raises(RunStateError, match=rf"Keras Tuner file '{project / 'trial_0' / 'trial.json'}' is damaged: "
                                            rf"{problem}.*--overwrite"):
        check_project(project)


def test_fit_on_a_truncated_run_record_exits_2_naming_the_file(tmp_path, capsys):
    from resnet_automl.cli.main import main

    data = make_class_folders(tmp_path / "data", per_class=4)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"data": "x", "stages_do')
    code = main(["fit", str(data), "--out", str(run), "--weights", "none"])
    err = capsys.readouterr().err
    assert code == 2 and str(run / "run.json") in err and "damaged" in err and "Traceback" not in err
