"""torchvision/timm weights conversion: a PyTorch reference with torchvision's exact module names,
converted into our "torch" layout, must give the same stage outputs and logits; the readers refuse
pickled code; downloads are hash-checked; `import_weights` feeds `weights="imagenet"` offline.

Nothing here touches the network: `torchvision_weights._download` is replaced for every test.
"""
from __future__ import annotations

import pickle

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

from resnet_automl.backbones import build_backbone, get_spec  # noqa: E402
from resnet_automl.cli.weights import add_weights_parser, run_weights_command  # noqa: E402
from resnet_automl.errors import WeightsError  # noqa: E402
from resnet_automl.weights import imagenet_torchvision as torchvision_weights  # noqa: E402
from resnet_automl.weights.convert import convert_state_dict, read_state_dict, torch_prefix  # noqa: E402
from resnet_automl.weights.imagenet_torchvision import (  # noqa: E402
    TORCHVISION_URLS,
    check_hash_prefix,
    fetch_torchvision,
    import_weights,
)
from resnet_automl.weights.loading import load_backbone_weights  # noqa: E402

SIZE = 64
TOLERANCE = 1e-4
#: name -> (block, depths, groups, width_per_group, base channels), as torchvision's constructors.
ARCHS = {
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64, 64),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4, 64),
    "tiny_resnet": ("basic", (1, 1, 1, 1), 1, 64, 8),
}
MEASURED = {}


# ------------------------------------------------------------------------------------------
# A PyTorch reference with torchvision's module and parameter names (torchvision not needed)
# ------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class TorchResNet(nn.Module):
    """torchvision.models.ResNet (v1.5) with the same attribute names, so the same state-dict keys."""

    def __init__(self, block, depths, groups=1, width_per_group=64, base=64, num_classes=1000):
        super().__init__()
        self.groups, self.base_width, self.inplanes = groups, width_per_group, base
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, base, depths[0])
        self.layer2 = self._make_layer(block, base * 2, depths[1], 2)
        self.layer3 = self._make_layer(block, base * 4, depths[2], 2)
        self.layer4 = self._make_layer(block, base * 8, depths[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base * 8 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, groups=self.groups, base_width=self.base_width)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            stages.append(x)
        return stages, self.fc(torch.flatten(self.avgpool(x), 1))


def make_reference(name: str, seed: int = 0) -> TorchResNet:
    """A reference with random weights AND non-trivial BatchNorm statistics, in eval mode.

    The last BatchNorm of each block gets a small gamma so activations stay O(1) through the
    residual sum (the tolerance is absolute).
    """
    block, depths, groups, width, base = ARCHS[name]
    torch.manual_seed(seed)
    model = TorchResNet(BasicBlock if block == "basic" else Bottleneck, depths, groups, width, base)
    with torch.no_grad():
        for module_name, module in model.named_modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                last = module_name.endswith("bn2" if block == "basic" else "bn3")
                module.weight.uniform_(0.1, 0.4) if last else module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(1234)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.05)
                module.bias.normal_(0.0, 0.1)
    return model.eval()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every download fails as if offline."""
    def offline(url, dest):
        raise OSError(f"<urlopen error [Errno -3] Temporary failure in name resolution> (test: {url})")

    monkeypatch.setattr(torchvision_weights, "_download", offline)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Per architecture: the torch model, its state dict as .safetensors and .pth, and its outputs."""
    folder = tmp_path_factory.mktemp("torch_refs")
    images = np.random.default_rng(3).normal(0.0, 1.0, (2, SIZE, SIZE, 3)).astype("float32")  # NHWC
    refs = {}
    for name in ARCHS:
        model = make_reference(name)
        state = {key: value.contiguous() for key, value in model.state_dict().items()}
        save_file(state, str(folder / f"{name}.safetensors"))
        torch.save(state, folder / f"{name}.pth")
        with torch.no_grad():
            stages, logits = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))  # NCHW
        refs[name] = {"safetensors": folder / f"{name}.safetensors", "pth": folder / f"{name}.pth",
                      "stages": [s.numpy().transpose(0, 2, 3, 1) for s in stages], "logits": logits.numpy(),
                      "images": images}
    return refs


def stage_model(model: keras.Model, name: str) -> keras.Model:
    """Our model returning conv2..conv5 block outputs (torchvision layer1..4) and the pre-softmax logits."""
    depths = ARCHS[name][1]
    outputs = [model.get_layer(f"conv{stage + 2}_block{depth}_out").output for stage, depth in enumerate(depths)]
    head = model.get_layer("predictions")
    head.activation = keras.activations.linear  # compare logits, as torchvision's fc returns
    return keras.Model(model.input, [*outputs, head.output])


