"""Loads a checkpoint of `lstm_train::Trainer` (an nn.LSTM called `lstm` and an nn.Linear
called `head`) into PyTorch and checks that its predictions equal the ones Rust wrote.

    python docs/snippets/load_in_pytorch.py MODEL.safetensors X.npy PRED.npy
"""
import sys

import numpy as np
import torch
from safetensors.torch import load_file

model_path, x_path, pred_path = sys.argv[1:4]
state = load_file(model_path)
hidden = state["lstm.weight_hh_l0"].shape[1]
inputs = state["lstm.weight_ih_l0"].shape[1]
outputs = state["head.weight"].shape[0]


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(inputs, hidden)
        self.head = torch.nn.Linear(hidden, outputs)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[-1])


m = Model().double() if state["head.weight"].dtype == torch.float64 else Model()
m.load_state_dict(state, strict=True)
x = torch.from_numpy(np.load(x_path))
with torch.no_grad():
    ours = np.load(pred_path)
    theirs = m(x).numpy()
err = np.abs(ours - theirs).max()
print(f"largest difference between Rust and PyTorch: {err:.3g}")
sys.exit(0 if err < 1e-5 else 1)
