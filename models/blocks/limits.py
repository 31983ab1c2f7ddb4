"""What a block's options may be, checked where the block is built (so a spec, a search space
and a trial all refuse the same values, in one line, before anything trains).

A reduction divides the channels a block sees: past the channel count every value builds the
same network (the hidden width bottoms out), so `cnl(r=99999999999999999999)` would be a new
spec for an old network, and a 20-digit kernel does not build at all.
"""

from __future__ import annotations


def check_reduction(channels: int, reduction: int) -> None:
    if not 1 <= reduction <= channels:
        raise ValueError(f"reduction r={reduction} is more than the {channels} channels it divides; valid: 1..{channels}")


def check_kernel(kernel_size: int, widest: int, what: str) -> None:
    """An odd kernel (it pads k // 2 on each side) no wider than `widest`, the extent of `what`."""
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (it pads k // 2 on each side), got {kernel_size}")
    if kernel_size > widest:
        raise ValueError(f"kernel k={kernel_size} is wider than {what}; valid: odd values up to {widest}")
