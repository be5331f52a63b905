"""ImageSet: an in-memory, map-style image dataset in ganaug's canonical form."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset


class ImageSet(Dataset):
    """Images as one float tensor in [-1, 1], NCHW, with integer targets (-1 = unlabeled).

    Follows torchvision's conventions: items are ``(image, int)``, and ``.targets`` and
    ``.classes`` are there. ``transform`` / ``target_transform`` apply on item access only.
    """

    def __init__(self, images: Tensor, targets: Tensor, classes: Sequence[str],
                 transform=None, target_transform=None):
        images, targets, classes = torch.as_tensor(images), torch.as_tensor(targets), list(classes)
        shape = tuple(images.shape)
        if images.dim() != 4:
            raise ValueError(f"images must be NCHW, got shape {shape}")
        if shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4):
            raise ValueError(f"images must be NCHW, got shape {shape}, which looks like NHWC "
                             f"(channels last): pass images.permute(0, 3, 1, 2)")
        if targets.dim() != 1 or len(images) != len(targets):
            raise ValueError(f"{len(images)} images need one target each (a 1-D tensor of "
                             f"{len(images)} class ids), got targets of shape "
                             f"{tuple(targets.shape)}")
        if targets.is_floating_point() and not torch.equal(targets, targets.round()):
            raise ValueError("targets must be whole class ids, got fractional values")
        targets = targets.long()
        if len(targets) and not (-1 <= int(targets.min()) and int(targets.max()) < len(classes)):
            raise ValueError(f"targets must be class ids in [0, {len(classes)}) (one per name in "
                             f"classes) or -1 (unlabeled), got {int(targets.min())} to "
                             f"{int(targets.max())}: name every class in classes")
        images = images.float()
        if images.numel() and not (-1 <= float(images.min()) and float(images.max()) <= 1):
            raise ValueError(f"images must be in [-1, 1], ganaug's range, got "
                             f"{float(images.min()):g} to {float(images.max()):g}: scale them "
                             f"(e.g. x / 127.5 - 1 for 0..255, x * 2 - 1 for 0..1)")
        self.images, self.targets, self.classes = images, targets, classes
        self.transform, self.target_transform = transform, target_transform

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x, y = self.images[i], int(self.targets[i])
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def subset(self, index: Tensor, unlabeled: bool = False) -> "ImageSet":
        """The items at ``index`` (indices, or a boolean mask over the items), with this
        set's classes and transforms; with ``unlabeled=True`` their targets become -1."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            if index.shape != (len(self),):
                raise ValueError(f"a boolean mask must have one entry per item ({len(self)}), "
                                 f"got shape {tuple(index.shape)}")
            index = index.nonzero().squeeze(1)
        index = index.long()
        targets = self.targets[index].clone()
        if unlabeled:
            targets.fill_(-1)
        return ImageSet(self.images[index], targets, self.classes, self.transform,
                        self.target_transform)

    def class_counts(self) -> list[int]:
        """Labeled items per class (unlabeled items are not counted)."""
        t = self.targets[self.targets >= 0]
        return torch.bincount(t, minlength=self.num_classes).tolist()

    def __repr__(self) -> str:
        return (f"ImageSet({len(self)} images of shape {self.image_shape}, "
                f"{self.num_classes} classes)")
