"""Writes a TorchScript teacher for BasicMotions-shaped input ([batch, 6, 100] -> 4 logits).

The weights are random but seeded; the point is to check that kdstore runs an exported module and
stores exactly the logits PyTorch computes. Usage: make_teacher.py OUT.pt [--nan-when-first-value-above X]

With --nan-when-first-value-above, the logits are NaN for every input whose first value exceeds X
(a teacher that breaks on some inputs, for the test that the build refuses non-finite outputs).
"""
import sys

import torch


class Teacher(torch.nn.Module):
    def __init__(self, nan_above: float) -> None:
        super().__init__()
        self.nan_above = nan_above
        self.conv = torch.nn.Conv1d(6, 16, kernel_size=5, padding=2)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(x)).mean(dim=2)
        logits = self.head(features) * 3.0
        broken = (x[:, 0, 0] > self.nan_above).unsqueeze(1)
        return torch.where(broken, torch.full_like(logits, float("nan")), logits)


torch.manual_seed(0)
nan_above = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--nan-when-first-value-above" else float("inf")
module = torch.jit.script(Teacher(nan_above).eval())
module.save(sys.argv[1])
