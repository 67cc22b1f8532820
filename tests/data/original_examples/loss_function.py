"""A loss class the original tool's way: a subclass of MSELoss named in class_loss_function."""

from torch.nn import MSELoss


class Mse(MSELoss):
    def __init__(self):
        super().__init__()
