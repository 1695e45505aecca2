"""Writes a TorchScript teacher for BasicMotions-shaped input ([batch, 6, 100] -> 4 logits).

The weights are random but seeded; the point is to check that kdstore runs an exported module and
stores exactly the logits PyTorch computes. Usage: make_teacher.py OUT.pt
"""
import sys

import torch


class Teacher(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(6, 16, kernel_size=5, padding=2)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(x)).mean(dim=2)
        return self.head(features) * 3.0


torch.manual_seed(0)
module = torch.jit.script(Teacher().eval())
module.save(sys.argv[1])
