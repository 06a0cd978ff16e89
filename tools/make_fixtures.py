#!/usr/bin/python3
"""Generate the PyTorch reference fixtures that lunet's specs compare against.

Usage:  /usr/bin/python3 tools/make_fixtures.py spec/fixtures

Writes one JSON file per case (plus index.json) into the given directory and prints
one line per file. Deterministic: every case seeds torch with a fixed seed derived
from its name, and torch runs single-threaded with deterministic algorithms.

Number encoding (see spec/fixtures/README.md): every tensor element and float scalar
is written as the SHORTEST decimal that, parsed as a double and then rounded to
float32, gives back exactly the float32 value torch held. Values we choose (inputs,
parameters, upstream gradients, optimizer gradients) are first rounded to 4
significant digits, so they are short; the tensor torch then used is float32(value).
"""

import json
import math
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "lunet-fixture"
VERSION = 1

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# --------------------------------------------------------------- encoding

def f32(v):
    """Shortest decimal (as a Python float) that round-trips to the float32 value v
    through double parsing. Falls back to the exact double value if it would not."""
    x = np.float32(v)
    if not math.isfinite(float(x)):
        raise ValueError("non-finite value %r" % (float(x),))
    s = float(str(x))
    if np.float32(s) != x:  # the double-rounding path a consumer takes
        s = float(x)
        assert np.float32(s) == x
    return s


def tensor(t):
    t = t.detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "data": [f32(v) for v in t.flatten().tolist()]}


def vector(t):
    return [f32(v) for v in t.detach().to(torch.float32).flatten().tolist()]


def quantize(t, sig=4):
    """Round every element to `sig` significant decimal digits, return float32 tensor."""
    flat = t.detach().double().flatten().tolist()
    q = [float("%.*e" % (sig - 1, v)) for v in flat]
    return torch.tensor(q, dtype=torch.float32).reshape(t.shape)


def randn(*shape, scale=1.0, shift=0.0, sig=4):
    return quantize(torch.randn(*shape) * scale + shift, sig)


def seed_for(name):
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def header(name, kind, seed):
    return {"format": FORMAT, "version": VERSION, "name": name, "kind": kind,
            "torch_version": torch.__version__, "seed": seed}


# ----------------------------------------------------------------- layers

def set_params(module, names):
    """Replace each named parameter with a quantised copy of its PyTorch default init
    (batchnorm: random nontrivial weight/bias instead of 1/0)."""
    with torch.no_grad():
        for n in names:
            p = getattr(module, n)
            p.copy_(quantize(p))


def layer_case(name, spec, module, input_t, training=True, param_names=(),
               buffer_names=(), grad_output=None, check_distinct=False):
    module.train(training)
    x = input_t.clone().requires_grad_(True)
    if check_distinct:
        flat = input_t.flatten().tolist()
        assert len(set(flat)) == len(flat), name + ": input has ties"
    params = {n: tensor(getattr(module, n)) for n in param_names}
    for n in buffer_names:
        params[n] = tensor(getattr(module, n))
    y = module(x)
    if grad_output is None:
        grad_output = randn(*y.shape)
    y.backward(grad_output)
    case = {
        "layer": spec,
        "training": training,
        "input": tensor(input_t),
        "params": params,
        "output": tensor(y),
        "grad_output": tensor(grad_output),
        "grad_input": tensor(x.grad),
        "grads": {n: tensor(getattr(module, n).grad) for n in param_names},
    }
    if buffer_names and training:
        case["params_after"] = {n: tensor(getattr(module, n)) for n in buffer_names}
    return case


def conv_case(cin, cout, k, s, p, bias, batch, hw, scale=1.0):
    def make(name):
        m = nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=bias)
        set_params(m, ["weight", "bias"] if bias else ["weight"])
        x = randn(batch, cin, hw, hw)
        spec = {"kind": "conv2d", "in_channels": cin, "out_channels": cout, "kernel": k,
                "stride": s, "padding": p, "bias": bias}
        return layer_case(name, spec, m, x,
                          param_names=["weight", "bias"] if bias else ["weight"])
    return make


