"""The tutorial's two model families, compared at the same number of hidden neurons.

mlp_brick: ``length`` hidden layers of ``width`` neurons each.
mlp_funnel: ``length`` hidden layers shrinking from ``length * width`` down to ``width``.
"""

import torch


class _MLP(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))
        self.activation = torch.nn.Sigmoid()

    def forward(self, data, run_info, module_info):
        for layer in self.layers:
            data = self.activation(layer(data))
        return data

    def info(self):
        return {}

    def save_model(self, path):
        torch.save(self.state_dict(), path + ".pt")

    def load_model(self, path):
        self.load_state_dict(torch.load(path + ".pt"))


class mlp_brick(_MLP):
    def __init__(self, input_size, output_size, length, width):
        length, width = int(length), int(width)
        super().__init__([int(input_size)] + [width] * length + [int(output_size)])


class mlp_funnel(_MLP):
    def __init__(self, input_size, output_size, length, width):
        length, width = int(length), int(width)
        hidden = [width * (length - i) for i in range(length)]
        super().__init__([int(input_size)] + hidden + [int(output_size)])
