"""A model whose every output is off by ``handicap``: on the OR problem (MSE), the larger the
handicap, the worse the model at every epoch. The halving tests know which pipeline is best."""

import torch


class mlp_handicap(torch.nn.Module):
    def __init__(self, input_size, output_size, width, handicap):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(int(input_size), int(width)), torch.nn.Sigmoid(),
                                          torch.nn.Linear(int(width), int(output_size)), torch.nn.Sigmoid())
        self.handicap = float(handicap)

    def forward(self, data, run_info, module_info):
        return self.layers(data) + self.handicap

    def info(self):
        return {}