def pool_case(kind, k, s, batch, c, hw):
    def make(name):
        m = (nn.MaxPool2d if kind == "maxpool2d" else nn.AvgPool2d)(k, stride=s)
        x = randn(batch, c, hw, hw, sig=5)
        return layer_case(name, {"kind": kind, "kernel": k, "stride": s}, m, x,
                          check_distinct=(kind == "maxpool2d"))
    return make


def act_case(kind, module_cls):
    def make(name):
        x = randn(2, 3, 4, 4, scale=2.0)
        if kind == "relu":
            # keep every input away from the kink at 0
            x = torch.where(x.abs() < 0.05, x.sign() * 0.05 + x, x)
            x = quantize(x)
            assert bool((x != 0).all())
        return layer_case(name, {"kind": kind}, module_cls(), x)
    return make


def leaky_relu_case(negative_slope):
    """LeakyReLU; negative_slope None: the layer dict leaves it out (PyTorch's 0.01)."""
    def make(name):
        x = randn(2, 3, 4, 4, scale=2.0)
        # keep every input away from the kink at 0
        x = quantize(torch.where(x.abs() < 0.05, x.sign() * 0.05 + x, x))
        assert bool((x != 0).all())
        if negative_slope is None:
            return layer_case(name, {"kind": "leaky_relu"}, nn.LeakyReLU(), x)
        return layer_case(name, {"kind": "leaky_relu", "negative_slope": negative_slope},
                          nn.LeakyReLU(negative_slope), x)
    return make


def linear_case(fin, fout, bias, batch):
    def make(name):
        m = nn.Linear(fin, fout, bias=bias)
        names = ["weight", "bias"] if bias else ["weight"]
        set_params(m, names)
        x = randn(batch, fin)
        spec = {"kind": "linear", "in_features": fin, "out_features": fout, "bias": bias}
        return layer_case(name, spec, m, x, param_names=names)
    return make


def flatten_case(name):
    return layer_case(name, {"kind": "flatten"}, nn.Flatten(), randn(2, 3, 4, 4))


def dropout_eval_case(kind, module_cls):
    def make(name):
        return layer_case(name, {"kind": kind, "p": 0.5}, module_cls(0.5),
                          randn(2, 3, 4, 4), training=False)
    return make


def log_softmax_case(name):
    x = randn(4, 10, scale=2.0)
    x[1, 3] = 50.0                                   # one dominant logit
    x[2] = quantize(x[2] + 50.0)                     # every logit large
    x[3] = quantize(x[3] * 20.0)                     # wide spread
    x[3, 0] = 100.0                                  # exp(100) overflows float32
    x[3, 9] = -100.0
    return layer_case(name, {"kind": "log_softmax"}, nn.LogSoftmax(dim=1), x)


def batchnorm_case(kind, training):
    def make(name):
        eps, momentum = 1e-5, 0.1
        if kind == "batchnorm2d":
            features = 3
            m = nn.BatchNorm2d(features, eps=eps, momentum=momentum)
            x = randn(4, features, 5, 5)
            x = quantize(x * torch.tensor([2.0, 0.5, 1.0]).view(1, 3, 1, 1)
                         + torch.tensor([1.0, -3.0, 0.25]).view(1, 3, 1, 1))
        else:
            features = 4
            m = nn.BatchNorm1d(features, eps=eps, momentum=momentum)
            x = randn(6, features)
            x = quantize(x * torch.tensor([2.0, 0.5, 1.0, 3.0])
                         + torch.tensor([1.0, -3.0, 0.25, 0.0]))
        with torch.no_grad():
            m.weight.copy_(quantize(1.0 + 0.5 * torch.randn(features)))
            m.bias.copy_(quantize(0.5 * torch.randn(features)))
            m.running_mean.copy_(quantize(torch.randn(features)))
            m.running_var.copy_(quantize(0.5 + torch.rand(features) * 2.0))
        spec = {"kind": kind, "features": features, "eps": eps, "momentum": momentum}
        return layer_case(name, spec, m, x, training=training,
                          param_names=["weight", "bias"],
                          buffer_names=["running_mean", "running_var"])
    return make


