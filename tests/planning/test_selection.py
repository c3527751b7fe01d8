"""Budget validation and backbone selection under constraints."""
from __future__ import annotations

import time

import pytest

from resnet_automl.config.budget import PRESETS, Budget
from resnet_automl.errors import ConfigError
from resnet_automl.planning.probe import ProbeCache
from resnet_automl.planning.selection import EXPORT_CHILD_PROCESS_S, Plan, export_and_report_seconds, select_backbones

PLAN = Plan(trials=2, epochs=1, final_epochs=1, train_images=20, val_images=6, trainable_stages=5, batch_size=8)


def test_an_export_through_a_tensorflow_child_process_is_reserved_for():
    """Trained on JAX, the SavedModel is written by a TensorFlow child process: 25.6 s against 15 s
    (resnet20_lean), and a fit that reserved the TensorFlow time ended 8-17 s over its budget."""
    on_tensorflow = export_and_report_seconds("resnet20_lean", "tensorflow")
    assert export_and_report_seconds("resnet20_lean") == on_tensorflow
    assert export_and_report_seconds("resnet20_lean", "jax") == on_tensorflow + EXPORT_CHILD_PROCESS_S


@pytest.mark.parametrize("field,value,kind", [
    ("minutes", -3, "a positive number"), ("minutes", 0, "a positive number"),
    ("max_trials", 2.5, "a positive integer"), ("max_params", True, "a positive integer"),
    ("max_latency_ms", float("nan"), "a positive number"),
])
def test_budget_messages(field, value, kind):
    with pytest.raises(ConfigError, match=rf"The '{field}' parameter of Budget must be {kind} or None\. "
                                          rf"Got {value!r} instead\."):
        Budget(**{field: value})


def test_presets_are_valid_budgets():
    for name in PRESETS:
        assert isinstance(Budget.preset(name), Budget)
    with pytest.raises(ConfigError, match="Unknown budget preset 'fast'"):
        Budget.preset("fast")


def test_parameter_cap_picks_a_smaller_network():
    loose = select_backbones("auto", Budget(max_params=100_000_000), image_size=32, weights=None,
                             plan=PLAN).chosen
    tight = select_backbones(["resnet50", "resnet18"], Budget(max_params=15_000_000), image_size=32,
                             weights=None, plan=PLAN)
    assert tight.chosen == ["resnet18"]
    excluded = next(r for r in tight.table if r["name"] == "resnet50")
    assert excluded["verdict"] == "excluded" and "> max_params 15,000,000" in excluded["reason"]
    big = select_backbones("auto", Budget(max_params=100_000_000), image_size=32, weights=None,
                           plan=Plan(**{**PLAN.__dict__, "train_images": 50_000})).chosen
    assert big == ["resnext101_32x8d"] and loose == ["resnet20"]  # prior wins with data, size without
    at_128 = select_backbones("auto", Budget(max_params=100_000_000), image_size=128, weights=None, plan=PLAN)
    cifar = next(r for r in at_128.table if r["name"] == "resnet20")
    assert at_128.chosen == ["resnet18"] and cifar["verdict"] == "excluded" and "up to 64 px" in cifar["reason"]


def test_latency_cap_picks_a_smaller_network(tmp_path):
    cache = ProbeCache(tmp_path / "probe.json")
    loose = select_backbones(["resnet50", "resnet18"], Budget(max_latency_ms=10_000), image_size=64,
                             weights=None, plan=Plan(**{**PLAN.__dict__, "train_images": 50_000}), probe_cache=cache)
    r18, r50 = (next(r["latency_ms"] for r in loose.table if r["name"] == n) for n in ("resnet18", "resnet50"))
    print(f"batch-1 latency at 64 px: resnet18 {r18} ms, resnet50 {r50} ms")
    assert loose.chosen == ["resnet50", "resnet18"] and r18 < r50  # a list keeps all that fit, best first
    tight = select_backbones(["resnet50", "resnet18"], Budget(max_latency_ms=(r18 + r50) / 2), image_size=64,
                             weights=None, plan=Plan(**{**PLAN.__dict__, "train_images": 50_000}), probe_cache=cache)
    assert tight.chosen == ["resnet18"] and cache.hits == 2  # latencies were measured once


def test_impossible_cap_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"No backbone satisfies the budget \(resnet18: 11,689,512 parameters > "
                                          r"max_params 1,000.*Loosen max_params"):
        select_backbones("resnet18", Budget(max_params=1000), image_size=32, weights=None, plan=PLAN)


