"""MobileNetV3 (large and small), a family beyond ResNet that a robot team deploys: every declared
position builds and starts as the plain network, `pre` and `post` where a block has no residual
add, ImageNet checkpoints load, last stride 1, the supernet's paths, and a search end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from optuna.trial import TrialState

from attnas.evaluators.supernet_evaluator import sample_path
from attnas.models import BLOCKS, attention_modules, backbone_family, build_model, layout
from attnas.models.supernet import Supernet
from attnas.space import ArchSpec, SearchSpace
from tests.test_supernet import trained_looking as perturbed  # weights off identity: placements then differ

MODELS = ("mobilenet_v3_large", "mobilenet_v3_small")
X = torch.randn(2, 3, 64, 32)


@pytest.mark.parametrize("backbone", MODELS)
def test_a_block_at_every_position_builds_and_starts_as_the_plain_network(backbone):
    blocks = list(BLOCKS)
    spec = ArchSpec(backbone, {p: blocks[i % len(blocks)] for i, p in enumerate(layout(backbone).positions)})
    torch.manual_seed(0)
    plain = build_model(backbone, 5).eval()
    torch.manual_seed(0)
    attentive = build_model(spec, 5).eval()
    assert set(attention_modules(attentive)) == set(layout(backbone).positions)
    torch.testing.assert_close(attentive(X), plain(X))  # identity at insertion, at every position at once
    logits, feature = attentive.train()(X)
    assert logits.shape == (2, 5) and feature.shape == (2, layout(backbone).out_channels)


def test_pre_and_post_differ_only_where_the_block_adds_its_input():
    where = layout("mobilenet_v3_large")
    assert [p.name for p in where.declared if not p.residual] == ["features.2", "features.4", "features.7", "features.11",
                                                                  "features.13"]  # stride 2 or a new width
    assert str(ArchSpec.parse("mobilenet_v3_large:features.4=se@pre")) == "mobilenet_v3_large:features.4=se"
    assert str(ArchSpec.parse("mobilenet_v3_large:features.5=se@pre")) == "mobilenet_v3_large:features.5=se@pre"
    pre = perturbed(build_model("mobilenet_v3_large:features.5=se@pre", 2)).eval()
    post = build_model("mobilenet_v3_large:features.5=se", 2).eval()
    post.load_state_dict(pre.state_dict())
    assert not torch.allclose(pre(X), post(X))


def test_a_space_holds_each_function_once():
    space = SearchSpace("mobilenet_v3_large", "all", ["se"], ["post", "pre"], max_blocks=1)
    specs = list(space.enumerate())
    assert len(specs) == len(set(specs)) == space.cardinality() == 1 + 10 * 2 + 5 * 1
    pre_only = SearchSpace("mobilenet_v3_large", ["stride8"], ["se"], ["pre"], max_blocks=1)
    assert [str(s) for s in pre_only.enumerate()] == ["mobilenet_v3_large", "mobilenet_v3_large:features.4=se",
                                                      "mobilenet_v3_large:features.5=se@pre", "mobilenet_v3_large:features.6=se@pre"]
    for spec in pre_only.enumerate():
        assert spec in pre_only and pre_only.params_for(spec)


@pytest.mark.parametrize("backbone", MODELS)
def test_torchvision_imagenet_checkpoints_load_from_the_cache(backbone, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    torch.manual_seed(2)
    reference = torchvision.models.get_model(backbone, weights=None)
    cache = backbone_family(backbone).cached_weights_path(backbone)
    cache.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cache)  # the file torchvision's weights API downloads, classifier included
    last = layout(backbone).positions[-1]
    model = build_model(f"{backbone}:features.2=cnl,{last}=se", num_classes=3, pretrained="imagenet")
    torch.testing.assert_close(model.backbone.features[2].block[0][0].weight, reference.features[2].block[0][0].weight)
    torch.testing.assert_close(model.backbone.features[-1][0].weight, reference.features[-1][0].weight)
    plain_keys = {k for k in reference.state_dict() if not k.startswith("classifier.")}
    attentive_keys = {k.removeprefix("backbone.") for k in model.state_dict() if k.startswith("backbone.")}
    assert plain_keys <= attentive_keys and all(".attention." in k for k in attentive_keys - plain_keys)


@pytest.mark.parametrize("backbone, channels", [("mobilenet_v3_large", 960), ("mobilenet_v3_small", 576)])
def test_last_stride_one_halves_the_output_stride_and_the_head_replaces_the_classifier(backbone, channels):
    x = torch.randn(1, 3, 256, 128)
    assert build_model(backbone, 2).eval().features(x).shape == (1, channels, 16, 8)
    assert build_model(backbone, 2, last_stride=2).eval().features(x).shape == (1, channels, 8, 4)
    assert isinstance(build_model(backbone, 2).backbone.classifier, torch.nn.Identity)


def test_every_supernet_path_is_exactly_the_network_build_model_builds():
    space = SearchSpace("mobilenet_v3_small", ["stride8", "stride32"], ["se", "cnl"], ["post", "pre"], max_blocks=2)
    net = perturbed(Supernet("mobilenet_v3_small", list(space.allowed_positions), [str(c) for c in space.choices], 4)).eval()
    rng = np.random.default_rng(0)
    outputs = set()
    for _ in range(6):
        spec = sample_path(space, rng)
        net.set_path(spec)
        expected = net(X)
        torch.testing.assert_close(net.extract(spec).eval()(X), expected)
        outputs.add(round(float(expected.detach().sum()), 4))
    net.set_path("mobilenet_v3_small:features.2=se@pre")  # no add there: held as its post path
    torch.testing.assert_close(net.extract("mobilenet_v3_small:features.2=se").eval()(X), net(X))
    assert len(outputs) > 1


@pytest.mark.slow
def test_attnas_search_searches_mobilenet_v3_large_end_to_end(tmp_path, monkeypatch):
    from tests.test_contracts import attnas_search

    study = attnas_search(tmp_path, monkeypatch, "space=mobilenet_v3_large", "evaluator=tiny", "n_trials=4")
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 4 and [t.user_attrs["spec"] for t in trials[:2]] == ["mobilenet_v3_large",
                                                                             "mobilenet_v3_large:features.15=cnl"]
    assert all(ArchSpec.parse(t.user_attrs["spec"]).backbone == "mobilenet_v3_large" for t in trials)
    assert all(np.isfinite(t.values).all() for t in trials)
