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