# ------------------------------------------------------------------------------------------
# Numerical equivalence
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet18", "resnext50_32x4d"])
def test_converted_model_matches_torch_reference(name, references):
    ref = references[name]
    from_safetensors, from_pth = read_state_dict(ref["safetensors"]), read_state_dict(ref["pth"])
    assert from_safetensors.keys() == from_pth.keys()
    assert all(np.array_equal(from_safetensors[k], from_pth[k]) for k in from_pth)
    model = build_backbone(name, (SIZE, SIZE, 3), layout="torch", include_top=True)
    convert_state_dict(from_safetensors, model, include_top=True)
    *stages, logits = stage_model(model, name)(ref["images"])
    diffs = [float(np.max(np.abs(ours.numpy() - theirs))) for ours, theirs in zip(stages, ref["stages"], strict=True)]
    diffs.append(float(np.max(np.abs(logits.numpy() - ref["logits"]))))
    MEASURED[name] = diffs
    print(f"\n{name} max abs diff conv2..conv5, logits: {diffs}; "
          f"logit scale {float(np.max(np.abs(ref['logits']))):.3g}")
    assert float(np.std(ref["logits"])) > 0.1 and all(float(np.std(s)) > 0.05 for s in ref["stages"])
    assert max(diffs) <= TOLERANCE


def test_native_grouped_mode_loads_the_same_kernels(references):
    ref = references["resnext50_32x4d"]
    model = build_backbone("resnext50_32x4d", (SIZE, SIZE, 3), layout="torch", grouped_mode="native")
    convert_state_dict(read_state_dict(ref["pth"]), model)  # headless: fc.* ignored
    assert np.max(np.abs(model(ref["images"]).numpy() - ref["stages"][-1])) <= TOLERANCE


# ------------------------------------------------------------------------------------------
# Mapping checks
# ------------------------------------------------------------------------------------------

def test_layer_names_map_to_torchvision_modules():
    assert torch_prefix("conv1_conv") == "conv1" and torch_prefix("conv1_bn") == "bn1"
    assert torch_prefix("conv2_block1_0_conv") == "layer1.0.downsample.0"
    assert torch_prefix("conv5_block3_0_bn") == "layer4.2.downsample.1"
    assert torch_prefix("conv4_block6_3_conv") == "layer3.5.conv3"
    assert torch_prefix("predictions") == "fc" and torch_prefix("avg_pool") is None


def test_wrapper_prefixes_and_checkpoint_dicts_are_accepted(references, tmp_path):
    state = make_reference("tiny_resnet").state_dict()
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    read = read_state_dict(path)
    assert "conv1.weight" in read and "layer1.0.bn1.running_var" in read
    model = build_backbone("tiny_resnet", (32, 32, 3), layout="torch")
    convert_state_dict(read, model)


def test_missing_extra_and_misshapen_tensors_are_named():
    state = {k: v.numpy() for k, v in make_reference("tiny_resnet").state_dict().items()}
    model = build_backbone("tiny_resnet", (32, 32, 3), layout="torch")
    with pytest.raises(WeightsError, match=r"no 'layer2.0.bn1.running_var' for layer 'conv3_block1_1_bn'"):
        convert_state_dict({k: v for k, v in state.items() if k != "layer2.0.bn1.running_var"}, model)
    with pytest.raises(WeightsError, match=r"no place for: layer5.0.conv1.weight"):
        convert_state_dict({**state, "layer5.0.conv1.weight": np.zeros((1, 1, 1, 1))}, model)
    bad = dict(state, **{"layer3.0.conv2.weight": np.zeros((32, 32, 1, 1), "float32")})
    with pytest.raises(WeightsError, match=r"Shape mismatch for layer 'conv4_block1_2_conv'.*\(1, 1, 32, 32\).*"
                                           r"\(3, 3, 32, 32\)"):
        convert_state_dict(bad, model)
    with pytest.raises(WeightsError, match="layout='torch'"):
        convert_state_dict(state, build_backbone("tiny_resnet", (32, 32, 3), layout="keras"))
    with pytest.raises(WeightsError, match="include_top=True"):
        convert_state_dict(state, build_backbone("tiny_resnet", (32, 32, 3), layout="torch", include_top=True))


# ------------------------------------------------------------------------------------------
# Safe reading and hash checks
# ------------------------------------------------------------------------------------------

SIDE_EFFECTS = []


def _record_side_effect():
    SIDE_EFFECTS.append("ran")
    return "pwned"


class Payload:
    """Unpickling this would run `_record_side_effect` (a stand-in for os.system)."""

    def __reduce__(self):
        return (_record_side_effect, ())


