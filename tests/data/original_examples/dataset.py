"""Data classes written the original tool's way (ml-mosaic 0.0.4): ``from mosaic.lib import *``,
its cache helpers, float targets of shape (B,), ``info()`` giving batch, input and output sizes.

The truth table comes from ``download_file`` (a URL in the section), the sampled data set is
written beside it and registered with ``save_path_file``.
"""

import os

import numpy as np
import torch

from mosaic.lib import *  # noqa: F403 - the original's spelling, kept on purpose


class dataset_OR:  # noqa: N801 - the original's class name
    def __init__(self):
        self.batch_size = None

    def prepare(self, data, run_info, module_info):
        np.random.seed(42)
        folder = module_info["data_dir"]
        table_path = download_file(module_info["data_url"], os.path.join(folder, "or_table.csv"))  # noqa: F405
        table = np.loadtxt(table_path, delimiter=",", dtype=np.float32)
        sample_path = os.path.join(folder, f"or_sample_{os.getpid()}.npy")
        if not get_path_file(sample_path):  # noqa: F405
            rows = table[np.random.randint(len(table), size=int(module_info["data_size"]))]
            np.save(sample_path, rows)
            save_path_file(sample_path)  # noqa: F405
        rows = np.load(sample_path)
        X = torch.tensor(rows[:, :2]).float()
        y = torch.tensor(rows[:, 2]).float()  # shape (N,): the model's (B, 1) is squeezed to match
        dataset = torch.utils.data.TensorDataset(X, y)
        train_size = int(len(dataset) * float(module_info["train_prop"]))
        train = torch.utils.data.Subset(dataset, range(train_size))
        test = torch.utils.data.Subset(dataset, range(train_size, len(dataset)))
        self.batch_size = int(module_info["batch_size"])
        train_loader = torch.utils.data.DataLoader(train, batch_size=self.batch_size, drop_last=True)
        test_loader = torch.utils.data.DataLoader(test, batch_size=self.batch_size, drop_last=True)
        return train_loader, test_loader

    def info(self):
        return {"batch_size": self.batch_size, "input_size": 2, "output_size": 1}
