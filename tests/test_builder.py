import pytest
import torch
import torchvision

from attnas.models import BACKBONES, attention_modules, build_model
from attnas.models.weights import IMAGENET_WEIGHTS
from attnas.space import BACKBONE_STAGES, ArchSpec, SearchSpace, positions, stage_channels

X = torch.randn(2, 3, 64, 32)  # tiny input keeps the suite fast


@pytest.mark.parametrize("backbone", list(BACKBONE_STAGES))
def test_position_table_matches_torchvision(backbone):
    resnet = BACKBONES[backbone](weights=None)
    assert tuple(len(getattr(resnet, f"layer{i}")) for i in range(1, 5)) == BACKBONE_STAGES[backbone]
    assert resnet.layer4[-1].conv1.in_channels == stage_channels(backbone)[-1]
    assert len(positions(backbone)) == sum(BACKBONE_STAGES[backbone])


def test_model_returns_logits_and_features_in_training_and_embedding_in_eval():
    model = build_model("resnet18:layer3.1=cnl", num_classes=7)
    logits, feature = model.train()(X)
    assert logits.shape == (2, 7) and feature.shape == (2, 512)
    assert model.eval()(X).shape == (2, 512) and model.embedding_dim == 512


def test_last_stride_one_keeps_layer4_resolution():
    model = build_model("resnet50", num_classes=3).eval()
    assert model.features(torch.randn(1, 3, 256, 128)).shape == (1, 2048, 16, 8)
    model = build_model("resnet50", num_classes=3, last_stride=2).eval()
    assert model.features(torch.randn(1, 3, 256, 128)).shape == (1, 2048, 8, 4)


def test_every_sampled_spec_builds_runs_and_has_exactly_its_blocks():
    import optuna

    space = SearchSpace("resnet18", "all", placements=("post", "pre"), max_blocks=4)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(12):
        trial = study.ask()
        spec = space.sample(trial)
        model = build_model(spec, num_classes=5).eval()
        inserted = attention_modules(model)
        assert set(inserted) == set(spec.blocks)
        for pos, module in inserted.items():
            assert type(module).__name__.lower().startswith(
                {"se": "se", "cbam": "cbam", "nl": "nonlocal", "cnl": "channelnonlocal", "eca": "eca", "gc": "gc"}[
                    spec.blocks[pos].block
                ]
            )
        assert model(X).shape == (2, 512)
        study.tell(trial, 0.0)


def test_pre_and_post_placement_compute_different_functions():
    torch.manual_seed(0)
    pre = build_model("resnet18:layer2.1=se@pre", num_classes=2).eval()
    post = build_model("resnet18:layer2.1=se", num_classes=2).eval()
    post.load_state_dict(pre.state_dict())
    for module in (pre, post):
        torch.nn.init.normal_(attention_modules(module)["layer2.1"].fc2.weight, std=0.5)
    post.load_state_dict(pre.state_dict())
    assert not torch.allclose(pre(X), post(X))


def test_attention_keeps_torchvision_state_dict_keys():
    plain = build_model("resnet50", 10).state_dict()
    attentive = build_model("resnet50:layer2.3=se@pre,layer3.5=cnl", 10).state_dict()
    assert set(plain) <= set(attentive)
    assert {k for k in attentive if k not in plain} == {
        k for k in attentive if ".attention." in k
    }


def test_pretrained_path_loads_a_torchvision_state_dict(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("resnet18:layer4.0=cnl", num_classes=3, pretrained=path)
    torch.testing.assert_close(model.backbone.layer4[0].conv1.weight, reference.layer4[0].conv1.weight)
    torch.testing.assert_close(model.backbone.conv1.weight, reference.conv1.weight)


def test_pretrained_file_of_the_wrong_backbone_is_refused(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit resnet50"):
        build_model("resnet50", num_classes=3, pretrained=path)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        build_model("resnet50", num_classes=3, pretrained=tmp_path / "missing.pth")


def test_imagenet_weights_come_from_torchvisions_cache_and_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not cached .* will not be downloaded"):
        build_model("resnet18", num_classes=3, pretrained="imagenet")
    torch.manual_seed(2)
    reference = torchvision.models.resnet18(weights=None)
    cache = tmp_path / "checkpoints" / IMAGENET_WEIGHTS["resnet18"].url.rsplit("/", 1)[1]
    cache.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cache)
    model = build_model("resnet18", num_classes=3, pretrained="imagenet")
    torch.testing.assert_close(model.backbone.conv1.weight, reference.conv1.weight)


def test_inserting_blocks_leaves_a_pretrained_network_unchanged():
    torch.manual_seed(0)
    plain = build_model("resnet18", 4).eval()
    attentive = build_model(ArchSpec.parse("resnet18:layer1.0=nl,layer2.1=se@pre,layer3.0=cbam,layer4.1=gc,layer4.0=eca@pre,layer3.1=cnl"), 4).eval()
    attentive.load_state_dict(plain.state_dict(), strict=False)
    torch.testing.assert_close(attentive(X), plain(X))


def test_under_one_seed_every_spec_starts_from_the_plain_networks_weights():
    # Identity-initialised blocks plus shared backbone and head weights: at step 0 every candidate
    # computes the plain network's function, so a search compares blocks, not initialisations.
    torch.manual_seed(0)
    plain = build_model("resnet18", 4).eval()
    torch.manual_seed(0)
    attentive = build_model("resnet18:layer1.0=nl,layer3.1=cnl,layer4.1=se", 4).eval()
    shared = attentive.state_dict()
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(shared[key], value, msg=key)
    torch.testing.assert_close(attentive(X), plain(X))
    torch.manual_seed(1)
    assert not torch.equal(build_model("resnet18", 4).head.classifier.weight, plain.head.classifier.weight)


def test_bad_builder_arguments_are_explained():
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        build_model("resnet18", num_classes=0)
    with pytest.raises(ValueError, match="last_stride must be 1 or 2"):
        build_model("resnet18", num_classes=2, last_stride=3)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model("resnet19", num_classes=2)
