import pytest
import torch

from attnas.models import BLOCKS, block_options, create_block

BLOCK_TYPES = tuple(BLOCKS)
SIZES = [(64, 16, 8), (256, 8, 4), (512, 5, 3)]  # (channels, H, W), odd sizes included


@pytest.mark.parametrize("name", BLOCK_TYPES)
@pytest.mark.parametrize("channels, h, w", SIZES)
def test_block_keeps_shape_in_train_and_eval(name, channels, h, w):
    block = create_block(name, channels)
    x = torch.randn(2, channels, h, w)
    for mode in (True, False):
        block.train(mode)
        assert block(x).shape == x.shape


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_block_starts_as_identity_so_pretrained_features_survive(name):
    block = create_block(name, 128).eval()
    x = torch.randn(2, 128, 8, 4)
    torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_every_parameter_of_a_block_learns(name):
    """Identity init must not freeze the block: after one step every weight has a gradient."""
    torch.manual_seed(0)
    block = create_block(name, 64).train()
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    x = torch.randn(4, 64, 8, 4, requires_grad=True)
    target = torch.randn(4, 64, 8, 4)
    for _ in range(2):  # step 1 moves the zero-init output layer; step 2 reaches the layers before it
        opt.zero_grad()
        loss = ((block(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, param in block.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, f"{name}.{pname} got no gradient"


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_block_traces_and_exports(name):
    block = create_block(name, 64).eval()
    for p in block.parameters():  # leave identity so the check compares real computation
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(1, 64, 8, 4)
    with torch.no_grad():
        expected = block(x)
        traced = torch.jit.trace(block, x)
        torch.testing.assert_close(traced(x), expected)
        exported = torch.export.export(block, (x,))
        torch.testing.assert_close(exported.module()(x), expected)


def test_reduction_ratios_are_configurable_by_argument_or_spec_key():
    assert create_block("se", 256, reduction=4).fc1.out_channels == 64
    assert create_block("cnl", 256, reduction=4).query.out_features == 64
    assert create_block("nl", 256, reduction=8).theta.out_channels == 32
    assert create_block("cnl", 256, r=8).query.out_features == 32
    assert create_block("cbam", 64, k=3).spatial.kernel_size == (3, 3)


def test_spec_options_take_their_defaults_from_the_constructor():
    assert {k: (o.argument, o.default) for k, o in block_options("cnl").items()} == {"r": ("reduction", 2)}
    assert {k: (o.argument, o.default) for k, o in block_options("cbam").items()} == {"r": ("reduction", 16), "k": ("kernel_size", 7)}
    assert block_options("eca")["k"].default is None  # ECA picks its kernel from the channel count


def test_nl_cost_grows_with_positions_and_cnl_does_not():
    from torch.utils.flop_counter import FlopCounterMode

    def flops(name, h, w):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            create_block(name, 64).eval()(torch.randn(1, 64, h, w))
        return counter.get_total_flops()

    assert flops("nl", 32, 16) > 10 * flops("nl", 8, 4)  # (HW)^2 affinity
    assert flops("cnl", 32, 16) == flops("cnl", 8, 4) > 0  # pooled first: independent of H, W


def test_unknown_block_and_bad_options_are_explained():
    with pytest.raises(ValueError, match="unknown attention block 'xx'; valid blocks: se, cbam"):
        create_block("xx", 64)
    with pytest.raises(TypeError, match="bad options .* for block 'se'"):
        create_block("se", 64, heads=4)
