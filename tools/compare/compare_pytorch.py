#!/usr/bin/env python3
"""PyTorch side of tools/compare/compare_pytorch.lua (development only; needs python3-torch).

Trains the study's CNN (PyTorch's MNIST example net) on the first N MNIST training
images, R independent runs, and writes the per-epoch mean losses and final test
accuracies as a lunet result file (format "lunet-result"), so lunet.load_result()
reads it and both engines' curves go through the same statistics and plots.

Each run uses torch.manual_seed(seed * 1000 + r): its own initialisation, shuffling
and dropout. The epoch loss is the sample-weighted mean of the batch losses, as lunet's.
"""
import argparse
import gzip
import json
import math
import multiprocessing as mp
import os
import platform
import struct
import time


def read_idx(path):
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    assert zero == 0 and dtype == 8, path + ": not a ubyte IDX file"
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def load(mnist_dir, split, n):
    import torch
    prefix = "train" if split == "train" else "t10k"
    dims, pixels = read_idx(os.path.join(mnist_dir, prefix + "-images-idx3-ubyte.gz"))
    _, labels = read_idx(os.path.join(mnist_dir, prefix + "-labels-idx1-ubyte.gz"))
    count = dims[0] if n is None else n
    x = torch.frombuffer(bytearray(pixels[:count * 784]), dtype=torch.uint8).float()
    x = ((x / 255.0 - 0.1307) / 0.3081).reshape(count, 1, 28, 28)
    y = torch.frombuffer(bytearray(labels[:count]), dtype=torch.uint8).long()
    return x, y


def make_net():
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(10, 20, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(320, 50), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(50, 10), nn.LogSoftmax(dim=1))


def one_run(job):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    args, r = job
    x, y = load(args.mnist_dir, "train", args.n)
    tx, ty = load(args.mnist_dir, "test", None)
    seed = args.seed * 1000 + r
    torch.manual_seed(seed)
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=args.momentum)
    losses = []
    start = time.time()
    diverged = False
    for _ in range(args.iterations):
        net.train()
        order = torch.randperm(len(x))
        total, count = 0.0, 0
        for b in range(0, len(x), args.batch):
            idx = order[b:b + args.batch]
            opt.zero_grad()
            loss = F.nll_loss(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        losses.append(total / count)
        if not math.isfinite(losses[-1]):
            diverged = True
            break
    net.eval()
    with torch.no_grad():
        out = net(tx)
        test_loss = F.nll_loss(out, ty).item()
        test_acc = (out.argmax(1) == ty).float().mean().item()
    return {"index": r + 1, "seed": seed, "loss": losses, "diverged": diverged,
            "test_loss": test_loss, "test_accuracy": test_acc,
            "seconds": time.time() - start}


def dump_init(args):
    """Writes the initial parameters of every run (what one_run starts from) as JSON:
    {"runs": [{"index", "seed", "params": {"<lunet layer>": {"weight": {"shape", "data"}}}}]}.
    The Sequential's module i is lunet's layer i + 1 (the nets have the same layers)."""
    import torch
    runs = []
    for r in range(args.runs):
        seed = args.seed * 1000 + r
        torch.manual_seed(seed)
        net = make_net()
        params = {}
        for name, t in net.named_parameters():
            module, kind = name.split(".")
            params.setdefault(str(int(module) + 1), {})[kind] = {
                "shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}
        runs.append({"index": r + 1, "seed": seed, "params": params})
    tmp = args.dump_init + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"format": "pytorch-initial-parameters", "seed": args.seed, "runs": runs}, f)
    os.replace(tmp, args.dump_init)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mnist-dir", required=True)
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--name", default="pytorch")
    p.add_argument("--out")
    p.add_argument("--dump-init", help="write each run's initial parameters to this file and stop")
    args = p.parse_args()
    if args.dump_init:
        dump_init(args)
        return
    if not args.out:
        p.error("--out is required")
    import torch
    start = time.time()
    with mp.get_context("spawn").Pool(args.threads) as pool:
        runs = pool.map(one_run, [(args, r) for r in range(args.runs)])
    result = {
        "format": "lunet-result", "version": 1, "name": args.name,
        "config": {"engine": "pytorch", "optimizer": "sgd", "lr": args.lr, "momentum": args.momentum,
                   "batch": args.batch, "iterations": args.iterations, "unit": "epoch",
                   "runs": args.runs, "n": args.n, "loss": "nll", "seed": args.seed},
        "provenance": {"torch": torch.__version__, "python": platform.python_version(),
                       "threads": args.threads, "seconds": time.time() - start},
        "runs": runs,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, args.out)
    print("%s: %d runs in %.0f s -> %s" % (args.name, args.runs, time.time() - start, args.out))


if __name__ == "__main__":
    main()
