"""A layer seen as a (grouped) matrix multiplication, the way accelerators execute it.

A convolution with ``groups`` groups is ``groups`` independent GEMMs ``Y_g = W_g @ X_g`` with

* ``m`` = output channels per group (rows of ``W_g``),
* ``k`` = input channels per group x kernel area (the reduction length),
* ``n`` = output positions per sample (H_out x W_out; tokens for a linear layer).

The batch is not part of the shape: accelerators take it when costing (``N = batch * n``).
Activation counts are those of the real feature maps (``c_in x H x W`` in, ``c_out x H_out x W_out``
out), not of the im2col-lowered matrix; ``lowered_input_elems`` gives the latter for accelerators
that lower convolutions in memory (BISMO's runtime does, on the host).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hw_sim.checks import check_choice, check_int, check_pair

KINDS = ("conv", "depthwise", "linear", "gemm")


@dataclass(frozen=True)
class LayerShape:
    """One quantizable layer as a grouped GEMM; all counts are per sample (batch 1).

    Build it with :meth:`conv2d` or :meth:`linear`; the plain constructor takes the GEMM view
    directly (``input_elems``/``output_elems`` default to the GEMM operand sizes).
    """

    m: int
    k: int
    n: int
    groups: int = 1
    kernel_area: int = 1
    input_elems: int | None = None
    output_elems: int | None = None
    kind: str = "gemm"

    def __post_init__(self) -> None:
        for name in ("m", "k", "n", "groups", "kernel_area"):
            check_int(name, getattr(self, name), min_value=1)
        check_choice("kind", self.kind, KINDS)
        if self.k % self.kernel_area:
            raise ValueError(
                f"k={self.k} is not allowed with kernel_area={self.kernel_area}; "
                "expected k = input channels per group x kernel area"
            )
        if self.input_elems is None:
            object.__setattr__(self, "input_elems", self.groups * self.k * self.n)
        if self.output_elems is None:
            object.__setattr__(self, "output_elems", self.groups * self.m * self.n)
        check_int("input_elems", self.input_elems, min_value=1)
        check_int("output_elems", self.output_elems, min_value=1)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def conv2d(
        cls,
        c_in: int,
        c_out: int,
        kernel: int | tuple[int, int],
        in_hw: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        groups: int = 1,
        dilation: int | tuple[int, int] = 1,
    ) -> LayerShape:
        """A 2-D convolution (PyTorch semantics: symmetric zero padding, floor division).

        ``padding`` may also be ``"valid"`` (0) or ``"same"`` (output = ceil(input / stride)).
        A layer with ``groups == c_in == c_out`` (and more than one channel) is ``kind="depthwise"``.
        """
        c_in = check_int("c_in", c_in, min_value=1)
        c_out = check_int("c_out", c_out, min_value=1)
        groups = check_int("groups", groups, min_value=1)
        if c_in % groups or c_out % groups:
            raise ValueError(
                f"groups={groups} is not allowed for c_in={c_in}, c_out={c_out}; "
                "expected a divisor of both channel counts"
            )
        kh, kw = check_pair("kernel", kernel, min_value=1)
        h, w = check_pair("in_hw", in_hw, min_value=1)
        sh, sw = check_pair("stride", stride, min_value=1)
        dh, dw = check_pair("dilation", dilation, min_value=1)
        eff_h, eff_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        if isinstance(padding, str):
            check_choice("padding", padding, ("valid", "same"))
            if padding == "valid":
                ph = pw = 0
                out_h, out_w = _conv_out(h, eff_h, sh, 0), _conv_out(w, eff_w, sw, 0)
            else:
                ph, pw = (eff_h - 1) // 2, (eff_w - 1) // 2
                out_h, out_w = math.ceil(h / sh), math.ceil(w / sw)
            pad_total_h, pad_total_w = (0, 0) if padding == "valid" else (eff_h - 1, eff_w - 1)
        else:
            ph, pw = check_pair("padding", padding, min_value=0)
            pad_total_h, pad_total_w = 2 * ph, 2 * pw
            out_h, out_w = _conv_out(h, eff_h, sh, ph), _conv_out(w, eff_w, sw, pw)
        if eff_h > h + pad_total_h or eff_w > w + pad_total_w:
            raise ValueError(
                f"kernel={(kh, kw)!r} (dilated extent {(eff_h, eff_w)}) is not allowed for "
                f"in_hw={(h, w)!r} with padding={padding!r}; expected a kernel no larger than the "
                f"padded input {(h + pad_total_h, w + pad_total_w)}"
            )
        kind = "depthwise" if (groups == c_in == c_out and c_in > 1) else "conv"
        return cls(
            m=c_out // groups,
            k=(c_in // groups) * kh * kw,
            n=out_h * out_w,
            groups=groups,
            kernel_area=kh * kw,
            input_elems=c_in * h * w,
            output_elems=c_out * out_h * out_w,
            kind=kind,
        )

    @classmethod
    def linear(cls, in_features: int, out_features: int, tokens: int = 1) -> LayerShape:
        """A fully-connected layer applied to ``tokens`` vectors per sample (1 for a classifier head)."""
        in_features = check_int("in_features", in_features, min_value=1)
        out_features = check_int("out_features", out_features, min_value=1)
        tokens = check_int("tokens", tokens, min_value=1)
        return cls(
            m=out_features,
            k=in_features,
            n=tokens,
            input_elems=in_features * tokens,
            output_elems=out_features * tokens,
            kind="linear",
        )

    # ------------------------------------------------------------------ derived counts
    @property
    def macs(self) -> int:
        """Multiply-accumulates per sample."""
        return self.groups * self.m * self.k * self.n

    @property
    def weight_count(self) -> int:
        """Number of weights (bias excluded: it stays at accumulator precision)."""
        return self.groups * self.m * self.k

    @property
    def input_count(self) -> int:
        """Input activation elements per sample (the feature map, not its im2col lowering)."""
        return int(self.input_elems)  # type: ignore[arg-type]

    @property
    def output_count(self) -> int:
        """Output activation elements per sample."""
        return int(self.output_elems)  # type: ignore[arg-type]

    @property
    def lowered_input_elems(self) -> int:
        """Elements of the im2col-lowered input matrix per sample (``groups * k * n``)."""
        return self.groups * self.k * self.n

    @property
    def c_in(self) -> int:
        return self.groups * self.k // self.kernel_area

    @property
    def c_out(self) -> int:
        return self.groups * self.m

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "m": self.m,
            "k": self.k,
            "n": self.n,
            "groups": self.groups,
            "kernel_area": self.kernel_area,
            "input_elems": self.input_count,
            "output_elems": self.output_count,
            "macs": self.macs,
            "weights": self.weight_count,
        }


def _conv_out(size: int, extent: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - extent) // stride + 1
