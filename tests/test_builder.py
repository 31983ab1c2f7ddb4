import pytest
import torch
import torchvision

from attnas.models import BLOCKS, attention_modules, backbone_family, backbone_names, build_model, layout
from attnas.space import ArchSpec, SearchSpace

X = torch.randn(2, 3, 64, 32)  # tiny input keeps the suite fast

#: what torchvision's papers say: blocks per stage and the channels leaving each stage
KNOWN_LAYOUTS = {
    "resnet18": ((2, 2, 2, 2), (64, 128, 256, 512)),
    "resnet34": ((3, 4, 6, 3), (64, 128, 256, 512)),
    "resnet50": ((3, 4, 6, 3), (256, 512, 1024, 2048)),
    "resnet101": ((3, 4, 23, 3), (256, 512, 1024, 2048)),
    "resnet152": ((3, 8, 36, 3), (256, 512, 1024, 2048)),
    "resnext50_32x4d": ((3, 4, 6, 3), (256, 512, 1024, 2048)),
    "wide_resnet50_2": ((3, 4, 6, 3), (256, 512, 1024, 2048)),
    "convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "mobilenet_v3_large": ((1, 2, 3, 6, 3), (16, 24, 40, 112, 160)),  # channels leaving the stage: 80 -> 112 inside stride16
    "mobilenet_v3_small": ((1, 2, 5, 3), (16, 24, 48, 96)),
}


@pytest.mark.parametrize("backbone", list(KNOWN_LAYOUTS))
def test_declared_layouts_match_the_papers(backbone):
    where = layout(backbone)
    depths, channels = KNOWN_LAYOUTS[backbone]
    assert tuple(s.depth for s in where.stages) == depths and tuple(s.channels for s in where.stages) == channels
    assert len(where.positions) == sum(depths)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50", "resnext50_32x4d", "convnext_tiny", "mobilenet_v3_large",
                                      "mobilenet_v3_small"])
def test_declared_positions_are_the_blocks_torchvision_builds(backbone):
    # what a declaration promises, checked on the real network: the module exists at the declared
    # path, its output has the declared channels, the head sees `out_channels`
    family, where = backbone_family(backbone), layout(backbone)
    net = family.build(backbone).eval()
    seen = {}
    for position in where.declared:
        net.get_submodule(position.module).register_forward_hook(
            lambda module, args, out, name=position.name: seen.__setitem__(name, out.shape[1]))
    with torch.no_grad():
        assert family.features(net, torch.randn(1, 3, 64, 32)).shape[1] == where.out_channels
    assert seen == {p.name: p.channels for p in where.declared}


def test_every_registered_backbone_builds_with_a_block_at_the_end_of_every_stage():
    for backbone in backbone_names():
        where = layout(backbone)
        spec = ArchSpec(backbone, {[p for p in where.declared if p.stage == stage.name][-1].name: "se" for stage in where.stages})
        assert set(attention_modules(build_model(spec, 3))) == set(spec.blocks), backbone


@pytest.mark.parametrize("text", ["convnext_tiny:features.1.0=nl,features.5.8=cnl", "convnext_tiny:features.3.1=se@pre,features.7.2=gc"])
def test_convnext_takes_blocks_after_or_inside_any_cnblock(text):
    spec = ArchSpec.parse(text)
    torch.manual_seed(0)
    plain = build_model("convnext_tiny", 4).eval()
    torch.manual_seed(0)
    attentive = build_model(spec, 4).eval()
    x = torch.randn(1, 3, 64, 32)
    torch.testing.assert_close(attentive(x), plain(x))  # identity at insertion: the same function
    assert set(attention_modules(attentive)) == set(spec.blocks)
    logits, feature = attentive.train()(torch.randn(2, 3, 64, 32))
    assert logits.shape == (2, 4) and feature.shape == (2, 768)


def test_convnext_last_stride_one_keeps_the_previous_stages_resolution_and_its_weights():
    x = torch.randn(1, 3, 256, 128)
    assert build_model("convnext_tiny", 2).eval().features(x).shape == (1, 768, 16, 8)
    assert build_model("convnext_tiny", 2, last_stride=2).eval().features(x).shape == (1, 768, 8, 4)
    keys_stride1 = set(build_model("convnext_tiny", 2).state_dict())
    assert keys_stride1 == set(build_model("convnext_tiny", 2, last_stride=2).state_dict())


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
            assert type(module) is BLOCKS[spec.blocks[pos].block]
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


def test_pretrained_path_maps_dataparallel_and_attnas_checkpoint_keys(tmp_path):
    torch.manual_seed(3)
    reference = torchvision.models.resnet18(weights=None)
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, tmp_path / "dp.pth")
    model = build_model("resnet18", num_classes=3, pretrained=tmp_path / "dp.pth")
    torch.testing.assert_close(model.backbone.conv1.weight, reference.conv1.weight)
    trained = build_model("resnet18:layer4.1=se", num_classes=7)  # a whole attnas re-ID model, head and all
    torch.save(trained.state_dict(), tmp_path / "reid.pt")
    with pytest.raises(ValueError, match="unexpected .*layer4.1.attention"):  # its blocks are not the plain network's
        build_model("resnet18", num_classes=3, pretrained=tmp_path / "reid.pt")
    plain = build_model("resnet18", num_classes=7)
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    torch.testing.assert_close(build_model("resnet18:layer3.0=cnl", 2, pretrained=tmp_path / "plain.pt").backbone.conv1.weight,
                               plain.backbone.conv1.weight)


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
    cache = backbone_family("resnet18").cached_weights_path("resnet18")
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
    with pytest.raises(ValueError, match="unknown backbone 'resnet19'; valid backbones: resnet18, .*convnext_tiny"):
        build_model("resnet19", num_classes=2)


def test_a_family_whose_declaration_cannot_hold_is_refused_at_registration():
    from attnas.models import FAMILIES
    from attnas.models.backbones import Position
    from attnas.models.backbones.resnet import ResNetFamily

    class Broken(ResNetFamily):
        names = ("resnet18_broken",)

        def positions(self, name):
            return (Position("a.0", "layer1.0", "a", 64), Position("b.0", "layer2.0", "b", 128),
                    Position("a.0", "layer3.0", "a", 256), Position("b", "layer4.0", "c", 0))

        def out_channels(self, name):
            return 512

    with pytest.raises(ValueError, match="invalid layout for resnet18_broken: position 'a.0' declared twice; stage 'a' is "
                                         "not one run of positions; stage 'b' is also a position name; b has 0 channels"):
        FAMILIES.register("broken", Broken())
    assert "broken" not in FAMILIES
