"""PyTorch's train-mid (../shared/PERF.md): nn.LSTM(64, 128) in float32 on x [50, 32, 64],
forward and backward of loss = sum of the outputs, median of 21 runs after 3 of warm-up.

    python benches/peers/train_mid.py [threads]
"""
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
torch.manual_seed(0)
m = torch.nn.LSTM(64, 128)
x = torch.rand(50, 32, 64) * 2 - 1
times = []
for k in range(24):
    t0 = time.perf_counter()
    m.zero_grad()
    y, _ = m(x)
    y.sum().backward()
    if k >= 3:
        times.append((time.perf_counter() - t0) * 1e3)
times.sort()
print(f"pytorch train-mid forward + backward ({torch.get_num_threads()} thread): "
      f"{times[len(times) // 2]:.2f} ms")
