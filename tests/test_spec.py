import json

import pytest

from attnas.space import ArchSpec, BlockChoice, as_spec


def test_plain_backbone_prints_as_its_name():
    assert str(ArchSpec.parse("resnet50")) == "resnet50"
    assert ArchSpec.parse("resnet50").num_blocks == 0


def test_canonical_form_sorts_in_network_order_and_omits_default_placement():
    spec = ArchSpec.parse("resnet101:layer3.10=cnl@post, layer3.9=se@pre,layer2.3=nl")
    assert str(spec) == "resnet101:layer2.3=nl,layer3.9=se@pre,layer3.10=cnl"


def test_equality_and_hash_follow_canonical_form():
    a = ArchSpec.parse("resnet50:layer3.5=cnl,layer2.3=se@pre")
    b = ArchSpec("resnet50", {"layer2.3": BlockChoice("se", "pre"), "layer3.5": "cnl"})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != ArchSpec.parse("resnet50:layer3.5=cnl")


def test_digest_is_short_and_stable_across_processes():
    # sha1 of the canonical text: a fixed value, unlike Python's salted hash()
    assert ArchSpec.parse("resnet50:layer3.5=cnl").digest == "3addd5358166"  # hashlib.sha1(b"resnet50:layer3.5=cnl")
    assert len(ArchSpec.parse("resnet50").digest) == 12


@pytest.mark.parametrize(
    "text",
    ["resnet50", "resnet50:layer3.5=cnl", "resnet50:layer2.3=se@pre,layer3.5=cnl", "resnet18:layer1.0=gc,layer4.1=eca@pre"],
)
def test_text_dict_json_yaml_round_trips(text, tmp_path):
    spec = ArchSpec.parse(text)
    assert str(ArchSpec.parse(str(spec))) == text
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    assert ArchSpec.from_dict(json.loads(spec.to_json())) == spec
    for suffix in (".json", ".yaml"):
        path = spec.save(tmp_path / f"spec{suffix}")
        assert ArchSpec.load(path) == spec


def test_as_spec_accepts_text_dict_and_spec():
    spec = ArchSpec.parse("resnet50:layer3.5=cnl")
    assert as_spec(spec) is spec
    assert as_spec("resnet50:layer3.5=cnl") == spec
    assert as_spec(spec.to_dict()) == spec


def test_specs_are_immutable():
    spec = ArchSpec.parse("resnet50:layer3.5=cnl")
    with pytest.raises(TypeError, match="immutable"):
        spec.blocks["layer1.0"] = BlockChoice("se")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("resnet51", "unknown backbone 'resnet51'; valid backbones: resnet18"),
        ("resnet50:layer5.0=se", "position 'layer5.0' does not exist in resnet50; valid positions: layer1.0-2"),
        ("resnet50:layer1.3=se", "position 'layer1.3' does not exist"),
        ("resnet50:layer3.5=attn", "unknown attention block 'attn'; valid blocks: se, cbam, nl, cnl, eca, gc"),
        ("resnet50:layer3.5=se@inside", "unknown placement 'inside'; valid placements: post, pre"),
        ("resnet50:layer3.5=se,layer3.5=cnl", "duplicate position 'layer3.5'"),
        ("resnet50:layer3.5", "malformed entry 'layer3.5'"),
        ("resnet50:", "no blocks after it"),
        ("", "empty architecture spec"),
    ],
)
def test_bad_text_names_the_offending_token_and_valid_choices(text, fragment):
    with pytest.raises(ValueError) as info:
        ArchSpec.parse(text)
    assert fragment in str(info.value)


def test_load_rejects_a_file_whose_string_and_blocks_disagree(tmp_path):
    path = tmp_path / "spec.json"
    data = ArchSpec.parse("resnet50:layer3.5=cnl").to_dict() | {"spec": "resnet50:layer3.4=cnl"}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="inconsistent"):
        ArchSpec.load(path)


def test_save_refuses_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="use a .json, .yaml or .yml file"):
        ArchSpec.parse("resnet50").save(tmp_path / "spec.txt")


def test_block_options_are_canonical_defaults_omitted_and_sorted():
    spec = ArchSpec.parse("resnet50:layer4.2=cnl(r=8),layer3.5=cnl(r=2),layer2.0=cbam(r=4,k=3)@pre")
    assert str(spec) == "resnet50:layer2.0=cbam(k=3,r=4)@pre,layer3.5=cnl,layer4.2=cnl(r=8)"
    assert spec.blocks["layer4.2"].kwargs == {"r": 8} and spec.blocks["layer4.2"].variant == "cnl(r=8)"
    assert spec != ArchSpec.parse("resnet50:layer2.0=cbam(k=3,r=4)@pre,layer3.5=cnl,layer4.2=cnl")
    assert ArchSpec.parse(str(spec)) == spec and ArchSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["blocks"][2] == {"position": "layer4.2", "block": "cnl", "placement": "post", "options": {"r": 8}}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("resnet50:layer3.5=cnl(q=8)", "block 'cnl' has no option 'q'; its options: r (reduction)"),
        ("resnet50:layer3.5=se(r=0)", "option r=0 of block 'se' must be an integer >= 1"),
        ("resnet50:layer3.5=se(r=x)", "option r='x' of block 'se' must be an integer >= 1"),
        ("resnet50:layer3.5=eca(k=4)", "block eca(k=4): kernel_size must be odd"),
        ("resnet50:layer3.5=se(r=4,r=8)", "option 'r' given twice"),
        ("resnet50:layer3.5=se(r)", "malformed option 'r'"),
        ("resnet50:layer3.5=se(r=4", "malformed block 'se(r=4'"),
    ],
)
def test_bad_block_options_name_the_option_and_what_is_valid(text, fragment):
    with pytest.raises(ValueError) as info:
        ArchSpec.parse(text)
    assert fragment in str(info.value)


def test_specs_survive_pickle_and_deepcopy_as_models_carrying_them_must():
    import copy
    import pickle

    spec = ArchSpec.parse("resnet50:layer2.3=se@pre,layer4.2=cnl(r=8)")
    assert copy.deepcopy(spec) == spec and pickle.loads(pickle.dumps(spec)) == spec
    assert copy.copy(spec.blocks) == spec.blocks


def test_positions_and_stages_come_from_the_backbone_adapter():
    spec = ArchSpec.parse("convnext_tiny:features.5.8=cnl,features.1.0=se@pre")
    assert str(spec) == "convnext_tiny:features.1.0=se@pre,features.5.8=cnl"
    assert spec.stages() == {"features.1.0": "features.1", "features.5.8": "features.5"}
    with pytest.raises(ValueError, match="valid positions: features.1.0-2, features.3.0-2, features.5.0-8, features.7.0-2"):
        ArchSpec.parse("convnext_tiny:layer3.5=cnl")