# ----------------------------------------------------------------- losses

def loss_case(loss, large=False, onehot=False):
    def make(name):
        batch, classes = 5, 10
        labels = torch.randint(0, classes, (batch,))
        case = {"loss": loss}
        if loss == "nll":
            logits = randn(batch, classes, scale=2.0)
            inp = F.log_softmax(logits, dim=1).detach()
        elif loss == "cross_entropy":
            inp = randn(batch, classes, scale=2.0)
            if large:
                inp[0] = quantize(inp[0] + 50.0)
                inp[1, 2] = 100.0
                inp[2, 7] = -100.0
        else:
            inp = randn(batch, classes)
        x = inp.clone().requires_grad_(True)
        if loss == "nll":
            value = F.nll_loss(x, labels, reduction="mean")
        elif loss == "cross_entropy":
            value = F.cross_entropy(x, labels, reduction="mean")
        else:
            if onehot:
                target = F.one_hot(labels, classes).to(torch.float32)
            else:
                target = randn(batch, classes)
            value = F.mse_loss(x, target, reduction="mean")
        value.backward()
        case["reduction"] = "mean"
        case["input"] = tensor(inp)
        if loss in ("nll", "cross_entropy") or onehot:
            case["labels"] = [int(v) for v in labels.tolist()]
        if loss == "mse":
            case["target"] = tensor(target)
            case["target_from_labels"] = onehot
        case["value"] = f32(value.item())
        case["grad_input"] = tensor(x.grad)
        return case
    return make


# ------------------------------------------------------------- optimizers

def optim_case(optimizer, **options):
    def make(name):
        n, steps = 7, 5
        initial = randn(n)
        grads = [randn(n) for _ in range(steps)]
        p = nn.Parameter(initial.clone())
        if optimizer == "sgd":
            opt = torch.optim.SGD([p], **options)
            keys = ["lr", "momentum", "dampening", "nesterov", "weight_decay"]
        elif optimizer == "adam":
            opt = torch.optim.Adam([p], **options)
            keys = ["lr", "betas", "eps", "weight_decay", "amsgrad"]
        else:
            opt = torch.optim.AdamW([p], **options)
            keys = ["lr", "betas", "eps", "weight_decay", "amsgrad"]
        group = opt.param_groups[0]
        opts = {}
        for k in keys:
            v = group[k]
            opts[k] = list(v) if isinstance(v, tuple) else v
        assert not opts.get("amsgrad", False)
        out = []
        for g in grads:
            opt.zero_grad()
            p.grad = g.clone()
            opt.step()
            out.append(vector(p))
        return {"optimizer": optimizer, "options": opts, "initial": vector(initial),
                "grads": [vector(g) for g in grads], "steps": out}
    return make


# -------------------------------------------------------------------- net

NET_LAYERS = [
    {"kind": "conv2d", "in_channels": 1, "out_channels": 10, "kernel": 5, "stride": 1,
     "padding": 0, "bias": True},
    {"kind": "maxpool2d", "kernel": 2, "stride": 2},
    {"kind": "relu"},
    {"kind": "conv2d", "in_channels": 10, "out_channels": 20, "kernel": 5, "stride": 1,
     "padding": 0, "bias": True},
    {"kind": "dropout2d", "p": 0.5},
    {"kind": "maxpool2d", "kernel": 2, "stride": 2},
    {"kind": "relu"},
    {"kind": "flatten"},
    {"kind": "linear", "in_features": 320, "out_features": 50, "bias": True},
    {"kind": "relu"},
    {"kind": "dropout", "p": 0.5},
    {"kind": "linear", "in_features": 50, "out_features": 10, "bias": True},
    {"kind": "log_softmax"},
]


