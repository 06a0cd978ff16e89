#!/usr/bin/python3
"""torch_bench.py - the lunet benchmark's workloads in PyTorch, for the speed ratios.

Nets (--net):
  study    the study's CNN (PyTorch's MNIST example net), NLL loss, SGD lr 0.01 momentum
           0.5, on the first 3000 MNIST training images read from $MNIST_DIR's gz files
           and normalised like lunet (x/255 - 0.1307) / 0.3081; random images when
           MNIST_DIR is unset;
  cifar    the CIFAR-shaped net of issue 19 (3x32x32: conv 3-32 3x3 pad 1, relu, maxpool
           2, conv 32-64 3x3 pad 1, relu, maxpool 2, linear 4096-128, relu, linear
           128-10), SGD lr 0.01 momentum 0.9, 1024 random images;
  fashion  the Fashion-MNIST benchmark's reference CNN (conv 1-32 5x5 pad 2, relu,
           maxpool 2, conv 32-64 5x5 pad 2, relu, maxpool 2, linear 3136-1024, relu,
           dropout 0.4, linear 1024-10), Adam lr 1e-3, on the first 1024 images of
           /usr/share/datasets/fashion-mnist (random ones if it is missing);
  pool3max, pool3avg  the cifar net with 3x3 stride-2 max or average poolings (32 ->
           15 -> 7, linear 3136-128), the same data and optimizer;
  mlpbn    linear 784-512, batchnorm1d, relu, linear 512-256, batchnorm1d, relu, linear
           256-10, Adam lr 1e-3, on the study's images;
  strided  3x32x32: conv 3-32 and 32-64 3x3 stride 2 pad 1, each with a relu, linear
           4096-10, SGD lr 0.01 momentum 0.9, the cifar net's data.
Batches are cut from a tensor in memory after a per-epoch shuffle (no DataLoader), so
PyTorch is measured at its best.

  torch_bench.py --batch 64 --threads 1 --epochs 3      one measurement, prints samples/s
  torch_bench.py --serve                                reads "net batch threads epochs
                                                        [max_s]" lines on stdin, answers
                                                        one line each: samples/s (or
                                                        "error ...")
  torch_bench.py --blas                                 the BLAS PyTorch was built with
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


class TwoConvNet(nn.Module):
    """The cifar, fashion and pool3 nets: two blocks of conv (k x k, padding pad) - relu -
    pool (2x2 max pooling unless given), then linear flat-hidden - relu - dropout (when
    dropout > 0) - linear hidden-10."""

    def __init__(self, in_channels, k, pad, flat, hidden, dropout=0.0, pool=lambda x: F.max_pool2d(x, 2)):
        super().__init__()
        self.pool = pool
        self.conv1 = nn.Conv2d(in_channels, 32, k, padding=pad)
        self.conv2 = nn.Conv2d(32, 64, k, padding=pad)
        self.fc1 = nn.Linear(flat, hidden)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return F.log_softmax(self.fc2(x), dim=1)


def mlp_bn():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 256),
                         nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 10), nn.LogSoftmax(dim=1))


def strided():
    return nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(64 * 8 * 8, 10), nn.LogSoftmax(dim=1))


NETS = {
    "study": (Net, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.5)),
    "cifar": (lambda: TwoConvNet(3, 3, 1, 4096, 128), lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    "fashion": (lambda: TwoConvNet(1, 5, 2, 3136, 1024, 0.4), lambda p: torch.optim.Adam(p, lr=1e-3)),
    # the cifar net with 3x3 stride-2 poolings (32 -> 15 -> 7)
    "pool3max": (lambda: TwoConvNet(3, 3, 1, 3136, 128, pool=lambda x: F.max_pool2d(x, 3, 2)),
                 lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    "pool3avg": (lambda: TwoConvNet(3, 3, 1, 3136, 128, pool=lambda x: F.avg_pool2d(x, 3, 2)),
                 lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    "mlpbn": (mlp_bn, lambda p: torch.optim.Adam(p, lr=1e-3)),
    "strided": (strided, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
}


def blas_info():
    """The BLAS PyTorch was built for (torch.__config__.show(); Debian's is "generic",
    the libblas.so.3 the alternatives system points at) and the BLAS libraries this
    process has actually loaded (/proc/self/maps)."""
    built = "unknown"
    for part in torch.__config__.show().replace("\n", ",").split(","):
        if "BLAS_INFO" in part:
            built = part.split("=")[-1].strip()
    torch.zeros(2, 2) @ torch.zeros(2, 2)  # make sure the BLAS is loaded
    loaded = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "blas" in os.path.basename(path).lower() and path.startswith("/"):
                    loaded.add(os.path.realpath(path))
    except OSError:
        pass
    return "BLAS_INFO=%s, loaded: %s" % (built, " ".join(sorted(loaded)) or "none")


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


def random_data(n, c, h, w):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, c, h, w, generator=g), torch.randint(0, 10, (n,), generator=g)


def load_data(net="study"):
    if net in ("cifar", "pool3max", "pool3avg", "strided"):
        x, y = random_data(1024, 3, 32, 32)
        return x, y, "random"
    mnist = net in ("study", "mlpbn")
    d = os.environ.get("MNIST_DIR") if mnist else "/usr/share/datasets/fashion-mnist"
    n_max = N_IMAGES if mnist else 1024
    if d:
        ip = find(d, "train-images-idx3-ubyte")
        lp = find(d, "train-labels-idx1-ubyte")
        if ip and lp:
            (n, h, w), pix = read_idx(ip)
            _, lab = read_idx(lp)
            n = min(n, n_max)
            x = torch.frombuffer(bytearray(pix[:n * h * w]), dtype=torch.uint8).float()
            x = ((x / 255.0 - 0.1307) / 0.3081).reshape(n, 1, h, w)
            y = torch.frombuffer(bytearray(lab[:n]), dtype=torch.uint8).long()
            return x, y, "mnist"
    x, y = random_data(n_max, 1, 28, 28)
    return x, y, "random"


def measure(x, y, batch, threads, epochs, max_seconds, net="study"):
    """Samples per second over `epochs` epochs, or over the steps done when
    max_seconds (> 0) runs out first (a busy machine must not stall the bench)."""
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    make, optimizer = NETS[net]
    model = make()
    model.train()
    opt = optimizer(model.parameters())
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
    ap.add_argument("--net", default="study", choices=sorted(NETS))
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--blas", action="store_true")
    a = ap.parse_args()
    if a.blas:
        print(blas_info())
        return
    data = {a.net: load_data(a.net)}
    if not a.serve:
        x, y, _ = data[a.net]
        print("%.1f" % measure(x, y, a.batch, a.threads, a.epochs, a.max_seconds, a.net))
        return
    print("ready torch %s %s (%s)" % (torch.__version__, data[a.net][2], blas_info()), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "quit":
            break
        try:
            net = parts.pop(0) if parts[0] in NETS else "study"
            if net not in data:
                data[net] = load_data(net)
            x, y, _ = data[net]
            b, t, e = (int(v) for v in parts[:3])
            cap = float(parts[3]) if len(parts) > 3 else 0.0
            print("%.1f" % measure(x, y, b, t, e, cap, net), flush=True)
        except Exception as exc:  # answer every request, so the caller never blocks
            print("error %s" % exc, flush=True)


if __name__ == "__main__":
    main()