def test_pth_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Payload()}, path)
    with pytest.raises(WeightsError, match=r"evil.pth.*weights_only=True"):
        read_state_dict(path)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"x": Payload()}, protocol=2))
    with pytest.raises(WeightsError, match="raw.pt"):
        read_state_dict(raw)
    assert SIDE_EFFECTS == []


def test_unreadable_files_name_the_file_and_fix(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match=r"nope.safetensors' does not exist"):
        read_state_dict(tmp_path / "nope.safetensors")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"weights.npz.*\.safetensors, \.pth or \.pt"):
        read_state_dict(tmp_path / "weights.npz")
    (tmp_path / "r.pth").write_bytes(b"x")
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # as if torch were not installed
    with pytest.raises(WeightsError, match=r"r.pth.*pip install torch.*safetensors"):
        read_state_dict(tmp_path / "r.pth")


def test_sha256_prefix_check(tmp_path):
    good = tmp_path / "payload.bin"
    good.write_bytes(b"resnet weights")
    digest = __import__("hashlib").sha256(b"resnet weights").hexdigest()
    named = tmp_path / f"resnet18-{digest[:8]}.pth"
    good.rename(named)
    check_hash_prefix(named)  # passes
    wrong = tmp_path / "resnet18-f37072fd.pth"
    wrong.write_bytes(b"not the published file")
    with pytest.raises(WeightsError, match=r"resnet18-f37072fd.pth.*does not start with 'f37072fd'"):
        check_hash_prefix(wrong)


def test_fetch_rejects_a_download_with_the_wrong_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setattr(torchvision_weights, "_download", lambda url, dest: dest.write_bytes(b"tampered"))
    with pytest.raises(WeightsError) as info:
        fetch_torchvision("resnet18")
    message = str(info.value)
    for part in ("resnet18-f37072fd.pth", TORCHVISION_URLS["resnet18"], str(tmp_path / "kh" / "models"),
                 "does not start with 'f37072fd'", "weights=None"):
        assert part in message
    assert list((tmp_path / "kh" / "models").iterdir()) == []  # no partial or bad file left


def test_fetch_uses_a_verified_cached_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    content = b"pretend torchvision file"
    prefix = __import__("hashlib").sha256(content).hexdigest()[:8]
    monkeypatch.setitem(TORCHVISION_URLS, "resnet18", f"https://download.pytorch.org/models/resnet18-{prefix}.pth")
    cached = tmp_path / "kh" / "models" / f"resnet18-{prefix}.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content)
    assert fetch_torchvision("resnet18") == cached  # no download attempted (it would raise)


# ------------------------------------------------------------------------------------------
# import_weights -> weights="imagenet", and the offline message
# ------------------------------------------------------------------------------------------

def test_import_then_imagenet_roundtrip_via_cli(references, tmp_path, monkeypatch, capsys):
    import argparse

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    ref = references["resnet18"]
    parser = argparse.ArgumentParser(prog="resnet-automl")
    add_weights_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["weights", "import", "resnet18", str(ref["safetensors"])])
    assert run_weights_command(args) == 0
    written = tmp_path / "kh" / "models" / "resnet_automl_resnet18_imagenet.weights.h5"
    assert capsys.readouterr().out.strip() == str(written) and written.is_file()
    assert sorted(p.name for p in written.parent.iterdir()) == [written.name]  # atomic: no temporary left
    backbone = build_backbone("resnet18", (SIZE, SIZE, 3))  # another input size than the 224 px import
    assert str(written) in load_backbone_weights(backbone, get_spec("resnet18"), "imagenet")
    assert np.max(np.abs(backbone(ref["images"]).numpy() - ref["stages"][-1])) <= TOLERANCE


def test_import_rejects_a_file_of_another_architecture(references, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    with pytest.raises(WeightsError, match="conv1_conv"):
        import_weights("resnet18", references["tiny_resnet"]["safetensors"])
    assert not (tmp_path / "kh" / "models" / "resnet_automl_resnet18_imagenet.weights.h5").exists()


def test_offline_imagenet_message_points_at_import(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    with pytest.raises(WeightsError) as info:
        load_backbone_weights(build_backbone("resnet18", (32, 32, 3)), get_spec("resnet18"), "imagenet")
    message = str(info.value)
    for part in (TORCHVISION_URLS["resnet18"], str(tmp_path / "kh" / "models"),
                 "resnet-automl weights import resnet18 FILE", "weights=None", "Temporary failure"):
        assert part in message


def test_imagenet_for_tiny_resnet_says_there_are_none():
    with pytest.raises(WeightsError, match=r"no torchvision ImageNet weights for tiny_resnet.*weights=None"):
        load_backbone_weights(build_backbone("tiny_resnet", (32, 32, 3)), get_spec("tiny_resnet"), "imagenet")
