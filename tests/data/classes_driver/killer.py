"""A model that kills its worker process (the run must end ``system failure``)."""

import os

import torch


class mlp_kill(torch.nn.Module):
    def __init__(self, input_size, output_size, width):
        super().__init__()
        self.layer = torch.nn.Linear(int(input_size), int(output_size))

    def forward(self, data, run_info, module_info):
        os._exit(1)

    def info(self):
        return {}