def test_imagenet_auto_ranks_by_published_top1():
    selection = select_backbones("auto", Budget(max_params=50_000_000), image_size=32, weights="imagenet", plan=PLAN)
    assert selection.chosen == ["resnext50_32x4d"]  # 77.6 % top-1, the best under 50 M parameters
    assert next(r for r in selection.table if r["name"] == "resnext101_32x8d")["verdict"] == "excluded"


def test_probe_is_cached_and_reused_on_resume(tmp_path):
    path = tmp_path / "probe.json"
    first = ProbeCache(path)
    start = time.time()
    one = select_backbones("tiny_resnet", Budget(minutes=5), image_size=32, weights=None, plan=PLAN, probe_cache=first)
    probe_seconds = time.time() - start
    again = ProbeCache(path)  # a resumed run reads the file
    start = time.time()
    two = select_backbones("tiny_resnet", Budget(minutes=5), image_size=32, weights=None, plan=PLAN, probe_cache=again)
    assert again.hits == 1 and time.time() - start < probe_seconds
    assert one.table[0]["probe_images_per_s"] == two.table[0]["probe_images_per_s"] > 0
    assert one.chosen == ["tiny_resnet"] and one.table[0]["estimated_minutes"] > 0


@pytest.mark.slow
def test_nothing_fits_the_time_so_the_cheapest_is_chosen():
    plan = Plan(**{**PLAN.__dict__, "trials": 10_000, "train_images": 100_000})
    selection = select_backbones(["resnet18", "tiny_resnet"], Budget(minutes=0.01), image_size=32, weights=None,
                                 plan=plan)
    assert selection.chosen == ["tiny_resnet"]
    assert "no candidate fits" in next(r for r in selection.table if r["name"] == "tiny_resnet")["reason"]


def test_over_budget_probes_stop_at_the_first_candidate_that_cannot_be_beaten(monkeypatch):
    from resnet_automl.planning import selection

    probed = []

    def slow_probe(name, **kwargs):
        probed.append(name)
        return {"images_per_s": 1.0, "first_step_s": 60.0}

    monkeypatch.setattr(selection, "probe_training", slow_probe)
    result = select_backbones("auto", Budget(minutes=1), image_size=128, weights=None, plan=PLAN)
    assert probed == ["resnet18"]  # every other candidate has more parameters and GFLOPs: not probed
    assert result.chosen == ["resnet18"]
    assert next(r for r in result.table if r["name"] == "resnet18")["verdict"] == "chosen (over budget)"
    skipped = [r for r in result.table if r["name"] != "resnet18" and r["verdict"] != "excluded"]
    assert skipped and all(r["verdict"] == "over budget" and "not probed: at least as costly as resnet18"
                           in r["reason"] for r in skipped)


def test_a_slow_machine_trades_resnet20_for_its_lean_variant(monkeypatch):
    """From scratch on small images, ResNet-20 is preferred while the budget holds its planned final
    training; on a machine too slow for that, the lean variant (a quarter of the FLOPs) is probed and chosen."""
    from resnet_automl.planning import selection

    probed = []

    def probe_by_flops(name, **kwargs):  # images/s inversely proportional to GFLOPs, like a compute-bound CPU
        probed.append(name)
        return {"images_per_s": speed / selection.get_spec(name).gflops_224, "first_step_s": 5.0}

    monkeypatch.setattr(selection, "probe_training", probe_by_flops)
    plan = Plan(trials=3, epochs=6, final_epochs=75, train_images=700, val_images=150, trainable_stages=5,
                batch_size=32, final_uses_val=True, augment=True)
    speed = 4.0 * 300  # ResNet-20 at 300 images/s: 3 trials and 76 final epochs take ~5 minutes
    fast = select_backbones("auto", Budget(minutes=6), image_size=32, weights=None, plan=plan)
    assert fast.chosen == ["resnet20"] and probed == ["resnet20"]
    probed.clear()
    speed = 4.0 * 100  # three times slower: ResNet-20 would need ~15 minutes, its lean variant ~4
    slow = select_backbones("auto", Budget(minutes=6), image_size=32, weights=None, plan=plan)
    assert slow.chosen == ["resnet20_lean"] and probed == ["resnet20", "resnet20_lean"]
    rows = {r["name"]: r for r in slow.table}
    assert rows["resnet20"]["verdict"] == "over budget" and rows["resnet20_lean"]["verdict"] == "chosen"
    assert rows["resnet32"]["verdict"] == "not probed"  # after the choice, nothing else is probed


