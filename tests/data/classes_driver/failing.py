"""A model that always fails: its forward raises (the run must end ``error``)."""

import torch


class mlp_fail(torch.nn.Module):
    def __init__(self, input_size, output_size, width):
        super().__init__()
        self.layer = torch.nn.Linear(int(input_size), int(output_size))

    def forward(self, data, run_info, module_info):
        raise RuntimeError("deliberate failure in forward")

    def info(self):
        return {}
