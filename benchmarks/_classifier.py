"""The user's side of the benchmarks: a small classifier and its plain training loop, the
same for every method, so only the data it sees changes."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ganaug.metrics import classification_metrics


class SmallMLP(nn.Module):
    """Flatten -> 256 -> 256 -> C, ReLU, dropout 0.2: a deliberately plain classifier."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, 256), nn.ReLU(),
                                 nn.Dropout(0.2), nn.Linear(256, 256), nn.ReLU(),
                                 nn.Dropout(0.2), nn.Linear(256, num_classes))

    def forward(self, x):
        return self.net(x)


def train_classifier(data: Dataset, num_classes: int, in_features: int, steps: int, seed: int,
                     *, batch_size: int = 64, sampler=None, class_weight=None,
                     batch_mixer=None, device: str = "cpu", on_epoch=None) -> nn.Module:
    """``steps`` Adam steps (lr 1e-3) of cross-entropy over ``data`` (reshuffled every pass,
    or drawn by ``sampler``); ``batch_mixer`` (a ganaug.BatchMixer) edits every batch."""
    torch.manual_seed(seed)
    model = SmallMLP(in_features, num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float,
                                                               device=device)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                        generator=g if sampler is None else None, drop_last=len(data) > batch_size)
    step, epoch = 0, 0
    model.train()
    while step < steps:
        if on_epoch is not None:
            on_epoch(epoch)
        for x, y in loader:
            x, y = x.to(device).float(), y.to(device)
            if batch_mixer is not None:
                x, y = batch_mixer(x, y)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step >= steps:
                break
        epoch += 1
    return model.eval()


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, num_classes: int,
             device: str = "cpu") -> dict:
    pred = torch.cat([model(x.to(device)).argmax(1).cpu() for x in images.split(2048)])
    return classification_metrics(targets.numpy(), pred.numpy(), num_classes)