def make_net():
    net = nn.Sequential(
        nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(10, 20, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(320, 50), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(50, 10), nn.LogSoftmax(dim=1))
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            set_params(m, ["weight", "bias"])
    net.eval()
    return net


def net_param_dict(net, grad=False):
    out = {}
    for i, m in enumerate(net):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out[str(i + 1)] = {
                "weight": tensor(m.weight.grad if grad else m.weight),
                "bias": tensor(m.bias.grad if grad else m.bias)}
    return out


def net_case(name):
    net = make_net()
    x = randn(4, 1, 28, 28)
    labels = torch.randint(0, 10, (4,))
    params = net_param_dict(net)
    xi = x.clone().requires_grad_(True)
    out = net(xi)
    loss = F.nll_loss(out, labels)
    loss.backward()
    return {"training": False, "layers": NET_LAYERS, "params": params,
            "input": tensor(x), "labels": [int(v) for v in labels.tolist()],
            "output": tensor(out), "loss_kind": "nll", "loss": f32(loss.item()),
            "grads": net_param_dict(net, grad=True), "grad_input": tensor(xi.grad)}


def net_train_case(name):
    net = make_net()
    x = randn(8, 1, 28, 28)
    labels = torch.randint(0, 10, (8,))
    params = net_param_dict(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = F.nll_loss(net(x), labels)
        loss.backward()
        opt.step()
        losses.append(f32(loss.item()))
    with torch.no_grad():
        loss_after = F.nll_loss(net(x), labels)
    g = opt.param_groups[0]
    return {"training": False, "layers": NET_LAYERS, "params": params,
            "input": tensor(x), "labels": [int(v) for v in labels.tolist()],
            "loss_kind": "nll",
            "optimizer": "sgd",
            "options": {"lr": g["lr"], "momentum": g["momentum"],
                        "dampening": g["dampening"], "nesterov": g["nesterov"],
                        "weight_decay": g["weight_decay"]},
            "steps": 3, "losses": losses, "loss_after": f32(loss_after.item()),
            "final_params": net_param_dict(net)}


# -------------------------------------------------------------- schedules

# Each schedule as lunet writes it, and the torch.optim.lr_scheduler that it stands for.
SCHEDULES = [
    ({"kind": "step", "step_size": 3, "gamma": 0.5},
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    ({"kind": "step", "step_size": 1, "gamma": 0.9},
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.9)),
    ({"kind": "multistep", "milestones": [2, 5, 5, 9], "gamma": 0.3},
     lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3)),
    ({"kind": "exponential", "gamma": 0.8},
     lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8)),
    ({"kind": "cosine", "t_max": 7, "eta_min": 0.0},
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.0)),
    ({"kind": "cosine", "t_max": 5, "eta_min": 0.002},
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=0.002)),
]


def schedule_case(name):
    """The rate every scheduler gives at t = 0 .. 24 (t = scheduler.step() calls so far):
    get_last_lr() before each step, as a training loop sees it. Rates are Python floats
    (doubles), written exactly (json's repr), not rounded to float32."""
    out = []
    for spec, make in SCHEDULES:
        param = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([param], lr=0.1)
        sched = make(opt)
        lrs = []
        for _ in range(25):
            lrs.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        out.append({"schedule": spec, "lr": 0.1, "lrs": lrs})
    return {"schedules": out}


TRAIN_LAYERS = [
    {"kind": "conv2d", "in_channels": 1, "out_channels": 4, "kernel": 5, "stride": 1,
     "padding": 0, "bias": True},
    {"kind": "maxpool2d", "kernel": 2, "stride": 2},
    {"kind": "relu"},
    {"kind": "flatten"},
    {"kind": "linear", "in_features": 576, "out_features": 10, "bias": True},
    {"kind": "log_softmax"},
]