def test_on_small_data_a_backbone_that_trains_too_few_final_epochs_yields_to_the_next(monkeypatch):
    """From random initialisation on small data the plan prefers 160 final epochs: a ResNet-20 that
    fits the budget with fewer is kept as the fallback while its lean variant is probed; the lean net
    is chosen when it gets them, the fallback when no candidate does, ResNet-20 at once when it does."""
    from resnet_automl.planning import selection

    probed = []

    def probe_by_flops(name, **kwargs):
        probed.append(name)
        return {"images_per_s": speed / selection.get_spec(name).gflops_224, "first_step_s": 5.0}

    monkeypatch.setattr(selection, "probe_training", probe_by_flops)
    plan = Plan(trials=3, epochs=6, final_epochs=75, train_images=700, val_images=150, trainable_stages=5,
                batch_size=32, final_uses_val=True, augment=True, preferred_final_epochs=160)
    speed = 4.0 * 300  # ResNet-20 fits 6 minutes with ~94 final epochs, the lean net with ~410
    mid = select_backbones("auto", Budget(minutes=6), image_size=32, weights=None, plan=plan)
    rows = {r["name"]: r for r in mid.table}
    assert mid.chosen == ["resnet20_lean"] and probed == ["resnet20", "resnet20_lean"]
    assert rows["resnet20"]["verdict"] == "fits" and "only about 94 final epochs" in rows["resnet20"]["reason"]
    assert rows["resnet20_lean"]["estimated_final_epochs"] == 410
    probed.clear()
    speed = 4.0 * 600  # ResNet-20 gets ~205 final epochs: chosen without probing further
    fast = select_backbones("auto", Budget(minutes=6), image_size=32, weights=None, plan=plan)
    assert fast.chosen == ["resnet20"] and probed == ["resnet20"]
    probed.clear()
    speed = 4.0 * 100  # ResNet-20 over budget, the lean net fits with ~125: the fallback, chosen
    slow = select_backbones("auto", Budget(minutes=6), image_size=32, weights=None, plan=plan)
    rows = {r["name"]: r for r in slow.table}
    assert slow.chosen == ["resnet20_lean"] and probed == ["resnet20", "resnet20_lean"]
    assert rows["resnet20_lean"]["verdict"] == "chosen" and "no candidate gets 160" in rows["resnet20_lean"]["reason"]
    assert rows["resnet32"]["verdict"] == "over budget"  # at least as costly as ResNet-20: not probed
    # without the preference (large data, pretrained weights) ResNet-20 with 94 epochs is chosen as before
    probed.clear()
    speed = 4.0 * 300
    plain = select_backbones("auto", Budget(minutes=6), image_size=32, weights=None,
                             plan=Plan(**{**plan.__dict__, "preferred_final_epochs": None}))
    assert plain.chosen == ["resnet20"] and probed == ["resnet20"]


def test_final_epochs_within_a_budget_are_what_is_left_after_search_export_and_report():
    plan = Plan(trials=3, epochs=6, final_epochs=75, train_images=700, val_images=150, trainable_stages=5,
                batch_size=32, final_uses_val=True)
    epochs = plan.final_epochs_within(360.0, 5.0, 100.0, "resnet20")
    fits = Plan(**{**plan.__dict__, "final_epochs": epochs})
    more = Plan(**{**plan.__dict__, "final_epochs": epochs + 1})
    assert fits.seconds(5.0, 100.0, "resnet20") <= 360.0 < more.seconds(5.0, 100.0, "resnet20")
    assert plan.final_epochs_within(1.0, 5.0, 100.0, "resnet20") == 0


def test_a_trial_is_a_graph_build_and_its_epochs():
    plan = Plan(trials=3, epochs=6, final_epochs=75, train_images=700, val_images=150, trainable_stages=5,
                batch_size=32, final_uses_val=True)
    trial = plan.trial_seconds(5.0, 100.0)
    assert trial == pytest.approx(5.0 + 6 * (7.0 + 0.5))  # 700 images at 100/s, 150 validated at 300/s
    total = plan.seconds(5.0, 100.0, "resnet20")
    assert total == pytest.approx(3 * trial + plan.final_seconds(5.0, 100.0) + 20.0 + 0.5 * 0.272474)
