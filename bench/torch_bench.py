#!/usr/bin/python3
"""torch_bench.py - the lunet benchmark's workload in PyTorch, for the speed ratio.

The study's CNN (PyTorch's MNIST example net), NLL loss, SGD lr 0.01 momentum 0.5, on
the first 3000 MNIST training images read from $MNIST_DIR's gz files and normalised
like lunet (x/255 - 0.1307) / 0.3081; random images when MNIST_DIR is unset. Batches
are cut from a tensor in memory after a per-epoch shuffle (no DataLoader), so PyTorch
is measured at its best.

  torch_bench.py --batch 64 --threads 1 --epochs 3      one measurement, prints samples/s
  torch_bench.py --serve                                reads "batch threads epochs [max_s]"
                                                        lines on stdin, answers one line
                                                        each: samples/s (or "error ...")
A measurement stops early after max_s seconds (if given): on a busy machine PyTorch on
2 threads at batch 1 can crawl.
The server mode lets bench/bench.lua interleave PyTorch and lunet measurements
without paying Python's start-up for each one.
"""
import argparse
import gzip
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

N_IMAGES = 3000


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def find(d, base):
    for name in (base + ".gz", base):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


def load_data():
    d = os.environ.get("MNIST_DIR")
    if d:
        ip = find(d, "train-images-idx3-ubyte")
        lp = find(d, "train-labels-idx1-ubyte")
        if ip and lp:
            (n, h, w), pix = read_idx(ip)
            _, lab = read_idx(lp)
            n = min(n, N_IMAGES)
            x = torch.frombuffer(bytearray(pix[:n * h * w]), dtype=torch.uint8).float()
            x = ((x / 255.0 - 0.1307) / 0.3081).reshape(n, 1, h, w)
            y = torch.frombuffer(bytearray(lab[:n]), dtype=torch.uint8).long()
            return x, y, "mnist"
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N_IMAGES, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (N_IMAGES,), generator=g)
    return x, y, "random"


def measure(x, y, batch, threads, epochs, max_seconds):
    """Samples per second over `epochs` epochs, or over the steps done when
    max_seconds (> 0) runs out first (a busy machine must not stall the bench)."""
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = Net()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    n = x.shape[0]
    done = 0
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = F.nll_loss(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            done += idx.shape[0]
            if max_seconds > 0 and time.perf_counter() - start > max_seconds:
                return done / (time.perf_counter() - start)
    return done / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=0.0)
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    x, y, source = load_data()
    if not a.serve:
        print("%.1f" % measure(x, y, a.batch, a.threads, a.epochs, a.max_seconds))
        return
    print("ready torch %s %s" % (torch.__version__, source), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "quit":
            break
        try:
            b, t, e = (int(v) for v in parts[:3])
            cap = float(parts[3]) if len(parts) > 3 else 0.0
            print("%.1f" % measure(x, y, b, t, e, cap), flush=True)
        except Exception as exc:  # answer every request, so the caller never blocks
            print("error %s" % exc, flush=True)


if __name__ == "__main__":
    main()
