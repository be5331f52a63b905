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
        if images.dim() != 4:
            raise ValueError(f"images must be NCHW, got shape {tuple(images.shape)}")
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images = images.float()
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.classes = list(classes)
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
