"""Classes for the pinned-loss test: regression and classification, partial last batches kept."""

from __future__ import annotations

import torch


def _loaders(inputs, targets, batch_size, shuffle):
    cut = int(len(inputs) * 0.8)
    train = torch.utils.data.TensorDataset(inputs[:cut], targets[:cut])
    test = torch.utils.data.TensorDataset(inputs[cut:], targets[cut:])
    return (
        torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=shuffle, drop_last=False),
        torch.utils.data.DataLoader(test, batch_size=batch_size, drop_last=False),
    )


class regression:
    """Targets in [-1, 1] (no accuracy); shuffled train loader, so the global RNG matters."""

    def __init__(self, batch_size, data_size):
        self.batch_size, self.data_size = int(batch_size), int(data_size)

    def prepare(self, data, run_info, module_info):
        g = torch.Generator().manual_seed(3)
        inputs = torch.randn(self.data_size, 2, generator=g)
        targets = torch.tanh(inputs[:, :1] - 0.5 * inputs[:, 1:])
        return _loaders(inputs, targets, self.batch_size, shuffle=True)

    def info(self):
        return {"input_size": 2, "output_size": 1}


class binary:
    """0/1 targets (threshold accuracy), one output."""

    def __init__(self, batch_size, data_size):
        self.batch_size, self.data_size = int(batch_size), int(data_size)

    def prepare(self, data, run_info, module_info):
        g = torch.Generator().manual_seed(4)
        bits = torch.randint(0, 2, (self.data_size, 2), generator=g).float()
        targets = (bits[:, :1].bool() ^ bits[:, 1:].bool()).float()
        return _loaders(bits + 0.1 * torch.randn(bits.shape, generator=g), targets, self.batch_size, shuffle=False)

    def info(self):
        return {"input_size": 2, "output_size": 1}


class classes:
    """Three classes with integer targets (argmax accuracy under CrossEntropyLoss)."""

    def __init__(self, batch_size, data_size):
        self.batch_size, self.data_size = int(batch_size), int(data_size)

    def prepare(self, data, run_info, module_info):
        g = torch.Generator().manual_seed(5)
        targets = torch.randint(0, 3, (self.data_size,), generator=g)
        inputs = torch.nn.functional.one_hot(targets, 3).float() + 0.6 * torch.randn(self.data_size, 3, generator=g)
        return _loaders(inputs, targets, self.batch_size, shuffle=True)

    def info(self):
        return {"input_size": 3, "output_size": 3}


class mlp(torch.nn.Module):
    """A small MLP with dropout (the global RNG again)."""

    def __init__(self, input_size, output_size, width=6):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(int(input_size), int(width)),
            torch.nn.Tanh(),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(int(width), int(output_size)),
        )

    def forward(self, data, run_info, module_info):
        return self.net(data)
