"""A short CUDA training loop with an artificial data-loading stall (for tests/gpu).

Trains a small MLP for argv[1] steps; every 10th step, stall_loading() spends
~0.3 s of pure-Python CPU work preparing data while the GPU has nothing to do.
"""

import sys
import time

import torch


def stall_loading(seconds: float) -> torch.Tensor:
    deadline = time.monotonic() + seconds
    total = 0
    while time.monotonic() < deadline:
        for i in range(5000):
            total += i * i
    return torch.randn(4096, 1024)


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    return loss


def main(steps: int) -> None:
    dev = torch.device("cuda")
    model = torch.nn.Sequential(
        torch.nn.Linear(1024, 4096),
        torch.nn.ReLU(),
        torch.nn.Linear(4096, 4096),
        torch.nn.ReLU(),
        torch.nn.Linear(4096, 1024),
    ).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(4096, 1024, device=dev), torch.randn(4096, 1024, device=dev)
    for step in range(steps):
        if step % 10 == 0:
            x = stall_loading(0.3).to(dev)
        for _ in range(20):
            train_step(model, opt, x, y)
        torch.cuda.synchronize()
    print("done", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
