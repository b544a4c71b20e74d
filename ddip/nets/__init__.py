"""Backbones for (Double-)DIP: the DIP skip hourglass and SegNet."""

from ddip.nets.segnet import SegNet
from ddip.nets.unet import SkipUNet

__all__ = ["SegNet", "SkipUNet"]
