"""Layer shapes of reference networks, written from their papers (no torch needed).

* :func:`mobilenet_v2` - Sandler et al., CVPR 2018 (Table 2), width 1.0, 224 x 224 input: 52
  convolutions + the classifier = 53 quantizable layers, 300.8 M MACs (the paper quotes 300 M).
* :func:`resnet18` - He et al., CVPR 2016 (basic blocks), torchvision layout: 20 convolutions +
  the classifier = 21 layers, 1.81 G MACs.
* :func:`resnet50` - He et al., CVPR 2016, with the stride on the 3 x 3 convolution of each
  bottleneck (torchvision's "v1.5"): 53 convolutions + the classifier = 54 layers, 4.09 G MACs.

Layers are listed in execution order as torchvision runs them (a bottleneck's projection shortcut
after its third convolution), so they line up with
``quant_envs.mixed_precision.layer_shapes.quantizable_layers`` on the torchvision models.
"""

from __future__ import annotations

from hw_sim.layer import LayerShape


def mobilenet_v2(num_classes: int = 1000, resolution: int = 224) -> list[LayerShape]:
    """MobileNetV2 (width 1.0) as 53 ``LayerShape``s."""
    layers = [LayerShape.conv2d(3, 32, 3, resolution, stride=2, padding=1)]
    hw = (resolution + 2 - 3) // 2 + 1
    c_in = 32
    # (expansion t, output channels c, repeats n, first stride s): the paper's Table 2
    for t, c, n, s in (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ):
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c_in * t
            if t != 1:
                layers.append(LayerShape.conv2d(c_in, hidden, 1, hw))
            layers.append(
                LayerShape.conv2d(hidden, hidden, 3, hw, stride=stride, padding=1, groups=hidden)
            )
            hw = (hw + 2 - 3) // stride + 1
            layers.append(LayerShape.conv2d(hidden, c, 1, hw))
            c_in = c
    layers.append(LayerShape.conv2d(c_in, 1280, 1, hw))
    layers.append(LayerShape.linear(1280, num_classes))
    return layers


def resnet18(num_classes: int = 1000, resolution: int = 224) -> list[LayerShape]:
    """ResNet-18 (basic blocks) as 21 ``LayerShape``s, the projection shortcut after a block's
    second convolution (torchvision's execution order)."""
    layers = [LayerShape.conv2d(3, 64, 7, resolution, stride=2, padding=3)]
    hw = (resolution + 6 - 7) // 2 + 1
    hw = (hw + 2 - 3) // 2 + 1  # 3 x 3 max-pool, stride 2, padding 1
    c_in = 64
    for width, first_stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for i in range(2):
            stride = first_stride if i == 0 else 1
            layers.append(LayerShape.conv2d(c_in, width, 3, hw, stride=stride, padding=1))
            hw_out = (hw + 2 - 3) // stride + 1
            layers.append(LayerShape.conv2d(width, width, 3, hw_out, padding=1))
            if stride != 1 or c_in != width:
                layers.append(LayerShape.conv2d(c_in, width, 1, hw, stride=stride))
            hw, c_in = hw_out, width
    layers.append(LayerShape.linear(512, num_classes))
    return layers


def resnet50(num_classes: int = 1000, resolution: int = 224) -> list[LayerShape]:
    """ResNet-50 (stride on the 3 x 3 convolutions) as 54 ``LayerShape``s."""
    layers = [LayerShape.conv2d(3, 64, 7, resolution, stride=2, padding=3)]
    hw = (resolution + 6 - 7) // 2 + 1
    hw = (hw + 2 - 3) // 2 + 1  # 3 x 3 max-pool, stride 2, padding 1
    c_in = 64
    for width, blocks, first_stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            stride = first_stride if i == 0 else 1
            out = width * 4
            layers.append(LayerShape.conv2d(c_in, width, 1, hw))
            layers.append(LayerShape.conv2d(width, width, 3, hw, stride=stride, padding=1))
            hw_out = (hw + 2 - 3) // stride + 1
            layers.append(LayerShape.conv2d(width, out, 1, hw_out))
            if i == 0:
                layers.append(LayerShape.conv2d(c_in, out, 1, hw, stride=stride))
            hw, c_in = hw_out, out
    layers.append(LayerShape.linear(2048, num_classes))
    return layers
