"""The tutorial's dataset: the logical OR of two bits, with a little noise on the inputs."""

import torch


class dataset_OR:
    """Generate ``data_size`` samples of (x1, x2) -> x1 OR x2 and split them train/test."""

    def __init__(self, batch_size, data_size, train_prop):
        self.batch_size = int(batch_size)
        self.data_size = int(data_size)
        self.train_prop = float(train_prop)

    def prepare(self, data, run_info, module_info):
        generator = torch.Generator().manual_seed(0)
        bits = torch.randint(0, 2, (self.data_size, 2), generator=generator).float()
        target = (bits[:, 0].bool() | bits[:, 1].bool()).float().unsqueeze(1)
        inputs = bits + 0.05 * torch.randn(bits.shape, generator=generator)
        cut = int(self.data_size * self.train_prop)
        train = torch.utils.data.TensorDataset(inputs[:cut], target[:cut])
        test = torch.utils.data.TensorDataset(inputs[cut:], target[cut:])
        train_loader = torch.utils.data.DataLoader(train, batch_size=self.batch_size, drop_last=True)
        test_loader = torch.utils.data.DataLoader(test, batch_size=self.batch_size, drop_last=True)
        return train_loader, test_loader

    def info(self):
        return {"batch_size": self.batch_size, "input_size": 2, "output_size": 1}