def train_schedule_case(optimizer, options, schedule, make_sched, unit, iterations):
    """net:train{batch = 4, shuffle = false} over 8 samples (2 steps per epoch) with a
    schedule stepped per step or per epoch, as a PyTorch loop does it: the losses of
    every step, the rate every step used, and the final parameters."""
    def build(name):
        net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                            nn.Linear(576, 10), nn.LogSoftmax(dim=1))
        for m in net:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                set_params(m, ["weight", "bias"])
        x = randn(8, 1, 28, 28)
        labels = torch.randint(0, 10, (8,))
        params = net_param_dict(net)
        if optimizer == "sgd":
            opt = torch.optim.SGD(net.parameters(), **options)
        else:
            opt = torch.optim.Adam(net.parameters(), **options)
        sched = make_sched(opt)
        steps = iterations * 2 if unit == "epoch" else iterations
        losses, lrs = [], []
        for k in range(steps):
            lo = (k % 2) * 4
            lrs.append(opt.param_groups[0]["lr"])
            opt.zero_grad()
            loss = F.nll_loss(net(x[lo:lo + 4]), labels[lo:lo + 4])
            loss.backward()
            opt.step()
            losses.append(f32(loss.item()))
            if schedule["per"] == "step" or k % 2 == 1:
                sched.step()
        return {"layers": TRAIN_LAYERS, "params": params, "input": tensor(x),
                "labels": [int(v) for v in labels.tolist()], "loss_kind": "nll",
                "optimizer": optimizer, "options": dict(options), "batch": 4,
                "unit": unit, "iterations": iterations, "schedule": schedule,
                "step_losses": losses, "step_lrs": lrs, "final_params": net_param_dict(net)}
    return build


# ------------------------------------------------------------------ cases

