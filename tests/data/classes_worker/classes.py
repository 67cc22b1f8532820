"""Test classes for the worker side (runner/train): tiny datasets and models, some broken on purpose."""

from __future__ import annotations

import torch

CONSTRUCTED: list[dict] = []  # typed_mlp records the values it received


def _loaders(inputs, targets, batch_size, train_prop=0.8, shuffle=False):
    cut = int(len(inputs) * train_prop)
    train = torch.utils.data.TensorDataset(inputs[:cut], targets[:cut])
    test = torch.utils.data.TensorDataset(inputs[cut:], targets[cut:])
    return (
        torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=shuffle, drop_last=True),
        torch.utils.data.DataLoader(test, batch_size=batch_size, drop_last=True),
    )


class dataset_classes:
    """Three-class classification with integer (index) targets."""

    def __init__(self, batch_size, data_size, n_classes=3):
        self.batch_size, self.data_size, self.n_classes = int(batch_size), int(data_size), int(n_classes)

    def prepare(self, data, run_info, module_info):
        g = torch.Generator().manual_seed(1)
        targets = torch.randint(0, self.n_classes, (self.data_size,), generator=g)
        inputs = torch.nn.functional.one_hot(targets, self.n_classes).float() + 0.1 * torch.randn(
            self.data_size, self.n_classes, generator=g
        )
        return _loaders(inputs, targets, self.batch_size)

    def info(self):
        return {"batch_size": self.batch_size, "input_size": self.n_classes, "output_size": self.n_classes}


class dataset_signed:
    """Regression with targets in [-1, 1]; shuffled train loader (uses the global RNG)."""

    def __init__(self, batch_size, data_size):
        self.batch_size, self.data_size = int(batch_size), int(data_size)

    def prepare(self, data, run_info, module_info):
        g = torch.Generator().manual_seed(2)
        inputs = torch.randn(self.data_size, 2, generator=g)
        targets = torch.tanh(inputs[:, :1] - inputs[:, 1:])
        return _loaders(inputs, targets, self.batch_size, shuffle=True)

    def info(self):
        return {"batch_size": self.batch_size, "input_size": 2, "output_size": 1}


class scale_inputs:
    """A middle data class: multiplies the inputs of the previous loaders (checks chaining)."""

    def __init__(self, factor: float):
        self.factor = factor

    def prepare(self, data, run_info, module_info):
        train, test = data
        self.seen_batch_size = run_info["batch_size"]
        return train, test

    def info(self):
        return {"factor_seen": self.factor}


class dataset_single:
    """prepare() returns one loader instead of a pair (a user mistake)."""

    def prepare(self, data, run_info, module_info):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4, 2), torch.zeros(4, 1)))

    def info(self):
        return {"input_size": 2, "output_size": 1}


class linear:
    """Not an nn.Module, but it has parameters(): the optimizer must still see them."""

    def __init__(self, input_size, output_size):
        self.layer = torch.nn.Linear(int(input_size), int(output_size))

    def forward(self, data, run_info, module_info):
        return self.layer(data)

    def parameters(self):
        return self.layer.parameters()

    def info(self):
        return {}


class mlp_dropout(torch.nn.Module):
    """Uses dropout (global RNG) so resume equivalence covers RNG states."""

    def __init__(self, input_size, output_size, width=8):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(int(input_size), int(width)),
            torch.nn.Tanh(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(int(width), int(output_size)),
        )

    def forward(self, data, run_info, module_info):
        return self.net(data)

    def info(self):
        return {}


class typed_mlp(torch.nn.Module):
    """Annotated constructor: values from the section arrive converted."""

    def __init__(self, input_size: int, output_size: int, width: int, scale: float = 1.0, bias: bool = True, tag: str = "x"):
        super().__init__()
        CONSTRUCTED.append({"width": width, "scale": scale, "bias": bias, "tag": tag})
        self.layer = torch.nn.Linear(input_size, output_size, bias=bias)
        self.scale = scale

    def forward(self, data, run_info, module_info):
        return self.layer(data) * self.scale

    def info(self):
        return {}


class mlp_raises(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.layer = torch.nn.Linear(int(input_size), int(output_size))

    def forward(self, data, run_info, module_info):
        raise ValueError("deliberate failure in forward")


class mlp_nan(torch.nn.Module):
    """Fine for two epochs, then returns NaN."""

    def __init__(self, input_size, output_size):
        super().__init__()
        self.layer = torch.nn.Linear(int(input_size), int(output_size))
        self.calls = 0
        self.batches_per_epoch = None

    def forward(self, data, run_info, module_info):
        out = self.layer(data)
        if self.training:
            self.calls += 1
        if self.calls > 2 * 4:  # 4 train batches per epoch with data_size 40, batch 8
            out = out * float("nan")
        return out

    def info(self):
        return {}


class mlp_needs_depth(torch.nn.Module):
    def __init__(self, input_size, output_size, depth):
        super().__init__()

    def forward(self, data, run_info, module_info):
        return data


class mlp_exits(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.layer = torch.nn.Linear(int(input_size), int(output_size))

    def forward(self, data, run_info, module_info):
        raise SystemExit(3)


class mlp_prints(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.layer = torch.nn.Linear(int(input_size), int(output_size))

    def forward(self, data, run_info, module_info):
        print("hello from forward")
        return self.layer(data)

    def info(self):
        return {}


class AbsLoss:
    """A user loss class: mean absolute error, called loss(prediction, target)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, prediction, target):
        self.calls += 1
        return (prediction - target.reshape(prediction.shape)).abs().mean()
