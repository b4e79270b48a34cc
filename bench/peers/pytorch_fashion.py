"""The trainer's recipe in PyTorch, for a side-by-side speed comparison.

Same networks (leaky ReLU 0.01, conv-net with grouped conv2 and dropout 0.5, conv-blur-net with
max pool stride 1 and a fixed [1 2 1] x [1 2 1] / 16 blur, stride 2, zero padding 1), same
mini-batch, Adam at learning rate 0.005 (torch.optim.Adam), float32, the CPU build.

Prints one JSON object: training images per second of each timed run after one warm-up run.

    python3 bench/peers/pytorch_fashion.py --net conv-net --threads 2 --steps 4 --runs 3
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEARCH = [
    os.environ.get("FASHION_MNIST_DIR", ""),
    os.path.join(os.path.dirname(__file__), "..", "..", "data", "fashion_mnist"),
    "/usr/share/datasets/fashion-mnist",
]


def read_idx(directory, name):
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as handle:
                return handle.read()
    return None


def load_training_images(count):
    """Returns (images [count, 1, 28, 28] in [0, 1], labels [count]) and the data kind."""
    for directory in SEARCH:
        if not directory or not os.path.isdir(directory):
            continue
        images = read_idx(directory, "train-images-idx3-ubyte")
        labels = read_idx(directory, "train-labels-idx1-ubyte")
        if images is None or labels is None:
            continue
        pixels = np.frombuffer(images, dtype=np.uint8, offset=16)[: count * 784]
        x = torch.from_numpy(pixels.astype(np.float32) / 255).reshape(count, 1, 28, 28)
        y = torch.from_numpy(np.frombuffer(labels, dtype=np.uint8, offset=8)[:count].astype(np.int64))
        return x, y, "fashion-mnist"
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(count, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (count,), generator=generator)
    return x, y, "synthetic"


class Blur(nn.Module):
    def __init__(self, channels):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = (taps[:, None] * taps[None, :]) / 16
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).contiguous())
        self.channels = channels

    def forward(self, x):
        return F.conv2d(x, self.kernel, stride=2, padding=1, groups=self.channels)


def build(net):
    act = lambda: nn.LeakyReLU(0.01)
    if net == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    if net == "single-layer":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), act(), nn.Linear(300, 10))
    if net == "conv-net":
        pool1, pool2 = [nn.MaxPool2d(2, 2)], [nn.MaxPool2d(2, 2)]
    else:
        pool1 = [nn.MaxPool2d(2, 1), Blur(16)]
        pool2 = [nn.MaxPool2d(2, 1), Blur(32)]
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), act(), *pool1,
        nn.Conv2d(16, 32, 3, padding=1, groups=2), act(), *pool2,
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(1568, 128), act(), nn.Linear(128, 10),
    )


def timed_run(model, optimizer, x, y, batch):
    started = time.perf_counter()
    for start in range(0, x.shape[0], batch):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[start:start + batch]), y[start:start + batch])
        loss.backward()
        optimizer.step()
    return x.shape[0] / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="conv-net",
                        choices=["linear", "single-layer", "conv-net", "conv-blur-net"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mini-batch-size", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y, kind = load_training_images(args.steps * args.mini_batch_size)
    model = build(args.net)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005, betas=(0.9, 0.999), eps=1e-8,
                                 weight_decay=1e-8)
    timed_run(model, optimizer, x, y, args.mini_batch_size)  # warm-up
    rates = [timed_run(model, optimizer, x, y, args.mini_batch_size) for _ in range(args.runs)]
    print(json.dumps({
        "net": args.net, "threads": args.threads, "miniBatchSize": args.mini_batch_size,
        "steps": args.steps, "imagesPerSecond": rates, "data": kind,
        "torch": torch.__version__, "interopThreads": torch.get_num_interop_threads(),
    }))


if __name__ == "__main__":
    main()
