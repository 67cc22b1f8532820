"""Models written the original tool's way: ``forward(data, run_info, module_info)``, a last
``Linear(..., 1)`` (output (B, 1)), ``save_model`` pickling the whole module with
``torch.save(self, ...)`` and a ``load_model`` whose ``torch.load`` refuses that file under
torch >= 2.6 (``weights_only=True``); the run's own checkpoint restores them instead.
"""

import torch


class _MLP(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.activation = torch.nn.Sigmoid()

    def forward(self, data, run_info, module_info):
        for layer in self.layers:
            data = self.activation(layer(data))
        return data

    def info(self):
        return {}

    def save_model(self, path):
        torch.save(self, path + ".pt")

    def load_model(self, path):
        self = torch.load(path + ".pt")  # noqa: F841 - the original's (ineffective) spelling


class mlp_funnel(_MLP):  # noqa: N801
    def __init__(self, input_size, output_size, length, width):
        widths = [max(1, int(width) // 2**i) for i in range(int(length))]
        super().__init__([int(input_size), *widths, int(output_size)])


class mlp_brick(_MLP):  # noqa: N801
    def __init__(self, input_size, output_size, length, width):
        super().__init__([int(input_size)] + [int(width)] * int(length) + [int(output_size)])
