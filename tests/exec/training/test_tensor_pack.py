"""Many small tensors saved as a few (mosaic.exec.training.tensor_pack)."""

from __future__ import annotations

from pathlib import Path

import torch


def test_a_packed_optimizer_state_comes_back_bit_for_bit(tmp_path: Path) -> None:
    from mosaic.exec.training import tensor_pack

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).sum().backward()
        optimizer.step()
    state = optimizer.state_dict()
    torch.save(tensor_pack.pack(state), tmp_path / "p.pt")
    back = tensor_pack.unpack(torch.load(tmp_path / "p.pt", weights_only=True))
    assert back["param_groups"] == state["param_groups"] and back["param_groups"][0]["betas"] == (0.9, 0.999)
    for index, entry in state["state"].items():
        for key, tensor in entry.items():
            assert back["state"][index][key].dtype == tensor.dtype
            assert torch.equal(back["state"][index][key], tensor) and back["state"][index][key].shape == tensor.shape