CASES = [
    # name, kind, builder
    ("conv2d_k5_s1_p0", "layer", conv_case(1, 10, 5, 1, 0, True, 2, 12)),
    ("conv2d_k3_s2_p1", "layer", conv_case(2, 3, 3, 2, 1, True, 2, 9)),
    ("conv2d_k3_s1_p1_nobias", "layer", conv_case(3, 2, 3, 1, 1, False, 2, 6)),
    ("conv2d_k5_10to20", "layer", conv_case(10, 20, 5, 1, 0, True, 2, 12)),
    ("maxpool2d_k2", "layer", pool_case("maxpool2d", 2, 2, 2, 2, 8)),
    ("maxpool2d_k2_odd", "layer", pool_case("maxpool2d", 2, 2, 2, 2, 7)),
    ("maxpool2d_k3_s2", "layer", pool_case("maxpool2d", 3, 2, 2, 2, 7)),
    ("avgpool2d_k2", "layer", pool_case("avgpool2d", 2, 2, 2, 2, 8)),
    ("avgpool2d_k2_odd", "layer", pool_case("avgpool2d", 2, 2, 2, 2, 7)),
    ("avgpool2d_k3_s2", "layer", pool_case("avgpool2d", 3, 2, 2, 2, 7)),
    ("relu", "layer", act_case("relu", nn.ReLU)),
    ("tanh", "layer", act_case("tanh", nn.Tanh)),
    ("sigmoid", "layer", act_case("sigmoid", nn.Sigmoid)),
    ("leaky_relu", "layer", leaky_relu_case(None)),
    ("leaky_relu_slope_0.2", "layer", leaky_relu_case(0.2)),
    ("linear_320_50", "layer", linear_case(320, 50, True, 3)),
    ("linear_5_4_nobias", "layer", linear_case(5, 4, False, 3)),
    ("flatten", "layer", flatten_case),
    ("log_softmax", "layer", log_softmax_case),
    ("dropout_eval", "layer", dropout_eval_case("dropout", nn.Dropout)),
    ("dropout2d_eval", "layer", dropout_eval_case("dropout2d", nn.Dropout2d)),
    ("batchnorm2d_train", "layer", batchnorm_case("batchnorm2d", True)),
    ("batchnorm2d_eval", "layer", batchnorm_case("batchnorm2d", False)),
    ("batchnorm1d_train", "layer", batchnorm_case("batchnorm1d", True)),
    ("batchnorm1d_eval", "layer", batchnorm_case("batchnorm1d", False)),
    ("loss_nll", "loss", loss_case("nll")),
    ("loss_cross_entropy", "loss", loss_case("cross_entropy")),
    ("loss_cross_entropy_large", "loss", loss_case("cross_entropy", large=True)),
    ("loss_mse", "loss", loss_case("mse")),
    ("loss_mse_onehot", "loss", loss_case("mse", onehot=True)),
    ("optim_sgd", "optim", optim_case("sgd", lr=0.1)),
    ("optim_sgd_momentum", "optim", optim_case("sgd", lr=0.1, momentum=0.9)),
    ("optim_sgd_momentum_dampening", "optim",
     optim_case("sgd", lr=0.1, momentum=0.9, dampening=0.3)),
    ("optim_sgd_nesterov", "optim", optim_case("sgd", lr=0.1, momentum=0.9, nesterov=True)),
    ("optim_sgd_weight_decay", "optim",
     optim_case("sgd", lr=0.1, momentum=0.5, weight_decay=0.01)),
    ("optim_adam", "optim", optim_case("adam", lr=1e-2)),
    ("optim_adam_weight_decay", "optim", optim_case("adam", lr=1e-2, weight_decay=0.1)),
    ("optim_adamw", "optim", optim_case("adamw", lr=1e-2, weight_decay=0.1)),
    ("optim_adam_eps_betas", "optim",
     optim_case("adam", lr=1e-2, eps=1e-3, betas=(0.8, 0.9))),
    ("net_forward_backward", "net", net_case),
    ("net_train_steps", "net", net_train_case),
    ("schedule_lrs", "schedule", schedule_case),
    ("train_schedule_cosine_per_step", "train",
     train_schedule_case("sgd", {"lr": 0.1, "momentum": 0.9},
                         {"kind": "cosine", "t_max": 6, "eta_min": 0.01, "per": "step"},
                         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6,
                                                                              eta_min=0.01),
                         "step", 9)),
    ("train_schedule_multistep_per_epoch", "train",
     train_schedule_case("adam", {"lr": 0.01},
                         {"kind": "multistep", "milestones": [1, 3], "gamma": 0.5,
                          "per": "epoch"},
                         lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[1, 3],
                                                                        gamma=0.5),
                         "epoch", 4)),
]


def write_json(directory, filename, obj):
    path = os.path.join(directory, filename)
    tmp = path + ".tmp"
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.write("\n")
    os.replace(tmp, path)
    return path, len(text) + 1


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s OUTPUT_DIR\n" % argv[0])
        return 2
    directory = argv[1]
    os.makedirs(directory, exist_ok=True)
    index = []
    total = 0
    names = set()
    for name, kind, build in CASES:
        assert name not in names, name
        names.add(name)
        seed = seed_for(name)
        torch.manual_seed(seed)
        obj = header(name, kind, seed)
        obj.update(build(name))
        path, size = write_json(directory, name + ".json", obj)
        total += size
        index.append({"name": name, "kind": kind, "file": name + ".json"})
        print("%-48s %8d bytes" % (path, size))
    path, size = write_json(directory, "index.json",
                            {"format": FORMAT + "-index", "version": VERSION,
                             "torch_version": torch.__version__, "cases": index})
    total += size
    print("%-48s %8d bytes" % (path, size))
    print("total %d bytes in %d files" % (total, len(index) + 1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
